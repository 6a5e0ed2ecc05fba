"""Finding and reading documents: which files, which text, and why a file is skipped."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from rag.errors import EmptyCorpusError, InputError
from rag.indexing.formats import FormatError, parse

# Formats we cannot read; other files are read by suffix (rag.indexing.formats) or sniffed.
BINARY_SUFFIXES = frozenset(
    ".png .jpg .jpeg .gif .bmp .ico .webp .tif .tiff .doc .xlsx .xls .pptx .ppt .odt "
    ".zip .gz .tgz .bz2 .xz .7z .rar .tar .jar .whl .exe .dll .so .dylib .o .a .pyc .class "
    ".mp3 .mp4 .wav .flac .ogg .avi .mov .mkv .woff .woff2 .ttf .otf .sqlite .db .bin .gguf "
    ".safetensors .onnx .npy .npz .pkl .parquet".split()
)


@dataclass(frozen=True)
class SourceFile:
    """A file to ingest: where it is and the name citations use for it."""

    abs_path: Path
    rel_path: str  # relative to its root, '/' separators


@dataclass(frozen=True)
class Document:
    """A file's text: its own lines, or for other formats lines citations can name.

    ``pages`` (PDF): the 1-based line of ``text`` where each page starts.  ``warnings``:
    how the file was read when that needs saying (e.g. "not UTF-8; read as Latin-1").
    """

    source: SourceFile
    text: str
    sha256: str
    size: int
    mtime: float
    pages: tuple[int, ...] | None = None
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


def _is_hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def check_paths(paths: Iterable[Path]) -> None:
    """Fail fast, before any model loads or index opens, on paths that do not exist."""
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise InputError(
            "no such file or folder: " + ", ".join(str(p) for p in missing),
            "check the path; `rag ingest` takes files or folders of text documents",
        )


def discover(paths: Iterable[Path], corpus_root: Path) -> list[SourceFile]:
    """Files under ``paths``; names are relative to ``corpus_root`` when inside it.

    A path outside the corpus root is its own root (a folder) or named by its
    file name (a file).  Missing paths are an error before anything is read.
    """
    paths = list(paths)
    check_paths(paths)
    corpus_root = corpus_root.resolve()
    sources: dict[Path, SourceFile] = {}
    for given in paths:
        given_abs = given.resolve()
        if given_abs.is_relative_to(corpus_root):
            root = corpus_root
        else:
            root = given_abs if given_abs.is_dir() else given_abs.parent
        if given_abs.is_file():
            files = [given_abs]
        else:
            files = []
            for dirpath, dirnames, filenames in os.walk(given_abs, followlinks=False):
                here = Path(dirpath)
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                files.extend(here / f for f in sorted(filenames) if not f.startswith("."))
        for f in files:
            if f.is_symlink() and not f.resolve().is_relative_to(root):
                continue  # a link leaving the root is not part of the corpus
            if given_abs.is_dir() and _is_hidden(f, given_abs):
                continue
            sources.setdefault(f, SourceFile(abs_path=f, rel_path=f.relative_to(root).as_posix()))
    if not sources:
        raise EmptyCorpusError(
            "no files found in " + ", ".join(str(p) for p in paths),
            "put .txt, .md, .rst or other text files there, or name another folder",
        )
    return sorted(sources.values(), key=lambda s: s.rel_path)


def read(source: SourceFile, max_bytes: int) -> Document | Skipped:
    """The file's text, or why it is skipped.  Never raises for a bad file."""
    name = source.rel_path
    try:
        stat = source.abs_path.stat()
    except OSError as exc:
        return Skipped(name, f"cannot read: {exc.strerror}")
    if stat.st_size > max_bytes:
        return Skipped(
            name,
            f"too large ({stat.st_size / 2**20:.1f} MiB > {max_bytes / 2**20:.1f} MiB; "
            "raise RAG_MAX_FILE_MB to include it)",
        )
    if source.abs_path.suffix.lower() in BINARY_SUFFIXES:
        return Skipped(name, f"unsupported format ({source.abs_path.suffix})")
    try:
        data = source.abs_path.read_bytes()
    except OSError as exc:
        return Skipped(name, f"cannot read: {exc.strerror}")
    if len(data) > max_bytes:  # grew since stat()
        return Skipped(name, f"too large (over {max_bytes / 2**20:.1f} MiB)")
    try:
        parsed = parse(source.abs_path.suffix.lower(), data, max_bytes)
    except FormatError as exc:
        return Skipped(name, str(exc))
    except Exception as exc:  # a parser bug must not stop an ingest
        return Skipped(name, f"cannot read: {type(exc).__name__}: {exc}"[:300])
    if not parsed.text.strip():
        return Skipped(name, "empty (no text)")
    return Document(
        source=source,
        text=parsed.text,
        sha256=hashlib.sha256(data).hexdigest(),
        size=stat.st_size,
        mtime=stat.st_mtime,
        pages=parsed.pages,
        warnings=parsed.warnings,
    )
