"""Device and precision choice: CUDA when available (half precision), else CPU (float32)."""

from __future__ import annotations

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
