"""numpy's BLAS runs on one thread once the answer path is built (rag/adapters/blas.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from threadpoolctl import threadpool_info

from rag.runtime import Runtime

pytestmark = pytest.mark.skipif(
    (os.cpu_count() or 1) < 2, reason="one CPU: BLAS has one thread anyway"
)


def _blas_threads() -> list[int]:
    return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]


def test_a_fresh_process_has_more_than_one_blas_thread_until_limited() -> None:
    code = (
        "from threadpoolctl import threadpool_info as i\n"
        "import numpy\n"
        "b = lambda: [p['num_threads'] for p in i() if p['user_api'] == 'blas']\n"
        "before = b()\n"
        "from rag.adapters.blas import one_blas_thread\n"
        "one_blas_thread(); one_blas_thread()\n"
        "print(max(before), max(b()))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    before, after = map(int, out.stdout.split())
    assert before > 1 and after == 1


def test_the_answer_service_limits_blas(corpus_runtime: Runtime) -> None:
    assert corpus_runtime.answer_service is not None
    assert _blas_threads() and max(_blas_threads()) == 1
