"""numpy's BLAS on one thread for the answer path.

The reader's products are small (a question's tokens against a dozen sentences' tokens, a
question's vector against a pool's sentence vectors): OpenBLAS's worker threads cost more to
wake than they save, and they spin against the threads that run beside them in a query (the
keyword search, Chroma, onnxruntime). Measured on 2 cores (f43b8d4): the joint reader's
products over 12 candidates took 3x as long with two BLAS threads as with one, and a warm
search over the 100k tier 26.6 ms instead of 20.5 (`make bench` reports the search path).
The limit is the process's: it applies to whatever numpy does afterwards in it.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)

_lock = threading.Lock()
_limited = False


def one_blas_thread() -> None:
    """Limit numpy's BLAS (OpenBLAS, MKL, BLIS) to one thread; once per process."""
    global _limited
    with _lock:
        if _limited:
            return
        try:
            from threadpoolctl import threadpool_limits

            threadpool_limits(limits=1, user_api="blas")
        except Exception as exc:  # a missed speed-up must not stop answering
            log.warning("could not limit numpy's BLAS threads (%s); answering goes on", exc)
        _limited = True
