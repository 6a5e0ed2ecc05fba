"""From marks to golden rows: what `rag feedback export` writes.

A ready record becomes one row of ``eval/golden.jsonl``'s schema (id, question, answers,
answerable, evidence), with ``origin: "feedback"`` so that the regression gate holds it to
its baseline outcome: a marked answer that was right once must stay right.

- "the documents do not say this" (or "right" on an abstention): ``answerable: false``;
- chosen lines: ``evidence`` (a wrong answer needs them; a right one may give them);
- "right" without chosen lines: the answer's citations (less those marked unsupported);
- ``answers``: the right answer in the person's words when given; otherwise none, and the
  row is judged on its citation alone (an answer that cites the evidence counts).

The question is the standalone one (a rewritten follow-up), since `rag eval` asks each
question on its own.  Exporting merges into the file: rows of other records are kept; the
row of a record gone stale is taken out (and said so), since its lines may point elsewhere.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.errors import InputError
from rag.feedback.records import FeedbackRecord, MarkedLines

ORIGIN = "feedback"


def row_id(record: FeedbackRecord) -> str:
    """Stable and unlikely to meet another store's: the record's id and its question."""
    tag = hashlib.sha256(record.asked.encode()).hexdigest()[:6]
    return f"fb-{record.id:04d}-{tag}"


def _range(r: MarkedLines) -> dict[str, Any]:
    return {"file": r.path, "start_line": r.start_line, "end_line": r.end_line}


def golden_row(record: FeedbackRecord) -> dict[str, Any] | None:
    """The golden row ``record`` becomes, or None when it is not ready (stale, or a wrong
    answer without the right lines)."""
    if record.state != "ready":
        return None
    row: dict[str, Any] = {"id": row_id(record), "question": record.asked}
    unanswerable = record.mark == "unanswerable" or (
        record.mark == "right" and record.abstained and not record.lines
    )
    if unanswerable:
        row.update(answers=[], answerable=False, evidence=[])
    else:
        if record.lines:
            evidence = record.lines
        else:
            unsupported = {(u.path, u.start_line, u.end_line) for u in record.unsupported}
            evidence = [
                c for c in record.citations if (c.path, c.start_line, c.end_line) not in unsupported
            ]
        if not evidence:
            return None
        answers = [record.expected] if record.expected else []
        row.update(answers=answers, answerable=True, evidence=[_range(r) for r in evidence])
    row.update(origin=ORIGIN, feedback_id=record.id, marked_at=record.updated_at)
    return row


@dataclass
class Export:
    written: int = 0
    added: int = 0
    replaced: int = 0
    kept: int = 0  # rows already in the file that no record of this store wrote
    removed: list[str] = field(default_factory=list)  # rows of records now stale
    skipped: list[FeedbackRecord] = field(default_factory=list)  # stale, or needing lines

    def lines(self, out: Path) -> list[str]:
        said = [
            f"wrote {self.written} golden rows to {out} ({self.added} new, "
            f"{self.replaced} updated, {self.kept} kept from the file)"
        ]
        if self.removed:
            said.append(f"  removed (their records are stale): {', '.join(self.removed)}")
        for r in self.skipped:
            said.append(f"  not exported: #{r.id} ({r.state}): {'; '.join(r.problems)}")
        return said


def _read_rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise InputError(
                f"{path}:{number} is not JSON", "export to a new file, or fix that line"
            ) from None
        if not isinstance(row, dict) or "id" not in row:
            raise InputError(f"{path}:{number} is not a golden row (no id)")
        rows.append(row)
    return rows


def export(records: list[FeedbackRecord], out: Path) -> Export:
    """Write the ready ``records`` as golden rows into ``out`` (merged by id; other rows
    kept in place, new ones appended oldest first)."""
    result = Export()
    fresh: dict[str, dict[str, Any]] = {}
    stale: set[str] = set()
    for record in sorted(records, key=lambda r: r.id):
        row = golden_row(record)
        if row is None:
            result.skipped.append(record)
            if record.state == "stale":
                stale.add(row_id(record))
        else:
            fresh[row["id"]] = row
    rows = []
    for row in _read_rows(out):
        if row["id"] in stale:
            result.removed.append(row["id"])
        elif row["id"] in fresh:
            rows.append(fresh.pop(row["id"]))
            result.replaced += 1
        else:
            rows.append(row)
            result.kept += 1
    result.added = len(fresh)
    rows.extend(fresh.values())
    result.written = result.added + result.replaced
    if not rows:  # an empty golden file is an error to `rag eval`: none at all instead
        out.unlink(missing_ok=True)
        return result
    out.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    temp = out.with_name(out.name + ".tmp")
    temp.write_text(text, encoding="utf-8")
    temp.replace(out)
    return result
