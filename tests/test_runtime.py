"""The Runtime says what it has built, and shares a model it was given instead of loading one."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from rag.adapters.embedder import Embedder
from rag.config import Settings
from rag.runtime import Runtime


def test_built_names_the_parts_made_so_far(tmp_path: Path) -> None:
    given = cast(Embedder, object())  # never used as a model here: only handed back
    runtime = Runtime(Settings(index_dir=tmp_path / "index"), embedder=given)
    assert runtime.built("embedder") and runtime.embedder is given
    assert not runtime.built("manifest")
    manifest = runtime.manifest
    assert runtime.built("manifest") and runtime.manifest is manifest
    assert not runtime.built("answer_service")
    manifest.close()


def test_without_a_model_nothing_is_built(tmp_path: Path) -> None:
    runtime: Any = Runtime(Settings(index_dir=tmp_path / "index"))
    assert not any(runtime.built(p) for p in ("embedder", "manifest", "stores", "retriever"))
