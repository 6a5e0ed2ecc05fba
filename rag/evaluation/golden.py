"""The golden file: questions with accepted answers and the lines that hold them.

A row with no ``answers`` but with ``evidence`` is judged on its citation alone (rows made
from a person's marks, `rag feedback export`, often are).  ``origin: "feedback"`` marks such
rows: the regression gate fails when one of them that was right in the baseline is wrong.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from rag.errors import InputError
from rag.evaluation.metrics import Range


@dataclass(frozen=True)
class GoldenQuestion:
    id: str
    question: str
    answers: list[str]
    answerable: bool
    evidence: list[Range]
    context: list[Range] = field(default_factory=list)  # the passage it was written from
    origin: str | None = None  # "feedback": a marked answer, guarded by the gate


def _ranges(raw: object, where: str) -> list[Range]:
    if not isinstance(raw, list):
        raise ValueError(f"{where} must be a list")
    out = []
    for item in raw:
        if not isinstance(item, dict):
            raise ValueError(f"{where} items must be objects")
        out.append(Range(str(item["file"]), int(item["start_line"]), int(item["end_line"])))
    return out


def load_golden(path: Path) -> list[GoldenQuestion]:
    """Read and validate a golden JSONL file; errors name the line and what is wrong."""
    if not path.is_file():
        raise InputError(f"golden file not found: {path}", "pass --golden FILE (JSON lines)")
    questions: list[GoldenQuestion] = []
    seen: set[str] = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            q = GoldenQuestion(
                id=str(row["id"]),
                question=str(row["question"]),
                answers=[str(a) for a in row["answers"]],
                answerable=bool(row["answerable"]),
                evidence=_ranges(row.get("evidence", []), "evidence"),
                context=_ranges(row.get("context", []), "context"),
                origin=str(row["origin"]) if row.get("origin") else None,
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise InputError(
                f"{path}:{number}: not a valid golden row ({exc.__class__.__name__}: {exc})",
                "each line needs id, question, answers, answerable and evidence",
            ) from None
        if q.id in seen:
            raise InputError(f"{path}:{number}: duplicate id {q.id!r}")
        seen.add(q.id)
        questions.append(q)
    if not questions:
        raise InputError(f"golden file {path} has no questions")
    return questions


def load_goldens(paths: list[Path]) -> list[GoldenQuestion]:
    """Several golden files as one set: ids must be unique across them."""
    questions: list[GoldenQuestion] = []
    where: dict[str, Path] = {}
    for path in paths:
        for q in load_golden(path):
            if q.id in where:
                raise InputError(
                    f"question id {q.id!r} is in both {where[q.id]} and {path}",
                    "ids must be unique across the --golden files",
                )
            where[q.id] = path
            questions.append(q)
    return questions


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def corpus_hash(root: Path) -> str:
    """One hash over every file's relative path and content."""
    digest = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(file.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()
