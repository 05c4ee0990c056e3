"""Device and precision choice: CUDA when available (half precision), else CPU (float32)."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import torch

log = logging.getLogger("maas.runtime")

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# The CPU flags that give a half-precision type native matmuls. Without them torch emulates the type:
# MiniLM in bfloat16 ran 7.7x slower than in float32 on a CPU without avx512_bf16 or AMX.
NATIVE_CPU_FLAGS = {"bfloat16": ("avx512_bf16", "amx_bf16"), "float16": ("avx512_fp16", "amx_fp16")}


def choose_device(requested: str | None = None) -> str:
    """The model's `device` (the server's `device` setting fills it in): auto is cuda if torch sees one, else cpu."""
    device = requested or "auto"
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for but torch sees no CUDA device; use 'cpu' or 'auto'")
    return device


def choose_dtype(requested: str, device: str, cpu_flags: frozenset[str] | None = None) -> torch.dtype:
    """'auto' is float16 on CUDA (half the memory, tensor cores) and float32 on CPU, where
    half-precision matmuls are slower than float32 on most CPUs.

    A half-precision type asked for on a CPU without native support for it is served in float32,
    with a warning: emulated, it would be several times slower, never faster. (`cpu_flags` is a
    seam for tests; by default the flags this machine's CPU reports.)
    """
    if requested == "auto":
        return torch.float16 if device.startswith("cuda") else torch.float32
    if device == "cpu" and requested in NATIVE_CPU_FLAGS:
        flags = cpu_flags if cpu_flags is not None else read_cpu_flags()
        native = NATIVE_CPU_FLAGS[requested]
        if flags and not flags.intersection(native):
            log.warning("dtype %s was asked for, but this CPU has no native %s (%s): serving float32, which is "
                        "faster here", requested, requested, " or ".join(native))
            return torch.float32
    return _DTYPES[requested]


@functools.cache
def read_cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none: then nothing is assumed)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return frozenset(line.partition(":")[2].split())


def limit_threads(cpus: float) -> int:
    """Give torch's intra-op pool as many threads as the CPUs this process reserved (a Ray replica's
    num_cpus), at least one: two replicas of a 2-core machine then do not fight over the cores."""
    threads = max(1, int(cpus))
    torch.set_num_threads(threads)
    return threads
