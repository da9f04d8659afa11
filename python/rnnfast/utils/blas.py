"""NumPy's BLAS beside rnnfast's threads.

NumPy's OpenBLAS keeps its worker threads spinning for about 0.1 s after
every multithreaded call. On a machine with as many cores as rnnfast's
kernels use, a spinning worker takes a core from them: right after building
an LSTM(64) model, whose orthogonal initializer runs a QR decomposition,
``predict_on_batch`` of W2 took 4.0 ms against 1.7 ms 0.1 s later (2 vCPUs,
float32; 4.0 against 0.85 ms with mixed_bfloat16). The small products rnnfast
leaves to NumPy therefore run on one BLAS thread, which wakes no workers
(an LSTM(128) -> Attention model, W2's batch: train step 41 -> 30 ms).
"""

from __future__ import annotations

import contextlib
import functools
import threading
import warnings

_lock = threading.Lock()
_controller = None  # threadpoolctl's view of the loaded BLAS libraries, made once


def _get_controller():
    global _controller
    with _lock:
        if _controller is None:
            try:
                from threadpoolctl import ThreadpoolController
            except ImportError:  # a dependency; without it NumPy's threads stay as they are
                _controller = False
            else:
                # Its warnings (two OpenMP runtimes loaded, say) are not the user's concern here.
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    _controller = ThreadpoolController()
        return _controller


def single_thread_blas():
    """A context in which NumPy's BLAS runs on one thread. threadpoolctl (3.8
    and later) lets one thread at a time hold OpenBLAS's process-wide setting:
    a context entered while another thread holds it changes nothing, so that
    neither restores the other's limit as the original."""
    controller = _get_controller()
    if not controller:
        return contextlib.nullcontext()
    return controller.limit(limits=1, user_api="blas")


def on_one_blas_thread(fn):
    """Decorator: ``fn`` runs inside ``single_thread_blas()``."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with single_thread_blas():
            return fn(*args, **kwargs)

    return wrapper
