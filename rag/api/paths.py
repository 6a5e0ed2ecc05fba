"""Which paths a remote caller may make rag read or write: the allowed roots, and uploads.

Every path given over the API is checked before anything is read: no NUL byte, no ``..``
(also percent-encoded), and its real path (symlinks resolved) inside an allowed root.  In a
folder, links to places outside the roots are never read (reported as skipped); a folder
whose ingest would follow such a link is refused.  Uploaded files are written only into
``<corpus>/uploads/``, under a sanitized name.
"""

from __future__ import annotations

import os
import re
import tempfile
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote

from rag.config import Settings
from rag.errors import InputError, RagError

UPLOADS = "uploads"
COPY_BLOCK = 1 << 20
MAX_NAME = 120
_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")


class PathNotAllowedError(RagError):
    """A path outside the allowed roots, or one that tries to climb out of them."""

    code = "path_not_allowed"


class PathNotFoundError(RagError):
    code = "path_not_found"


class UploadTooLargeError(RagError):
    code = "upload_too_large"


def _climbs(raw: str) -> bool:
    """Does ``raw`` hold a ``..`` segment, literally or percent-encoded (once or twice)?"""
    for part in re.split(r"[/\\]", raw):
        seen = part
        for _ in range(3):
            if seen.strip() == "..":
                return True
            decoded = unquote(seen)
            if decoded == seen:
                break
            if "/" in decoded or "\\" in decoded:
                return _climbs(decoded)
            seen = decoded
    return False


def check_text(raw: str, what: str = "path") -> None:
    """Refuse NUL bytes (also ``%00``) and ``..`` before the path is used for anything."""
    if "\x00" in raw or "\x00" in unquote(unquote(raw)):
        raise InputError(f"the {what} contains a NUL byte", "send the path as plain text")
    if _climbs(raw):
        raise PathNotAllowedError(
            f"the {what} contains '..'", "name files by their path inside an allowed root"
        )


class PathPolicy:
    def __init__(self, settings: Settings) -> None:
        self.corpus = Path(os.path.realpath(settings.corpus_dir))
        given = settings.allowed_roots or [settings.corpus_dir]
        self.roots = [Path(os.path.realpath(r)) for r in given]
        self.max_file_bytes = int(settings.max_upload_file_mb * 2**20)
        self.max_files = settings.max_upload_files

    # -- reading -------------------------------------------------------------
    def inside(self, real: Path) -> bool:
        return any(real == root or real.is_relative_to(root) for root in self.roots)

    def _refuse(self, raw: str) -> PathNotAllowedError:
        return PathNotAllowedError(
            f"{raw!r} is outside the folders this server may read",
            "name a file or folder under "
            + ", ".join(str(r) for r in self.roots)
            + " (relative paths are taken from the corpus folder); RAG_ALLOWED_ROOTS adds more",
        )

    def resolve(self, raw: str) -> Path:
        """The real path of ``raw`` (relative: to the corpus folder), if it may be read."""
        check_text(raw)
        given = Path(raw)
        if not given.is_absolute():
            given = self.corpus / given
        real = Path(os.path.realpath(given))
        if not self.inside(real):
            raise self._refuse(raw)  # before looking whether it exists: no existence oracle
        if not real.exists():
            raise PathNotFoundError(
                f"no such file or folder: {raw}",
                "check the path; relative paths are taken from the corpus folder",
            )
        return real

    def resolve_all(self, raws: Sequence[str]) -> tuple[list[Path], list[tuple[str, str]]]:
        """The real paths, and the links inside folders that will not be read (with why)."""
        named: dict[Path, str] = {}
        for raw in raws:
            named.setdefault(self.resolve(raw), raw)
        skipped: list[tuple[str, str]] = []
        for real, raw in named.items():
            if real.is_dir():
                skipped += self._outward_links(raw, real)
        return list(named), skipped

    def _outward_links(self, raw: str, folder: Path) -> list[tuple[str, str]]:
        """Links in ``folder`` to places outside the roots.  Ingest skips a link leaving the
        folder it walks (the corpus folder, or ``folder`` when outside it); one it would
        follow, yet outside the roots, makes the whole request refused: nothing is read."""
        walked = self.corpus if folder.is_relative_to(self.corpus) else folder
        found: list[tuple[str, str]] = []
        for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
            here = Path(dirpath)
            for name in [*filenames, *dirnames]:
                entry = here / name
                if not entry.is_symlink():
                    continue
                target = Path(os.path.realpath(entry))
                if self.inside(target):
                    continue
                shown = entry.relative_to(walked).as_posix()
                if target.is_relative_to(walked):
                    raise PathNotAllowedError(
                        f"{raw!r} holds a link to a place outside the allowed roots ({shown})",
                        "remove the link, or ingest the files it points to from an allowed root",
                    )
                found.append((shown, "a link to a place outside the allowed roots: not read"))
        return found

    # -- uploads ---------------------------------------------------------------
    @property
    def upload_dir(self) -> Path:
        return self.corpus / UPLOADS

    def check_uploads(self, files: Sequence[tuple[str, int | None]]) -> None:
        """Refuse, before anything is written, too many or too large files."""
        if not files:
            raise InputError("the upload holds no files", "send one or more parts named 'files'")
        if len(files) > self.max_files:
            raise UploadTooLargeError(
                f"{len(files)} files in one upload (limit {self.max_files})",
                "send fewer files per request, or raise RAG_MAX_UPLOAD_FILES",
            )
        for name, size in files:
            if size is not None and size > self.max_file_bytes:
                raise self._too_large(name)

    def _too_large(self, name: str) -> UploadTooLargeError:
        return UploadTooLargeError(
            f"{sanitize_name(name)} is larger than {self.max_file_bytes / 2**20:g} MiB",
            "split it, or raise RAG_MAX_UPLOAD_FILE_MB",
        )

    def store_uploads(self, files: Iterable[tuple[str, BinaryIO]]) -> list[Path]:
        """Write the files into the uploads folder (same name: replaced); their paths."""
        folder = self.upload_dir
        folder.mkdir(parents=True, exist_ok=True)
        real = Path(os.path.realpath(folder))
        if folder.is_symlink() or real != self.corpus / UPLOADS:
            raise PathNotAllowedError(
                f"the uploads folder {folder} is a link", "make it a plain folder in the corpus"
            )
        stored: list[Path] = []
        taken: set[str] = set()
        for name, stream in files:
            target = real / _unique(sanitize_name(name), taken)
            if target.is_dir():
                raise InputError(f"{target.name} is a folder in the uploads folder")
            fd, tmp = tempfile.mkstemp(dir=real, prefix=".upload.", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as out:
                    written = 0
                    while block := stream.read(COPY_BLOCK):
                        written += len(block)
                        if written > self.max_file_bytes:
                            raise self._too_large(name)
                        out.write(block)
                os.replace(tmp, target)  # replaces a link itself, never what it points to
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            stored.append(target)
        return stored


def sanitize_name(name: str) -> str:
    """A file name safe to create: base name only, no leading dot, plain characters."""
    base = re.split(r"[/\\]", unicodedata.normalize("NFKC", name.replace("\x00", "")))[-1]
    clean = _UNSAFE.sub("_", base).strip(" .")
    if clean in ("", "_"):
        clean = "upload.txt"
    if len(clean) > MAX_NAME:
        _, dot, suffix = clean.rpartition(".")
        keep = suffix if dot and len(suffix) <= 16 else ""
        clean = clean[: MAX_NAME - len(keep) - 1].rstrip(" .") + (f".{keep}" if keep else "")
    return clean


def _unique(name: str, taken: set[str]) -> str:
    """Two files of one upload with the same name get distinct names."""
    candidate, n = name, 1
    stem, dot, suffix = name.rpartition(".")
    while candidate in taken:
        n += 1
        candidate = f"{stem}-{n}.{suffix}" if dot and stem else f"{name}-{n}"
    taken.add(candidate)
    return candidate
