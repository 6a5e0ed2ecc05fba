"""Ollama's /api/chat wire format (NDJSON lines), shared by the tests that fake an Ollama."""

from __future__ import annotations

import json
import re

MODEL = "llama3.2:3b"
_PASSAGE = re.compile(r"\[(\d+)\] [^\n]+\n(.*?)(?=\n\n\[\d+\]|\Z)", re.S)


def chat_line(content: str, done: bool = False, model: str = MODEL) -> str:
    """One line of a streamed /api/chat response; the last one has ``done: true``."""
    body: dict[str, object] = {
        "model": model,
        "created_at": "2026-11-23T10:00:00.000000Z",
        "message": {"role": "assistant", "content": content},
        "done": done,
    }
    if done:
        body.update(done_reason="stop", total_duration=1, eval_count=3, prompt_eval_count=9)
    return json.dumps(body) + "\n"


def july_2000_answer(prompt: str) -> str:
    """What a model reading the numbered passages answers to "when did Putin last visit":
    the July 2000 sentence, citing the passage that says it, streamed word by word."""
    number = next(n for n, text in _PASSAGE.findall(prompt) if "July 2000" in text)
    words = ["Putin", " last", " visited", " North", " Korea", " in", " July", " 2000"]
    return "".join(chat_line(w) for w in [*words, f" [{number}]."]) + chat_line("", done=True)
