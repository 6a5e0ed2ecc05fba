"""Failures of the disk and of the index's files, named as what they are.

A full file system shows up in many shapes: ``OSError(ENOSPC)``, SQLite's "database or disk
is full" or "disk I/O error", Chroma's "Error in compaction: Failed to apply logs".  A damaged
SQLite file shows up as "database disk image is malformed" or "file is not a database".
:func:`translate` turns any of them (looking through the exception's causes, and at the free
space left when the message says nothing) into :class:`DiskFullError` or
:class:`IndexDamagedError`, one line with a hint; everything else is left to the caller.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

from rag.errors import DiskFullError, IndexDamagedError, RagError

REBUILD_HINT = (
    "run `rag ingest --rebuild` (it re-embeds what cannot be read back); a `rag serve` on an"
    " embedded index: stop it first and start it again after"
)
LOW_SPACE = 1 << 20  # bytes: a write that failed with less free than this failed for space
_FULL_WORDS = (
    "no space left on device",
    "database or disk is full",
    "disk is full",
    "os error 28",
    "disk quota exceeded",
)
_DAMAGE_WORDS = (
    "database disk image is malformed",
    "file is not a database",
    "malformed database schema",
    "fts5: corrupt",
    "vtable constructor failed",
)


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and its causes and contexts (each once)."""
    out: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in out and len(out) < 20:
        out.append(current)
        current = current.__cause__ or current.__context__
    return out


def free_bytes(path: Path) -> int | None:
    """Bytes free for an unprivileged writer on the file system holding ``path`` (or the
    nearest folder above it that exists); None when it cannot be told."""
    for candidate in (path, *path.parents):
        try:
            st = os.statvfs(candidate)
        except OSError:
            continue
        return st.f_bavail * st.f_frsize
    return None


def is_disk_full(exc: BaseException, where: Path | None = None) -> bool:
    """Did ``exc`` happen because the disk is full?  ENOSPC or its messages anywhere in the
    chain; with ``where``, also an I/O or write failure while its file system has no room."""
    for item in _chain(exc):
        if isinstance(item, OSError) and item.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(item).lower()
        if any(word in text for word in _FULL_WORDS):
            return True
    if where is None:
        return False
    free = free_bytes(where)
    return free is not None and free < LOW_SPACE


def is_damage(exc: BaseException) -> bool:
    """Did ``exc`` come from a damaged SQLite file (not from a busy or full one)?"""
    for item in _chain(exc):
        text = str(item).lower()
        if any(word in text for word in _DAMAGE_WORDS):
            return True
        if isinstance(item, sqlite3.DatabaseError) and type(item) is sqlite3.DatabaseError:
            return True  # OperationalError (locked, busy, full) and others are not damage
    return False


def device_of(path: Path) -> str:
    """The device (as /proc/self/mounts names it) of the file system holding ``path``."""
    target = path
    while not target.exists() and target != target.parent:
        target = target.parent
    target = target.resolve()
    best, device = "", str(target)
    try:
        with open("/proc/self/mounts", encoding="utf-8") as handle:
            for line in handle:
                fields = line.split()
                if len(fields) < 2:
                    continue
                point = fields[1].replace("\\040", " ")
                inside = target == Path(point) or target.is_relative_to(point)
                if inside and len(point) > len(best):
                    best, device = point, f"{fields[0]} ({point})"
    except OSError:
        pass
    return device


def disk_full_error(index_dir: Path) -> DiskFullError:
    return DiskFullError(
        f"no space left on {device_of(index_dir)} for the index at {index_dir}",
        "free space or move RAG_INDEX_DIR (an interrupted ingest resumes at the next `rag ingest`)",
    )


def damaged_error(what: str, exc: BaseException | None = None) -> IndexDamagedError:
    why = ""
    if exc is not None:
        why = f" ({exc.__class__.__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''})"
    return IndexDamagedError(f"damaged: {what}{why}", REBUILD_HINT)


def translate(exc: BaseException, index_dir: Path | None = None) -> RagError | None:
    """``exc`` as the RagError it stands for (a full disk, a damaged file), or None."""
    if isinstance(exc, RagError):
        return exc
    if is_disk_full(exc, index_dir):
        if index_dir is not None:
            return disk_full_error(index_dir)
        return DiskFullError("no space left on the device", "free space and try again")
    if is_damage(exc):
        where = f"a file of the index at {index_dir}" if index_dir else "a file of the index"
        return damaged_error(where, exc)
    return None
