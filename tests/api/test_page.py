"""The web page at ``/`` in a real headless Chromium (Debian's, driven by Playwright) against
`rag serve` (a subprocess on 127.0.0.1, extractive backend, an API key) over a copy of
data/corpus plus documents that hold markup.

Screenshots of each state, at 1440 and 375 px wide, go to tests/artifacts/page/ (git-ignored).
Chromium comes from `make browser`; without it these tests are skipped (failed under CI).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api_support import RAG, copy_corpus, rag_serve, wait_job
from tests.conftest import OFF_TOPIC, PUTIN_2000, PUTIN_2000_LINES, sed_lines
from tests.indexing.test_formats import PAGES, make_pdf

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "page"
KEY = "page-test-key-7c1e"
WIDE, NARROW = {"width": 1440, "height": 900}, {"width": 375, "height": 812}
CHROMIUM_ARGS = [
    "--no-sandbox",  # root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Recorded in the page before any of its own scripts run: dialogs a script opened, CSP
# violations.  The page never calls alert(): anything here came from a document's markup.
TRAPS = """
window.__xss = [];
for (const name of ["alert", "confirm", "prompt"]) {
  window[name] = (message) => {
    window.__xss.push(name + ":" + message);
    console.log("XSS " + name);
  };
}
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(e.violatedDirective));
"""
XSS_NAME = "x<img src=x onerror=alert(2)>.md"
XSS_TEXT = (
    "# Keeper notes\n"
    "\n"
    "The Zephyr lighthouse keeper writes <script>alert('xss-script')</script> in the log.\n"
    "An image <img src=x onerror=alert('xss-img')> is not shown.\n"
    "A link [open me](javascript:alert('xss-link')) and <a href=\"javascript:alert(1)\">this"
    "</a> stay text.\n"
)
XSS_QUESTION = "What does the Zephyr lighthouse keeper write in the log?"
UPLOAD_TEXT = "The Kestrel Bridge over the Arun river opened to traffic in March 1931.\n"

pytestmark = pytest.mark.timeout(300)


def _require_browser() -> Any:
    missing = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = "the playwright package is not installed (pip install -e '.[dev]')"
    if missing is None and not CHROMIUM.exists():
        missing = f"{CHROMIUM} is missing: run `make browser`"
    if missing is not None:
        if in_ci():
            pytest.fail(missing)
        pytest.skip(missing)
    return sync_playwright


def in_ci() -> bool:
    """CI is set to anything but an empty, 0, false or no value (CI systems set CI=true)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


class Site:
    def __init__(self, url: str, corpus: Path, log: Path) -> None:
        self.url = url
        self.corpus = corpus
        self.log = log


@pytest.fixture(scope="module")
def site(cli_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    _require_browser()
    home = tmp_path_factory.mktemp("page")
    corpus = copy_corpus(home / "corpus")
    (corpus / XSS_NAME).write_text(XSS_TEXT)
    (corpus / "report.pdf").write_bytes(make_pdf(PAGES))
    env = {
        **cli_env,
        "RAG_CORPUS_DIR": str(corpus),
        "RAG_INDEX_DIR": str(home / "index"),
        "RAG_API_KEY": KEY,
    }
    log = home / "server.log"
    with rag_serve(env, log) as url:
        client = httpx.Client(base_url=url, headers={"X-API-Key": KEY}, timeout=60)
        accepted = client.post("/v1/ingest", json={"paths": ["."]})
        assert accepted.status_code == 202, accepted.text
        assert wait_job(client, accepted.json()["job"]["id"])["state"] == "succeeded"
        shutil.rmtree(ARTIFACTS, ignore_errors=True)
        ARTIFACTS.mkdir(parents=True)
        yield Site(url, corpus, log)
        print(f"\nscreenshots of the page: {ARTIFACTS}")


@pytest.fixture(scope="module")
def browser(site: Site) -> Iterator[Any]:
    sync_playwright = _require_browser()
    with sync_playwright() as p:
        launched = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )  # a fresh profile in a temporary folder each launch
        yield launched
        launched.close()


class Page:
    """A tab on the site with its console, page errors and traps recorded."""

    def __init__(self, browser: Any, site: Site) -> None:
        self.site = site
        self.context = browser.new_context(viewport=WIDE)
        self.context.add_init_script(TRAPS)
        self.page = self.context.new_page()
        self.console: list[str] = []
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def open(self, key: str = KEY) -> None:
        """Load the page and give it the API key it asks for."""
        page = self.page
        page.goto(self.site.url + "/")
        page.wait_for_selector("#key-dialog[open]")
        page.fill("#key-input", key)
        page.keyboard.press("Enter")
        page.wait_for_selector("#key-dialog:not([open])", state="attached")
        page.wait_for_function("() => document.getElementById('status').textContent !== ''")

    def ask(self, question: str, turns: int) -> Any:
        """Ask ``question`` (typed, Enter) and wait until the ``turns``-th answer is done."""
        page = self.page
        page.fill("#question", question)
        page.press("#question", "Enter")
        page.wait_for_selector(
            f"#conversation article.turn:nth-of-type({turns})[aria-busy='false']"
        )
        return page.locator("#conversation article.turn").nth(turns - 1)

    def shots(self, name: str) -> None:
        """Screenshots of the page as it is, 1440 and 375 px wide."""
        for size in (WIDE, NARROW):
            self.page.set_viewport_size(size)
            self.page.wait_for_timeout(150)  # layout settles
            self.page.screenshot(path=str(ARTIFACTS / f"{name}-{size['width']}.png"))
        self.page.set_viewport_size(WIDE)

    def check_clean(self) -> None:
        assert self.errors == [], self.errors
        assert self.page.evaluate("window.__xss") == []
        assert self.page.evaluate("window.__csp") == []
        asked = "status of 401"  # the first API call, before the key was given
        noisy = [
            m for m in self.console if (m.startswith("error") and asked not in m) or "XSS" in m
        ]
        assert noisy == [], noisy

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def tab(browser: Any, site: Site) -> Iterator[Page]:
    page = Page(browser, site)
    yield page
    page.close()


def _lines(site: Site, path: str) -> list[str]:
    """The document's lines as citations number them (a PDF: its pages' lines in order)."""
    if path == "report.pdf":
        return [line for page in PAGES for line in page]
    return sed_lines(site.corpus / path)


def _cited_rows(tab: Page) -> list[tuple[int, str, str]]:
    tab.page.wait_for_selector("#panel-lines .line.cited")
    rows = tab.page.locator("#panel-lines .line.cited")
    return [
        (
            int(rows.nth(i).get_attribute("data-line") or 0),
            rows.nth(i).locator(".ln").inner_text(),
            rows.nth(i).locator(".lt").text_content() or "",
        )
        for i in range(rows.count())
    ]


# -- the tests ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("ci", "expected"),
    [
        ("true", pytest.fail.Exception),
        ("1", pytest.fail.Exception),
        ("", pytest.skip.Exception),
        ("false", pytest.skip.Exception),
    ],
)
def test_a_missing_browser_fails_under_ci_and_is_skipped_elsewhere(
    monkeypatch: pytest.MonkeyPatch, ci: str, expected: type[BaseException]
) -> None:
    monkeypatch.setenv("CI", ci)
    monkeypatch.setattr(sys.modules[__name__], "CHROMIUM", Path("/nonexistent/chromium"))
    # both outcomes are caught here: a skip escaping this test would skip it, not fail it
    with pytest.raises((pytest.fail.Exception, pytest.skip.Exception), match="make browser") as got:
        _require_browser()
    assert got.type is expected


def test_serve_ends_its_start_by_printing_the_page_url(site: Site) -> None:
    """The last line of the start (after uvicorn's own), before any request is logged."""
    text = site.log.read_text()
    started = text.index("Uvicorn running on")
    shown = text.index(f"open {site.url}/ in a browser to ask your documents")
    assert started < shown < text.index('"GET /healthz')


def test_the_page_asks_for_the_key_once_and_keeps_it_for_the_tab(tab: Page) -> None:
    page = tab.page
    page.goto(tab.site.url + "/")
    page.wait_for_selector("#key-dialog[open]")
    tab.shots("01-key-prompt")
    page.fill("#key-input", "wrong-key")
    page.keyboard.press("Enter")
    page.wait_for_selector("#key-error:not([hidden])")
    assert "refused" in page.inner_text("#key-error")
    page.fill("#key-input", KEY)
    page.keyboard.press("Enter")
    page.wait_for_function(
        "() => document.getElementById('status').textContent.includes('documents')"
    )
    assert page.evaluate("sessionStorage.getItem('rag.apiKey')") == KEY
    page.reload()  # same tab: the key is remembered, no prompt
    page.wait_for_function(
        "() => document.getElementById('status').textContent.includes('documents')"
    )
    assert not page.is_visible("#key-dialog")
    other = tab.context.new_page()  # another tab: asked again
    other.goto(tab.site.url + "/")
    other.wait_for_selector("#key-dialog[open]")
    other.close()
    assert tab.errors == []


def test_ask_stream_and_open_the_first_citation(tab: Page) -> None:
    tab.open()
    page = tab.page
    turn = tab.ask(PUTIN_2000, 1)
    assert turn.locator(".answer-text").inner_text().strip()
    assert "2000" in turn.locator(".short-answer").inner_text()  # the short answer, above it
    meta = turn.locator(".meta").last.inner_text()
    assert "extractive" in meta and "confidence" in meta and "ms" in meta
    chip = turn.locator(".chip").first
    path = chip.get_attribute("data-path") or ""
    start, end = (
        int(chip.get_attribute("data-start") or 0),
        int(chip.get_attribute("data-end") or 0),
    )
    assert (path, start) in PUTIN_2000_LINES
    tab.shots("02-answer")
    chip.click()
    rows = _cited_rows(tab)
    on_disk = _lines(tab.site, path)
    assert [(n, shown) for n, shown, _ in rows] == [(n, str(n)) for n in range(start, end + 1)]
    assert [text for _, _, text in rows] == on_disk[start - 1 : end]
    assert page.inner_text("#panel-title") == path
    marked = [m.lower() for m in page.locator("#panel-lines .cited mark").all_inner_texts()]
    assert "2000" in marked and "july" in marked  # the words that support the answer
    in_view = page.evaluate(
        """() => { const r = document.querySelector('.line.cited').getBoundingClientRect();
                   const p = document.getElementById('panel').getBoundingClientRect();
                   return r.top >= p.top && r.bottom <= p.bottom; }"""
    )
    assert in_view
    context_rows = page.locator("#panel-lines .line:not(.cited)").count()
    assert context_rows > 0  # lines around the citation are shown too
    tab.shots("03-citation")
    page.keyboard.press("Escape")
    assert page.is_hidden("#panel")
    tab.check_clean()


def test_follow_up_and_new_conversation(tab: Page) -> None:
    tab.open()
    page = tab.page
    tab.ask(PUTIN_2000, 1)
    second = tab.ask("When did he visit Russia?", 2)
    asked_as = second.locator(".asked-as").inner_text()
    assert asked_as.startswith("Answered as: When did he visit Russia?") and "Putin" in asked_as
    assert second.locator(".chip").count() >= 1
    tab.shots("04-follow-up")
    page.click("#new-conversation")
    assert page.locator("#conversation article.turn").count() == 0
    assert page.is_visible("#intro")
    assert page.evaluate("document.activeElement.id") == "question"
    alone = tab.ask("When did he visit Russia?", 1)  # no conversation now: not rewritten
    assert alone.locator(".asked-as").count() == 0
    tab.check_clean()


def test_abstention_says_so_and_lists_the_closest_passages(tab: Page) -> None:
    tab.open()
    page = tab.page
    turn = tab.ask(OFF_TOPIC, 1)
    assert "abstained" in (turn.get_attribute("class") or "")
    assert "do not say" in turn.locator(".abstain").inner_text()
    assert turn.locator(".chip").count() == 0
    sources = turn.locator(".sources .source")
    assert sources.count() >= 1
    tab.shots("05-abstention")
    first = sources.first
    path = first.get_attribute("data-path") or ""
    start, end = (
        int(first.get_attribute("data-start") or 0),
        int(first.get_attribute("data-end") or 0),
    )
    first.click()
    rows = _cited_rows(tab)
    lines = _lines(tab.site, path)
    assert [(n, text) for n, _, text in rows] == [(n, lines[n - 1]) for n in range(start, end + 1)]
    assert page.locator("#panel-lines mark").count() == 0  # nothing supports an abstention
    tab.shots("06-abstention-passage")
    tab.check_clean()


def test_documents_view_upload_and_delete(tab: Page, tmp_path: Path) -> None:
    tab.open()
    page = tab.page
    page.click("#tab-docs")
    page.wait_for_selector("#doc-rows tr[data-path]")
    listed = page.locator("#doc-rows tr[data-path]")
    expected = sorted(p.name for p in tab.site.corpus.iterdir() if p.is_file())
    assert sorted(listed.nth(i).get_attribute("data-path") for i in range(listed.count())) == (
        expected
    )
    chunks = [int(t) for t in page.locator("#doc-rows td.num:nth-child(2)").all_inner_texts()]
    assert chunks and all(n > 0 for n in chunks)
    assert "documents" in page.inner_text("#index-state")
    note = tmp_path / "kestrel.txt"
    note.write_text(UPLOAD_TEXT)
    page.set_input_files("#upload-files", str(note))
    page.click("#upload-button")
    page.wait_for_selector("#doc-rows tr[data-path='uploads/kestrel.txt']")
    assert "succeeded" in page.inner_text("#job")
    assert "uploaded" in page.inner_text("#doc-rows tr[data-path='uploads/kestrel.txt']")
    tab.shots("07-documents-uploaded")
    page.click("#tab-ask")
    turn = tab.ask("When did the Kestrel Bridge open to traffic?", 1)
    assert turn.locator(".chip").first.get_attribute("data-path") == "uploads/kestrel.txt"
    page.click("#tab-docs")
    delete = page.locator("#doc-rows tr[data-path='uploads/kestrel.txt'] button")
    delete.click()
    assert delete.inner_text() == "Confirm delete"  # one click never deletes
    delete.click()
    page.wait_for_selector("#doc-rows tr[data-path='uploads/kestrel.txt']", state="detached")
    assert "Deleted uploads/kestrel.txt" in page.inner_text("#job")
    assert not (tab.site.corpus / "uploads" / "kestrel.txt").exists()
    tab.check_clean()


def test_markup_in_documents_stays_text(tab: Page) -> None:
    tab.open()
    page = tab.page
    turn = tab.ask(XSS_QUESTION, 1)
    assert "<script>alert('xss-script')</script>" in turn.locator(".answer-text").inner_text()
    chip = turn.locator(".chip").first
    assert chip.get_attribute("data-path") == XSS_NAME
    chip.click()
    _cited_rows(tab)
    shown = page.locator("#panel-lines .lt").all_text_contents()
    assert shown == _lines(tab.site, XSS_NAME)[: len(shown)]
    assert any("<img src=x onerror=alert('xss-img')>" in line for line in shown)
    assert any("javascript:alert('xss-link')" in line for line in shown)
    assert page.inner_text("#panel-title") == XSS_NAME
    tab.shots("08-markup-as-text")
    page.keyboard.press("Escape")
    page.click("#tab-docs")
    page.wait_for_selector("#doc-rows tr[data-path]")
    assert XSS_NAME in page.locator("#doc-rows .doc-path").all_inner_texts()
    injected = page.evaluate(
        """() => document.querySelectorAll(
             'main script, main img, #panel script, #panel img, a[href^="javascript"], [onerror]'
           ).length"""
    )
    assert injected == 0
    page.wait_for_timeout(300)  # an onerror handler would have fired by now
    tab.check_clean()
    # And the browser enforces the page's CSP: an inline script, even one put in by a
    # script of the page, does not run.
    ran = page.evaluate(
        """() => { const s = document.createElement("script");
                   s.textContent = "window.__ran = true"; document.body.append(s);
                   return window.__ran === true; }"""
    )
    assert ran is False
    page.wait_for_function("() => window.__csp.length > 0")
    assert page.evaluate("window.__csp")[0].startswith("script-src")


def test_keyboard_only(tab: Page) -> None:
    page = tab.page
    page.goto(tab.site.url + "/")
    page.wait_for_selector("#key-dialog[open]")
    page.keyboard.type(KEY)  # the key box has the focus
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.getElementById('status').textContent !== ''")
    assert page.evaluate("document.activeElement.id") == "question"
    page.keyboard.type("first line")
    page.keyboard.press("Shift+Enter")  # a new line, not a question
    page.keyboard.type("second line")
    assert page.input_value("#question") == "first line\nsecond line"
    assert page.locator("#conversation article.turn").count() == 0
    page.keyboard.press("Control+A")
    page.keyboard.type(PUTIN_2000)
    page.keyboard.press("Enter")
    page.wait_for_selector("#conversation article.turn[aria-busy='false'] .chip")
    for _ in range(40):  # Tab until a citation has the focus
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.classList.contains('chip')"):
            break
    else:
        raise AssertionError("Tab never reached a citation")
    label = page.evaluate("document.activeElement.getAttribute('aria-label')")
    assert label.startswith("Citation 1:")
    tab.shots("09-keyboard-focus")
    page.keyboard.press("Enter")
    _cited_rows(tab)
    assert page.evaluate("document.activeElement.id") == "panel-title"
    page.keyboard.press("Escape")
    assert page.is_hidden("#panel")
    assert page.evaluate("document.activeElement.classList.contains('chip')")  # back where it was
    tab.check_clean()


def test_a_pdf_citation_shows_page_and_line(tab: Page) -> None:
    tab.open()
    page = tab.page
    turn = tab.ask("What is the launch code set by the board?", 1)
    chip = turn.locator(".chip").first
    assert chip.get_attribute("data-path") == "report.pdf"
    assert chip.locator(".chip-where").inner_text().startswith("report.pdf:p2:L")
    chip.click()
    rows = _cited_rows(tab)
    page_lines = PAGES[1]
    first_of_page = len(PAGES[0]) + 1  # global line where page 2 starts
    for number, shown, text in rows:
        assert text == page_lines[number - first_of_page]
        assert shown == str(number - first_of_page + 1)  # the page's own line in the margin
    assert page.inner_text("#panel-where").startswith("page 2, line")
    tab.shots("10-pdf-citation")
    tab.check_clean()


def test_mark_wrong_choose_lines_export_and_eval(
    tab: Page, cli_env: dict[str, str], tmp_path: Path
) -> None:
    """A wrong answer marked on the page with the right lines becomes a golden row by one
    command, and `rag eval` asks it."""
    tab.open()
    page = tab.page
    turn = tab.ask(PUTIN_2000, 1)
    turn.locator(".feedback .mark[data-mark='wrong']").click()
    page.wait_for_selector("article.turn .feedback-status:has-text('choose the lines')")
    assert turn.locator(".mark[aria-pressed='true']").get_attribute("data-mark") == "wrong"
    chip = turn.locator(".chip").first
    path = chip.get_attribute("data-path") or ""
    start = int(chip.get_attribute("data-start") or 0)
    chip.click()
    _cited_rows(tab)
    assert page.is_visible("#panel-marks")
    end = int(chip.get_attribute("data-end") or 0)
    page.click("#mark-unsupported")  # no line chosen: the cited lines do not support it
    page.wait_for_selector("#panel-marks-status:has-text('Saved as feedback')")
    page.click(f"#panel-lines li.line[data-line='{start}']")
    page.click(f"#panel-lines li.line[data-line='{start + 1}']", modifiers=["Shift"])
    chosen = page.locator("#panel-lines li.line.chosen")
    assert [chosen.nth(i).get_attribute("data-line") for i in range(chosen.count())] == [
        str(start),
        str(start + 1),
    ]
    page.click("#mark-lines")
    page.wait_for_selector("#panel-marks-status:has-text('regression case')")
    said = page.inner_text("#panel-marks-status")
    assert f"right lines {path}:L{start}-L{start + 1}" in said
    record = int(said.split("#", 1)[1].split(":", 1)[0])
    tab.shots("11-marked-lines")
    tab.check_clean()
    stored = httpx.get(f"{tab.site.url}/v1/feedback", headers={"X-API-Key": KEY}).json()
    mark = next(r for r in stored["feedback"] if r["id"] == record)
    assert (mark["origin"], mark["mark"], mark["state"]) == ("page", "wrong", "ready")
    assert [(u["path"], u["start_line"], u["end_line"]) for u in mark["unsupported"]] == [
        (path, start, end)
    ]
    assert mark["lines"][0]["text"] == _lines(tab.site, path)[start - 1 : start + 1]
    env = {
        **cli_env,
        "RAG_CORPUS_DIR": str(tab.site.corpus),
        "RAG_INDEX_DIR": str(tab.site.corpus.parent / "index"),
    }
    out = tmp_path / "feedback.jsonl"
    done = subprocess.run([RAG, "feedback", "export", "--out", str(out)], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    row = next(r for r in rows if r["feedback_id"] == record)
    assert row["question"] == PUTIN_2000 and row["answerable"] is True
    assert row["evidence"] == [{"file": path, "start_line": start, "end_line": start + 1}]
    run = tmp_path / "eval"
    done = subprocess.run(
        [RAG, "eval", "--golden", str(out), "--corpus", str(tab.site.corpus), "--out", str(run)],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    assert [r["id"] for r in results] == [r["id"] for r in rows]
    assert results[-1]["origin"] == "feedback"
