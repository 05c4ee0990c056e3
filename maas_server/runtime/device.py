"""Device and precision choice: CUDA when available (half precision), else CPU (float32)."""

from __future__ import annotations

import ctypes
import functools
import threading
from collections.abc import Callable

import torch

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def choose_device(requested: str | None = None) -> str:
    """The model's `device` (the server's `device` setting fills it in): auto is cuda if torch sees one, else cpu."""
    device = requested or "auto"
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for but torch sees no CUDA device; use 'cpu' or 'auto'")
    return device


def choose_dtype(requested: str, device: str) -> torch.dtype:
    """'auto' is float16 on CUDA (half the memory, tensor cores) and float32 on CPU, where
    half-precision matmuls are slower than float32 on most CPUs."""
    if requested != "auto":
        return _DTYPES[requested]
    return torch.float16 if device.startswith("cuda") else torch.float32


def limit_threads(cpus: float) -> int:
    """Give torch's intra-op pool as many threads as the CPUs this process reserved (a Ray replica's
    num_cpus), at least one: two replicas of a 2-core machine then do not fight over the cores."""
    threads = max(1, int(cpus))
    torch.set_num_threads(threads)
    return threads


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
    first so that torch's lazy per-thread initialisation has happened and will not undo it.
    """
    if getattr(_single_threaded, "done", False):
        return
    _single_threaded.done = True
    set_threads = _omp_set_num_threads()
    if set_threads is not None:
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
