"""`rag chat`'s marks on the last answer: /good, /bad, /lines FILE:Lx-Ly, /unanswerable.

Each one records (or marks again) the last answer in the feedback store beside the index,
the same store the page and ``POST /v1/feedback`` write; `rag feedback export` turns the
ready ones into golden rows.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pydantic import ValidationError

from rag.errors import InputError
from rag.feedback.records import FeedbackIn, FeedbackRecord, LineRange, Mark

if TYPE_CHECKING:
    from rag.answering.conversation import ChatAnswer
    from rag.config import Settings
    from rag.feedback.marking import FeedbackService

COMMANDS = {
    "/good": "mark the last answer right (it becomes a golden row)",
    "/bad [ANSWER]": "mark it wrong (optionally with the right answer in words)",
    "/lines FILE:Lx-Ly": "the lines that do answer it (several ranges: space between)",
    "/unanswerable": "mark it: the documents do not say this",
}
MARKS: dict[str, Mark] = {"/good": "right", "/bad": "wrong", "/unanswerable": "unanswerable"}
_RANGE = re.compile(r"^(?P<path>.+):L?(?P<start>\d+)(?:-L?(?P<end>\d+))?$")
LINES_HINT = "write /lines FILE:Lx-Ly, e.g. /lines notes.txt:L12-L14 (paths as citations show)"


def parse_ranges(arg: str) -> list[LineRange]:
    """``FILE:L12-L14 FILE:L3`` as line ranges; a clear error for anything else."""
    ranges = []
    for word in arg.split():
        found = _RANGE.match(word)
        if found is None:
            raise InputError(f"{word!r} is not FILE:Lx-Ly", LINES_HINT)
        start = int(found["start"])
        end = int(found["end"] or start)
        try:
            r = LineRange(path=found["path"], start_line=start, end_line=end)
        except ValueError:
            raise InputError(f"{word}: not lines of a document", LINES_HINT) from None
        if r.problem():
            raise InputError(f"{word}: {r.problem()}", LINES_HINT)
        ranges.append(r)
    if not ranges:
        raise InputError("/lines needs the lines that answer", LINES_HINT)
    return ranges


class ChatMarks:
    """The marks of one chat session: which answer was last marked, as which record."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._service: FeedbackService | None = None
        self._marked: tuple[ChatAnswer, FeedbackRecord] | None = None

    @property
    def service(self) -> FeedbackService:
        if self._service is None:
            from rag.feedback.marking import FeedbackService

            self._service = FeedbackService(self.settings)
        return self._service

    def command(self, name: str, arg: str, last: ChatAnswer) -> FeedbackRecord:
        """Mark ``last`` as ``name`` says; returns the record as stored."""
        before = self._marked[1] if self._marked and self._marked[0] is last else None
        mark: Mark = MARKS.get(name, before.mark if before else "wrong")
        lines = [LineRange(path=r.path, start_line=r.start_line, end_line=r.end_line)
                 for r in (before.lines if before else [])]  # fmt: skip
        expected = before.expected if before else None
        if name == "/lines":
            lines = parse_ranges(arg)
        elif name == "/bad" and arg:
            expected = arg
        elif name in ("/good", "/unanswerable"):
            lines = lines if name == "/good" else []
        answer = last.answer
        try:
            body = FeedbackIn(
                mark=mark,
                question=last.question,
                query=last.rewrite.query if last.rewrite.changed else None,
                answer=answer.answer,
                abstained=answer.abstained,
                citations=[
                    LineRange(path=c.path, start_line=c.start_line, end_line=c.end_line)
                    for c in answer.citations
                ],
                backend=answer.backend,
                model=answer.model,
                index_version=answer.index_version,
                lines=lines,
                expected=expected,
                id=before.id if before else None,
            )
        except ValidationError as exc:  # e.g. a question longer than a mark may record
            problem = exc.errors()[0]
            where = ".".join(str(p) for p in problem["loc"])
            raise InputError(f"cannot mark this answer: {where}: {problem['msg']}") from None
        record = self.service.record(body, "chat")
        self._marked = (last, record)
        return record

    def close(self) -> None:
        if self._service is not None:
            self._service.close()


def said(record: FeedbackRecord) -> str:
    """What the chat says after a mark."""
    lines = ", ".join(r.anchor for r in record.lines)
    head = f"marked {record.mark} (feedback #{record.id}" + (f", lines {lines})" if lines else ")")
    if record.state == "needs lines":
        return f"{head}; give the right lines with /lines FILE:Lx-Ly, or /unanswerable"
    if record.state == "stale":
        return f"{head}; stale: {'; '.join(record.problems)}"
    return f"{head}; `rag feedback export` writes it as a golden row"
