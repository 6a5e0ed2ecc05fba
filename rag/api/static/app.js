// The rag web page: ask (streamed), read citations in their document, manage documents.
// Plain JavaScript, no build step.  Text from documents, answers and the server is always
// data: it is put in the page with textContent and createElement, never parsed as markup.
"use strict";

(() => {
  const KEY_STORE = "rag.apiKey";
  const HISTORY_SENT = 5; // earlier turns sent with a follow-up (the server uses the last 3)
  const CONTEXT_LINES = 12; // lines shown around a citation
  const POLL_MS = 400;
  const STOPWORDS = new Set(
    ("a an and are as at be been but by did do does for from had has have he her his how i in " +
      "is it its of on or she that the their them they this to was were what when where which " +
      "who whom why will with you your not no so than then there these those into about after " +
      "before over under").split(" "),
  );

  const $ = (id) => document.getElementById(id);
  const state = {
    history: [], // {question, query, answer} of each answered turn
    asking: false,
    controller: null, // aborts the answer in progress (a new conversation)
    opener: null, // the element that opened the panel (focus returns there)
    keyWaiters: null, // pending requests waiting for the key dialog
    markTurn: null, // the turn whose citation the panel shows (its lines can be marked)
    markPath: "", // the document the panel shows
    lastChosen: null, // the line last clicked (Shift+click chooses up to it)
  };

  // -- building elements (text only) --------------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "text") node.textContent = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  function announce(text) {
    const region = $("announce");
    region.textContent = "";
    window.setTimeout(() => (region.textContent = text), 50);
  }

  // -- the API, with the key asked once when it answers 401 ----------------------------
  class ApiError extends Error {
    constructor(status, error) {
      super(error.message || `HTTP ${status}`);
      this.status = status;
      this.code = error.code || `http_${status}`;
      this.hint = error.hint || "";
    }
  }

  function headers(extra) {
    const h = Object.assign({}, extra || {});
    const key = sessionStorage.getItem(KEY_STORE);
    if (key) h["X-API-Key"] = key;
    return h;
  }

  function askForKey(wrong) {
    const dialog = $("key-dialog");
    const error = $("key-error");
    error.hidden = !wrong;
    error.textContent = wrong ? "That key was refused. Check it and try again." : "";
    if (!state.keyWaiters) {
      state.keyWaiters = [];
      $("key-input").value = "";
      dialog.showModal();
      $("key-input").focus();
    }
    return new Promise((resolve) => state.keyWaiters.push(resolve));
  }

  function keyGiven(event) {
    event.preventDefault();
    const key = $("key-input").value.trim();
    if (!key) return;
    sessionStorage.setItem(KEY_STORE, key);
    $("key-dialog").close();
    const waiters = state.keyWaiters || [];
    state.keyWaiters = null;
    waiters.forEach((resolve) => resolve());
  }

  async function errorOf(response) {
    let error = { message: `the server answered ${response.status}` };
    try {
      const body = await response.json();
      if (body && body.error) error = body.error;
    } catch (_) {
      /* not JSON */
    }
    return new ApiError(response.status, error);
  }

  // fetch() that asks for the key on 401 and tries again; other errors become ApiError.
  async function api(path, options) {
    const opts = Object.assign({}, options || {});
    let wrong = false;
    for (;;) {
      let response;
      try {
        response = await fetch(path, Object.assign({}, opts, { headers: headers(opts.headers) }));
      } catch (err) {
        if (opts.signal && opts.signal.aborted) throw err;
        throw new ApiError(0, {
          code: "network",
          message: "the server cannot be reached",
          hint: "is `rag serve` still running?",
        });
      }
      if (response.status === 401) {
        const hadKey = Boolean(sessionStorage.getItem(KEY_STORE));
        sessionStorage.removeItem(KEY_STORE);
        await askForKey(wrong || hadKey);
        wrong = true;
        continue;
      }
      if (!response.ok) throw await errorOf(response);
      return response;
    }
  }

  async function apiJson(path, options) {
    return (await api(path, options)).json();
  }

  // -- Server-Sent Events over fetch (EventSource cannot POST) --------------------------
  async function* sseEvents(response) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      buffer += decoder.decode(value || new Uint8Array(), { stream: !done });
      let cut;
      while ((cut = buffer.search(/\r?\n\r?\n/)) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut).replace(/^\r?\n\r?\n/, "");
        let event = "message";
        const data = [];
        for (const line of block.split(/\r?\n/)) {
          if (line.startsWith(":")) continue;
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          let val = colon < 0 ? "" : line.slice(colon + 1);
          if (val.startsWith(" ")) val = val.slice(1);
          if (field === "event") event = val;
          else if (field === "data") data.push(val);
        }
        if (data.length) yield { event, data: JSON.parse(data.join("\n")) };
      }
      if (done) return;
    }
  }

  // -- citations -----------------------------------------------------------------------
  function shownLine(c, line) {
    return c.page ? line - (c.page_first_line || 1) + 1 : line;
  }

  function anchor(c) {
    const a = shownLine(c, c.start_line);
    const b = shownLine(c, c.end_line);
    const lines = a === b ? `L${a}` : `L${a}-L${b}`;
    return c.page ? `${c.path}:p${c.page}:${lines}` : `${c.path}:${lines}`;
  }

  function words(text) {
    return (text.match(/[\p{L}\p{N}]+(?:['’][\p{L}]+)*/gu) || []).map(normal);
  }

  function normal(word) {
    return word.toLowerCase().replace(/['’]s$/, "");
  }

  function supportWords(text) {
    return new Set(words(text).filter((w) => !STOPWORDS.has(w) && (w.length > 1 || /\d/.test(w))));
  }

  // The claim each [n] supports: the answer's text between the previous marker and it.
  function claims(answer) {
    const found = {};
    const parts = answer.split(/((?:\s*\[\d{1,3}\])+)/);
    for (let i = 1; i < parts.length; i += 2) {
      const before = parts[i - 1];
      for (const m of parts[i].matchAll(/\[(\d{1,3})\]/g)) {
        found[m[1]] = (found[m[1]] || "") + " " + before;
      }
    }
    return found;
  }

  function answerText(text) {
    // the answer with its [n] markers as small superscripts (still plain text)
    const node = el("p", { class: "answer-text" });
    for (const part of text.split(/(\[\d{1,3}\])/)) {
      if (/^\[\d{1,3}\]$/.test(part)) node.append(el("sup", { class: "ref", text: part }));
      else if (part) node.append(document.createTextNode(part));
    }
    return node;
  }

  function chip(c, n, support) {
    const label = `Citation ${n}: ${anchor(c)}. Open the lines.`;
    return el(
      "button",
      {
        type: "button",
        class: c.verified === false ? "chip unverified" : "chip",
        "aria-label": label,
        title: c.quote || anchor(c),
        "data-path": c.path,
        "data-start": c.start_line,
        "data-end": c.end_line,
        onclick: (event) => openLines(c, support, event.currentTarget),
      },
      el("span", { class: "chip-n", text: String(n) }),
      el("span", { class: "chip-where", text: anchor(c) }),
    );
  }

  // -- the citation panel ----------------------------------------------------------------
  function markWords(text, support) {
    const out = document.createDocumentFragment();
    if (!support || !support.size) {
      out.append(document.createTextNode(text));
      return out;
    }
    const re = /[\p{L}\p{N}]+(?:['’][\p{L}]+)*/gu;
    let last = 0;
    for (const m of text.matchAll(re)) {
      if (!support.has(normal(m[0]))) continue;
      if (m.index > last) out.append(document.createTextNode(text.slice(last, m.index)));
      out.append(el("mark", { text: m[0] }));
      last = m.index + m[0].length;
    }
    if (last < text.length) out.append(document.createTextNode(text.slice(last)));
    return out;
  }

  async function openLines(c, support, opener) {
    state.opener = opener || null;
    const panel = $("panel");
    const list = $("panel-lines");
    $("panel-title").textContent = c.path;
    $("panel-where").textContent = c.page
      ? `page ${c.page}, ${describeLines(shownLine(c, c.start_line), shownLine(c, c.end_line))}`
      : describeLines(c.start_line, c.end_line);
    $("panel-note").hidden = true;
    list.replaceChildren(el("li", { class: "loading", text: "Reading the document…" }));
    panel.hidden = false;
    document.body.classList.add("panel-open");
    $("panel-title").focus();
    const query = new URLSearchParams({
      path: c.path,
      start: String(c.start_line),
      end: String(c.end_line),
      radius: String(CONTEXT_LINES),
    });
    let doc;
    try {
      doc = await apiJson(`/v1/lines?${query}`);
    } catch (err) {
      list.replaceChildren(errorBox(err));
      return;
    }
    if (doc.changed) {
      const note = $("panel-note");
      note.textContent = "This file changed after it was indexed: the cited lines may have moved.";
      note.hidden = false;
    }
    const rows = [];
    let page = null;
    for (const line of doc.lines) {
      if (line.page && line.page !== page) {
        page = line.page;
        rows.push(el("li", { class: "page-break", text: `page ${page}` }));
      }
      rows.push(lineRow(doc, line, support));
    }
    list.replaceChildren(...rows);
    const first = list.querySelector(".cited");
    if (first) {
      // only the panel scrolls (scrollIntoView would move the page too)
      const head = panel.querySelector(".panel-head").offsetHeight;
      panel.scrollTop = Math.max(0, first.offsetTop - head - (panel.clientHeight - head) / 3);
    }
    announce(`Opened ${c.path}, ${$("panel-where").textContent}`);
  }

  function lineRow(doc, line, support) {
    const cited = line.number >= doc.start && line.number <= doc.end;
    const number = line.page ? `${line.page_line}` : `${line.number}`;
    return el(
      "li",
      {
        class: cited ? "line cited" : "line",
        "data-line": line.number,
        "data-page": line.page,
        "aria-current": cited ? "true" : null,
      },
      el("span", {
        class: "ln",
        text: number,
        "aria-label": line.page ? `page ${line.page} line ${line.page_line}` : `line ${number}`,
      }),
      el("span", { class: "lt" }, cited ? markWords(line.text, support) : line.text),
    );
  }

  function describeLines(a, b) {
    return a === b ? `line ${a}` : `lines ${a}–${b}`;
  }

  function closePanel() {
    const panel = $("panel");
    if (panel.hidden) return;
    panel.hidden = true;
    document.body.classList.remove("panel-open");
    const opener = state.opener;
    state.opener = null;
    if (opener && document.contains(opener)) opener.focus();
  }

  // -- asking ------------------------------------------------------------------------------
  function errorBox(err) {
    return el(
      "div",
      { class: "error", role: "alert" },
      el("strong", { text: err.message || String(err) }),
      err.hint ? el("span", { class: "hint", text: ` ${err.hint}` }) : null,
    );
  }

  function meta(done) {
    const ms = done.timings ? done.timings.total_ms : 0;
    const time = ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`;
    const parts = [done.backend, done.model, `confidence ${Number(done.confidence).toFixed(2)}`, time];
    return el("p", { class: "meta", "aria-label": "About this answer" }, parts.join(" · "));
  }

  function sourcesList(sources) {
    const list = el("ol", { class: "sources", "aria-label": "The closest passages" });
    for (const s of sources.slice(0, 5)) {
      const c = Object.assign({ quote: s.text }, s);
      list.append(
        el(
          "li",
          {},
          el(
            "button",
            {
              type: "button",
              class: "source",
              "aria-label": `Closest passage ${anchor(c)}. Open the lines.`,
              "data-path": c.path,
              "data-start": c.start_line,
              "data-end": c.end_line,
              onclick: (event) => openLines(c, null, event.currentTarget),
            },
            el("span", { class: "chip-where", text: anchor(c) }),
          ),
          el(
            "span",
            { class: "snippet" },
            el("span", { class: "score", text: `score ${Number(s.score).toFixed(2)} · ` }),
            snippet(s.text),
          ),
        ),
      );
    }
    return list;
  }

  function snippet(text) {
    const flat = text.replace(/\s+/g, " ").trim();
    return flat.length > 220 ? `${flat.slice(0, 220)}…` : flat;
  }

  function renderDone(turn, done) {
    const body = turn.querySelector(".answer-body");
    body.replaceChildren();
    turn.setAttribute("aria-busy", "false");
    if (done.query && done.query !== done.question) {
      body.append(el("p", { class: "asked-as", text: `Answered as: ${done.query}` }));
    }
    if (done.abstained) {
      turn.classList.add("abstained");
      body.append(el("p", { class: "abstain", text: done.answer }));
      const why = (done.notes || []).filter((n) => !n.startsWith("follow-up rewritten"));
      if (why.length) body.append(el("p", { class: "meta", text: `Why: ${why.join("; ")}` }));
      if (done.sources && done.sources.length) {
        body.append(el("p", { class: "sources-title", text: "The closest passages:" }));
        body.append(sourcesList(done.sources));
      }
    } else {
      if (done.short_answer) body.append(el("p", { class: "short-answer", text: done.short_answer }));
      body.append(answerText(done.answer));
      const claimOf = claims(done.answer);
      const chips = el("div", { class: "chips", role: "list", "aria-label": "Citations" });
      done.citations.forEach((c, i) => {
        const support = supportWords(claimOf[String(i + 1)] || done.answer);
        chips.append(el("span", { role: "listitem" }, chip(c, i + 1, support)));
      });
      if (done.citations.length) body.append(chips);
    }
    body.append(meta(done));
    announce(done.abstained ? "The documents do not say." : "Answer ready.");
  }

  function newTurn(question) {
    $("intro").hidden = true;
    const turn = el(
      "article",
      { class: "turn", "aria-busy": "true", "aria-label": `Question: ${question}` },
      el("p", { class: "question", text: question }),
      el(
        "div",
        { class: "answer" },
        el("div", { class: "answer-body" }, el("p", { class: "answer-text streaming" })),
      ),
    );
    const log = $("conversation");
    log.append(turn);
    log.scrollTop = log.scrollHeight;
    return turn;
  }

  // Keep the newest text in sight, unless the reader scrolled up to read something else.
  function follow(always) {
    const log = $("conversation");
    if (always || log.scrollHeight - log.scrollTop - log.clientHeight < 120) {
      log.scrollTop = log.scrollHeight;
    }
  }

  async function ask(question) {
    if (state.asking || !question.trim()) return;
    state.asking = true;
    $("ask-button").disabled = true;
    const turn = newTurn(question);
    const streaming = turn.querySelector(".streaming");
    const body = { question, stream: true };
    if (state.history.length) body.history = state.history.slice(-HISTORY_SENT);
    const controller = new AbortController();
    state.controller = controller;
    try {
      const response = await api("/v1/ask", {
        signal: controller.signal,
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
        body: JSON.stringify(body),
      });
      let done = null;
      for await (const { event, data } of sseEvents(response)) {
        if (event === "token") {
          streaming.textContent += data.text;
          follow();
        }
        else if (event === "done") done = data;
        else if (event === "error") throw new ApiError(200, data.error || {});
        // "citations" arrives before "done", which carries them too
      }
      if (!done) throw new ApiError(0, { message: "the answer stream ended early" });
      renderDone(turn, done);
      attachMarks(turn, done, question);
      follow(true);
      state.history.push({
        question,
        query: done.query || done.question || question,
        answer: done.abstained ? "" : done.answer,
      });
    } catch (err) {
      if (controller.signal.aborted) return; // a new conversation dropped this question
      turn.setAttribute("aria-busy", "false");
      turn.querySelector(".answer-body").replaceChildren(errorBox(err));
    } finally {
      if (state.controller === controller) {
        state.controller = null;
        state.asking = false;
        $("ask-button").disabled = false;
      }
    }
  }

  function newConversation() {
    if (state.controller) state.controller.abort(); // the server stops generating too
    state.controller = null;
    state.asking = false;
    $("ask-button").disabled = false;
    state.history = [];
    closePanel();
    const log = $("conversation");
    log.replaceChildren($("intro"));
    $("intro").hidden = false;
    showView("ask");
    $("question").value = "";
    $("question").focus();
    announce("New conversation.");
  }

  // -- documents ---------------------------------------------------------------------------
  function size(bytes) {
    if (bytes < 1024) return `${bytes} B`;
    if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
    return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
  }

  function plural(n, word) {
    return `${n} ${word}${n === 1 ? "" : "s"}`;
  }

  function docPathUrl(path) {
    return "/v1/documents/" + path.split("/").map(encodeURIComponent).join("/");
  }

  async function loadDocuments() {
    const rows = $("doc-rows");
    let list;
    try {
      list = await apiJson("/v1/documents");
    } catch (err) {
      rows.replaceChildren(el("tr", {}, el("td", { colspan: "5" }, errorBox(err))));
      return;
    }
    $("index-state").textContent =
      `${plural(list.count, "document")}, ${plural(list.chunks, "chunk")} · ` +
      `index version ${list.index_version}`;
    loadStatus();
    if (!list.documents.length) {
      rows.replaceChildren(
        el("tr", {}, el("td", { colspan: "5", text: "The index holds no documents yet." })),
      );
      return;
    }
    rows.replaceChildren(...list.documents.map(docRow));
  }

  function docRow(d) {
    const when = d.ingested_at ? new Date(d.ingested_at) : null;
    const stateText = (d.uploaded ? "uploaded, indexed" : "indexed") +
      (when && !isNaN(when) ? ` ${when.toLocaleString()}` : "");
    const remove = el("button", {
      type: "button",
      class: "quiet-button danger",
      text: "Delete",
      "aria-label": `Delete ${d.path} from the index`,
    });
    remove.addEventListener("click", () => deleteDocument(d, remove));
    return el(
      "tr",
      { "data-path": d.path },
      el("td", { class: "doc-path", "data-label": "Document" }, el("span", { text: d.path })),
      el("td", { class: "num", "data-label": "Chunks", text: String(d.chunks) }),
      el("td", { class: "num", "data-label": "Size", text: size(d.size) }),
      el("td", { "data-label": "State", text: stateText }),
      el("td", { class: "actions" }, remove),
    );
  }

  async function deleteDocument(d, button) {
    if (button.dataset.confirm !== "yes") {
      button.dataset.confirm = "yes";
      button.textContent = "Confirm delete";
      button.setAttribute("aria-label", `Confirm: delete ${d.path} from the index`);
      announce(`Press again to delete ${d.path}.`);
      window.setTimeout(() => {
        if (button.disabled) return;
        button.dataset.confirm = "";
        button.textContent = "Delete";
        button.setAttribute("aria-label", `Delete ${d.path} from the index`);
      }, 6000);
      return;
    }
    button.disabled = true;
    try {
      const gone = await apiJson(docPathUrl(d.path), { method: "DELETE" });
      const extra = gone.file_removed ? " and its uploaded file" : "";
      $("job").replaceChildren(
        el("p", { text: `Deleted ${gone.path}${extra} (${gone.chunks_deleted} chunks).` }),
      );
    } catch (err) {
      $("job").replaceChildren(errorBox(err));
    }
    await loadDocuments();
  }

  function jobLine(job) {
    const parts = [`Job ${job.state}`];
    if (job.phase) parts.push(`phase ${job.phase}`);
    for (const [name, p] of Object.entries(job.progress || {})) {
      parts.push(`${name} ${p.done}/${p.total}`);
    }
    if (job.state === "succeeded") {
      parts.push(`${plural(job.files.indexed, "file")} indexed, ` +
        `${plural(job.chunks.written, "chunk")} written`);
    }
    return parts.join(" · ");
  }

  async function upload(event) {
    event.preventDefault();
    const input = $("upload-files");
    if (!input.files.length) {
      $("job").replaceChildren(el("p", { class: "error", text: "Choose one or more files first." }));
      return;
    }
    const form = new FormData();
    for (const f of input.files) form.append("files", f, f.name);
    const button = $("upload-button");
    button.disabled = true;
    const progress = el("progress", { max: "1", value: "0", "aria-label": "Indexing progress" });
    const line = el("p", { class: "job-line", text: "Uploading…" });
    $("job").replaceChildren(line, progress);
    try {
      const accepted = await apiJson("/v1/ingest", { method: "POST", body: form });
      let job = accepted.job;
      while (job.state === "queued" || job.state === "running") {
        line.textContent = jobLine(job);
        const p = (job.progress || {})[job.phase];
        if (p && p.total) {
          progress.max = String(p.total);
          progress.value = String(p.done);
        }
        await new Promise((r) => window.setTimeout(r, POLL_MS));
        job = await apiJson(accepted.status_url);
      }
      line.textContent = jobLine(job);
      progress.max = "1";
      progress.value = job.state === "succeeded" ? "1" : "0";
      const problems = [...(job.errors || []).map((e) => e.message || JSON.stringify(e)),
        ...(job.skipped || []).map((s) => `skipped ${s.path}: ${s.reason}`)];
      for (const p of problems) $("job").append(el("p", { class: "error", text: p }));
      input.value = "";
    } catch (err) {
      $("job").replaceChildren(errorBox(err));
    } finally {
      button.disabled = false;
    }
    await loadDocuments();
  }

  // -- marking answers: right, wrong, "the documents do not say", the right lines ----------
  // Each answered turn can be marked; the mark is stored by the server (POST /v1/feedback),
  // and marked again (same record, its id) when lines are chosen in the panel afterwards.
  const MARK_LABELS = {
    right: "Right",
    wrong: "Wrong",
    unanswerable: "The documents do not say this",
  };
  const marked = new WeakMap(); // turn -> {question, done, record, lines, unsupported}

  function attachMarks(turn, done, question) {
    const entry = { question, done, record: null, mark: null, lines: [], unsupported: [] };
    marked.set(turn, entry);
    const status = el("p", { class: "feedback-status", "aria-live": "polite" });
    const bar = el("div", { class: "feedback", role: "group", "aria-label": "Mark this answer" });
    for (const [mark, label] of Object.entries(MARK_LABELS)) {
      bar.append(
        el("button", {
          type: "button",
          class: "quiet-button mark",
          "data-mark": mark,
          "aria-pressed": "false",
          text: label,
          onclick: () => sendMark(turn, { mark }),
        }),
      );
    }
    bar.append(status);
    turn.querySelector(".answer").append(bar);
  }

  function markBody(entry) {
    const done = entry.done;
    const range = (c) => ({ path: c.path, start_line: c.start_line, end_line: c.end_line });
    const body = {
      origin: "page",
      mark: entry.mark,
      question: entry.question,
      query: done.query || null,
      answer: done.answer || "",
      abstained: Boolean(done.abstained),
      citations: (done.citations || []).map(range),
      backend: done.backend || "",
      model: done.model || "",
      index_version: done.index_version || null,
      lines: entry.lines,
      unsupported: entry.unsupported,
    };
    if (entry.record) body.id = entry.record.id;
    return body;
  }

  function markSaid(record) {
    const lines = record.lines.map((r) => anchor(r)).join(", ");
    const head = `Saved as feedback #${record.id}: ${MARK_LABELS[record.mark].toLowerCase()}` +
      (lines ? `, right lines ${lines}` : "");
    if (record.state === "needs lines") {
      return `${head}. Open a citation and choose the lines that do answer it.`;
    }
    if (record.state === "stale") return `${head}. Stale: ${record.problems.join("; ")}.`;
    return `${head}. \`rag feedback export\` makes it a regression case.`;
  }

  async function sendMark(turn, change) {
    const entry = marked.get(turn);
    if (!entry) return null;
    const before = { mark: entry.mark, lines: entry.lines, unsupported: entry.unsupported };
    Object.assign(entry, change);
    const status = turn.querySelector(".feedback-status");
    try {
      entry.record = await apiJson("/v1/feedback", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(markBody(entry)),
      });
    } catch (err) {
      Object.assign(entry, before);
      status.replaceChildren(errorBox(err));
      return null;
    }
    for (const button of turn.querySelectorAll(".feedback .mark")) {
      button.setAttribute("aria-pressed", String(button.dataset.mark === entry.mark));
    }
    const text = markSaid(entry.record);
    status.textContent = text;
    announce(text);
    return entry.record;
  }

  // The panel: opened from a turn's citation or passage, its lines can be chosen and marked.
  function panelOpenedFrom(event) {
    const button = event.target.closest(".chip, .source");
    if (!button) return;
    const turn = button.closest("article.turn");
    const entry = turn ? marked.get(turn) : null;
    state.markTurn = entry ? turn : null;
    state.markPath = button.dataset.path || "";
    $("panel-marks").hidden = !entry;
    $("panel-marks-status").textContent = "";
    document.body.classList.toggle("choosing-lines", Boolean(entry));
  }

  function chooseLine(event) {
    if (!state.markTurn) return;
    const row = event.target.closest("li.line");
    if (!row) return;
    const rows = [...$("panel-lines").querySelectorAll("li.line")];
    if (event.shiftKey && state.lastChosen && rows.includes(state.lastChosen)) {
      window.getSelection().removeAllRanges(); // Shift+click also extends the text selection
      const [a, b] = [rows.indexOf(state.lastChosen), rows.indexOf(row)].sort((x, y) => x - y);
      rows.slice(a, b + 1).forEach((r) => r.classList.add("chosen"));
    } else if (window.getSelection().toString()) {
      return; // a drag that selected text, not a click on a line
    } else {
      row.classList.toggle("chosen");
    }
    state.lastChosen = row;
    for (const r of rows) r.setAttribute("aria-selected", String(r.classList.contains("chosen")));
  }

  // Consecutive line numbers as ranges: [3,4,5,9] -> 3-5, 9-9.
  function rangesOf(numbers, path) {
    const out = [];
    for (const n of [...new Set(numbers)].sort((a, b) => a - b)) {
      const last = out[out.length - 1];
      if (last && n === last.end_line + 1) last.end_line = n;
      else out.push({ path, start_line: n, end_line: n });
    }
    return out;
  }

  function chosenRanges(fallback) {
    const pick = (selector) =>
      [...$("panel-lines").querySelectorAll(selector)].map((r) => Number(r.dataset.line));
    let numbers = pick("li.line.chosen");
    if (!numbers.length && fallback) numbers = pick(fallback);
    return rangesOf(numbers, state.markPath);
  }

  async function markLines(kind) {
    const turn = state.markTurn;
    const entry = turn ? marked.get(turn) : null;
    if (!entry) return;
    const say = $("panel-marks-status");
    const ranges = chosenRanges(kind === "unsupported" ? "li.line.cited" : null);
    if (!ranges.length) {
      say.textContent = "Click the lines first.";
      return;
    }
    const others = entry[kind].filter((r) => r.path !== state.markPath); // other files' lines
    const change = { [kind]: [...others, ...ranges] };
    if (kind === "lines" && entry.mark !== "right") change.mark = "wrong";
    if (kind === "unsupported" && !entry.mark) change.mark = "wrong";
    const record = await sendMark(turn, change);
    say.textContent = record ? markSaid(record) : turn.querySelector(".feedback-status").textContent;
  }

  // -- views, status, keyboard ------------------------------------------------------------
  function showView(name) {
    for (const view of ["ask", "docs"]) {
      $(`view-${view}`).hidden = view !== name;
      $(`tab-${view}`).setAttribute("aria-pressed", String(view === name));
    }
    if (name === "docs") {
      closePanel();
      loadDocuments();
    }
  }

  async function loadStatus() {
    try {
      const ready = await (await api("/readyz")).json();
      const parts = [plural(ready.index.documents, "document")];
      if (ready.llm) parts.push(ready.llm.backend);
      $("status").textContent = parts.join(" · ");
    } catch (err) {
      if (err.status === 503) $("status").textContent = "index not ready";
      else $("status").textContent = "";
    }
  }

  function onQuestionKey(event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submitQuestion();
    }
  }

  function submitQuestion(event) {
    if (event) event.preventDefault();
    const box = $("question");
    const question = box.value.trim();
    if (!question || state.asking) return;
    box.value = "";
    ask(question);
  }

  function start() {
    $("ask-form").addEventListener("submit", submitQuestion);
    $("question").addEventListener("keydown", onQuestionKey);
    $("new-conversation").addEventListener("click", newConversation);
    $("panel-close").addEventListener("click", closePanel);
    $("upload-form").addEventListener("submit", upload);
    $("key-form").addEventListener("submit", keyGiven);
    $("key-dialog").addEventListener("cancel", (event) => event.preventDefault());
    $("conversation").addEventListener("click", panelOpenedFrom);
    $("panel-lines").addEventListener("click", chooseLine);
    $("mark-lines").addEventListener("click", () => markLines("lines"));
    $("mark-unsupported").addEventListener("click", () => markLines("unsupported"));
    for (const tab of document.querySelectorAll(".tab")) {
      tab.addEventListener("click", () => showView(tab.dataset.view));
    }
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && !$("panel").hidden && !$("key-dialog").open) {
        event.preventDefault();
        closePanel();
      }
    });
    loadStatus();
    $("question").focus();
  }

  document.addEventListener("DOMContentLoaded", start);
})();
