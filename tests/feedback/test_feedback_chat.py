"""`rag chat`'s marks in a real pseudo-terminal: /bad, /lines, /good, /unanswerable on the
last answer; then `rag feedback list` and `rag feedback export` (subprocesses) see them."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pexpect

from tests.conftest import make_runtime
from tests.feedback.test_feedback import BRIDGES, BRIDGES_TEXT, KESTREL, MILLS, MILLS_TEXT

RAG = str(Path(sys.executable).parent / "rag")
FRESH_PROMPT = r"\r\n\r\n(?:\x1b\[[0-9;?]*[A-Za-z])*rag>"
UI_CODES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def test_chat_marks_the_last_answer(tmp_path: Path, cli_env: dict[str, str], embedder: Any) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / BRIDGES).write_text(BRIDGES_TEXT)
    (corpus / MILLS).write_text(MILLS_TEXT)
    env = {
        **cli_env,
        "RAG_CORPUS_DIR": str(corpus),
        "RAG_INDEX_DIR": str(tmp_path / "index"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "TERM": "xterm-256color",
        "PROMPT_TOOLKIT_NO_CPR": "1",
    }
    # indexed here (the model is loaded already); the chat only reads the index
    make_runtime(
        tmp_path, embedder, corpus=corpus, llm_backend="extractive"
    ).ingest_service().ingest()
    child = pexpect.spawn(RAG, ["chat"], env=env, encoding="utf-8", dimensions=(50, 200),
                          timeout=60)  # fmt: skip

    def say(line: str) -> str:
        child.sendline(line)
        child.expect(FRESH_PROMPT)
        return UI_CODES.sub("", child.before)

    try:
        child.expect(FRESH_PROMPT)
        assert "/unanswerable" in say("/help")
        assert "nothing asked yet" in say("/good")
        assert "[1] bridges.txt:L2" in say(KESTREL)
        out = say("/bad")
        assert "marked wrong (feedback #1); give the right lines with /lines" in out
        out = say("/lines bridges.txt:L9")
        assert "error: lines[0]: bridges.txt:L9 is past the end of bridges.txt (4 lines)" in out
        out = say("/lines bridges.txt:Lx")
        assert "error: 'bridges.txt:Lx' is not FILE:Lx-Ly" in out
        out = say("/lines bridges.txt:L2-L3")
        assert "marked wrong (feedback #1, lines bridges.txt:L2-L3); `rag feedback export`" in out
        out = say("/good")  # the same answer marked again: the same record
        assert "marked right (feedback #1, lines bridges.txt:L2-L3)" in out
        say("Who painted the Heron footbridge?")
        out = say("/unanswerable")
        assert "marked unanswerable (feedback #2)" in out
        child.sendeof()
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    listed = subprocess.run([RAG, "feedback", "list"], env=env, capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert re.search(r"#2  ready +unanswerable  Who painted the Heron footbridge\?", listed.stdout)
    assert re.search(r"#1  ready +right +When did the Kestrel Bridge", listed.stdout)
    assert "2 marked, 2 ready to export, 0 stale" in listed.stderr
    out = tmp_path / "feedback.jsonl"
    exported = subprocess.run([RAG, "feedback", "export", "--out", str(out)], env=env,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    assert f"wrote 2 golden rows to {out} (2 new, 0 updated, 0 kept" in exported.stdout
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[0]["evidence"] == [{"file": BRIDGES, "start_line": 2, "end_line": 3}]
    assert rows[1]["answerable"] is False and rows[1]["question"].startswith("Who painted")
