"""numpy's BLAS runs on one thread once the answer path is built (rag/adapters/blas.py).

Both checks run in a fresh process: a BLAS library that another test loads later (scipy's,
through training code) would otherwise show up unlimited in this one."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from rag.runtime import Runtime

pytestmark = pytest.mark.skipif(
    (os.cpu_count() or 1) < 2, reason="one CPU: BLAS has one thread anyway"
)

BLAS = (
    "from threadpoolctl import threadpool_info as i\n"
    "b = lambda: [p['num_threads'] for p in i() if p['user_api'] == 'blas']\n"
)


def _run(code: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    return subprocess.run(
        [sys.executable, "-c", BLAS + code], capture_output=True, text=True, env=env, check=True
    ).stdout


def test_a_fresh_process_has_more_than_one_blas_thread_until_limited() -> None:
    out = _run(
        "import numpy\n"
        "before = b()\n"
        "from rag.adapters.blas import one_blas_thread\n"
        "one_blas_thread(); one_blas_thread()\n"
        "print(max(before), max(b()))\n"
    )
    before, after = map(int, out.split())
    assert before > 1 and after == 1


def test_the_answer_service_limits_blas(corpus_runtime: Runtime) -> None:
    settings = corpus_runtime.settings.model_dump_json()
    out = _run(
        "import json, numpy\n"
        "from rag.config import Settings\n"
        "from rag.runtime import Runtime\n"
        "before = b()\n"
        f"runtime = Runtime(Settings.model_validate_json({settings!r}))\n"
        "assert runtime.answer_service is not None\n"
        "print(json.dumps([before, b()]))\n"
    )
    before, after = json.loads(out)
    assert max(before) > 1
    assert after and max(after) == 1
