"""Where a decode step's time goes: named timers, off unless a profiling run turns them on.

``benchmarks/run.py --only profile`` starts the server with ``enabled = True`` (a module switch, set
before gunicorn forks its workers, so no setting or environment variable is read for it). Off, a
timer costs one attribute read; on, it adds each phase's seconds to a total under a lock.

The phases are named ``layer.phase`` (``model.forward``, ``runner.deliver``, ``wire.write`` ...);
:func:`summary` returns every total, and the runner logs it each time a decode batch drains.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

enabled = False

_lock = threading.Lock()
_totals: dict[str, list[float]] = {}  # name -> [calls, seconds]


def add(name: str, seconds: float) -> None:
    """Count one call of phase `name` that took `seconds`."""
    with _lock:
        total = _totals.setdefault(name, [0, 0.0])
        total[0] += 1
        total[1] += seconds


@contextmanager
def timed(name: str) -> Iterator[None]:
    """Time the block as phase `name` when profiling is on; do nothing otherwise."""
    if not enabled:
        yield
        return
    start = time.perf_counter()
    try:
        yield
    finally:
        add(name, time.perf_counter() - start)


def summary() -> dict[str, dict[str, float]]:
    """Every phase so far: its calls and its total milliseconds."""
    with _lock:
        return {name: {"calls": calls, "ms": round(seconds * 1000, 3)} for name, (calls, seconds) in _totals.items()}


def reset() -> None:
    with _lock:
        _totals.clear()
