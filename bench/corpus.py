"""The scale corpus: the Python standard library's own sources and text files (plus pip and
setuptools, which the interpreter installs with itself), copied from the interpreter's lib
directory into the bench work dir (never into data/).

Files are taken in a fixed pseudo-random order (by a hash of their path), so a small tier is a
mix of the whole library rather than its first packages alphabetically, and each tier's files
are a prefix of the next one's.  The whole set is ~44 MB, ~110k chunks of 128 tokens.

A tier bigger than that (the 1M tier) goes on with the running environment's site-packages
(torch, chromadb, numpy, ... sources and documents: ~300 MB of real text), named ``venv/...``,
after the whole standard library: the smaller tiers never change.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sysconfig
from dataclasses import dataclass
from pathlib import Path

SUFFIXES = (".py", ".txt", ".rst", ".md", ".html", ".decTest")
SKIP_DIRS = {"site-packages", "__pycache__", "dist-packages", "idlelib", "turtledemo"}
BUNDLED = ("pip", "setuptools", "pkg_resources", "_distutils_hack")  # from ensurepip
BYTES_PER_CHUNK = 405  # measured: 128-token chunks of this corpus hold ~405 bytes
MAX_FILE_BYTES = 2 * 2**20
STDLIB_BYTES = 150_000 * BYTES_PER_CHUNK  # tiers above this reach into site-packages
STAMP = ".bench-corpus.json"


@dataclass(frozen=True)
class CorpusInfo:
    path: Path
    files: int
    bytes: int
    estimated_chunks: int


def stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _texts(root: Path, skip: set[str], suffixes: tuple[str, ...] = SUFFIXES) -> list[Path]:
    found = []
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if any(part in skip for part in rel.parts[:-1]) or path.is_symlink():
            continue
        if path.suffix in suffixes and path.is_file():
            size = path.stat().st_size
            if 0 < size <= MAX_FILE_BYTES:
                found.append(path)
    return sorted(found, key=lambda p: hashlib.sha256(str(p.relative_to(root)).encode()).digest())


def corpus_files(root: Path | None = None, more: bool = False) -> list[tuple[Path, str]]:
    """(file, name in the corpus) for every file, in the fixed bench order: the standard
    library first, then the bundled pip and setuptools (``more``: then the environment's
    other site-packages)."""
    root = root or stdlib_dir()
    files = [(p, str(p.relative_to(root))) for p in _texts(root, SKIP_DIRS)]
    site = root / "site-packages"
    for name in BUNDLED:
        if (site / name).is_dir():
            files += [
                (p, str(Path("site-packages") / p.relative_to(site)))
                for p in _texts(site / name, {"__pycache__"})
            ]
    venv = Path(sysconfig.get_paths()["purelib"])
    if more and venv.is_dir():
        skip = {"__pycache__", *BUNDLED}
        texts = _texts(venv, skip, (*SUFFIXES, ".pyi", ".h"))  # C headers: torch's API
        files += [(p, str(Path("venv") / p.relative_to(venv))) for p in texts]
    return files


def build_corpus(dest: Path, chunks: int | None, root: Path | None = None) -> CorpusInfo:
    """Copy about ``chunks`` chunks' worth of text (None: everything) into ``dest``.

    Kept when ``dest`` already holds exactly that selection (a stamp file lists it), so a
    re-run finds the files unchanged; otherwise made afresh.
    """
    budget = None if chunks is None else chunks * BYTES_PER_CHUNK
    chosen: list[tuple[Path, str, int]] = []
    total = 0
    more = budget is None or budget > STDLIB_BYTES
    for path, name in corpus_files(root, more):
        if budget is not None and total >= budget:
            break
        size = path.stat().st_size
        if budget is not None and total and total + size > budget * 1.1:
            continue  # a big file would overshoot the tier: take a smaller one
        chosen.append((path, name, size))
        total += size
    listing = sorted(f"{name}:{size}" for _, name, size in chosen)
    stamp = hashlib.sha256("\n".join(listing).encode()).hexdigest()
    info = CorpusInfo(dest, len(chosen), total, total // BYTES_PER_CHUNK)
    marker = dest / STAMP
    if marker.is_file() and json.loads(marker.read_text()).get("stamp") == stamp:
        return info
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for path, name, _ in chosen:
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    marker.write_text(json.dumps({"stamp": stamp, "files": len(chosen), "bytes": total}))
    return info
