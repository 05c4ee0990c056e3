"""Threads that are not runners run torch on one OpenMP thread (a request thread preparing inputs).

No torch import at module level: the wire layer imports the runner, and the app must import without
torch (tests/server/test_light_import.py); a thread that prepares inputs has torch loaded already.
"""

from __future__ import annotations

import ctypes
import functools
import threading
from collections.abc import Callable

_single_threaded = threading.local()


def single_threaded_torch_here() -> None:
    """Keep torch on the calling thread (a request thread preparing inputs) to one intra-op thread.

    Under libgomp, torch's OpenMP on Linux, each thread that runs a parallel op gets a team of
    worker threads of its own for as long as it lives. Once the process holds more of them than it
    has cores, libgomp stops spinning at its barriers and sleeps instead, and a runner's forward
    pass then sleeps and wakes thousands of times: the image classifier ran 2-2.5x slower on its
    runner after a few request threads had turned images into tensors (docs/performance.md).
    ``torch.set_num_threads`` would also change the default of threads yet to start (a runner);
    ``omp_set_num_threads`` changes this thread's setting alone. ``torch.get_num_threads`` runs
    first so that torch's lazy per-thread initialisation has happened and will not undo it. The
    main thread is left alone: it is a script's or a test's own, not one of many request threads.
    """
    if getattr(_single_threaded, "done", False) or threading.current_thread() is threading.main_thread():
        return
    _single_threaded.done = True
    set_threads = _omp_set_num_threads()
    if set_threads is not None:
        import torch

        torch.get_num_threads()
        set_threads(1)


@functools.cache
def _omp_set_num_threads() -> Callable[[int], None] | None:
    """The OpenMP runtime's omp_set_num_threads that torch loaded (globally), if any."""
    try:
        function: Callable[[int], None] = ctypes.CDLL(None).omp_set_num_threads
    except (AttributeError, OSError):  # torch without OpenMP, or another platform's loader
        return None
    return function
