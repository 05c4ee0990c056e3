"""A per-worker memory budget: the working memory of the requests in flight, admitted against one sum.

Each limit on an input (pixels, audio seconds, explanation steps) bounds one request; what a worker
holds is the sum over the requests it runs at once, which the limits alone do not bound (12
concurrent 40 Mpx images added 1.8 GB). So a request that is about to decode or explain something
large first reserves its estimated peak (the figures below, measured in docs/server.md) from the
worker's budget, and gives it back when the request ends (its view has returned: what it decoded is
garbage by then). Past the budget it is answered 503
``overloaded`` with ``Retry-After`` at once, before it decodes anything; a request that could never
fit (its estimate alone is above the budget) is a 413.
"""

from __future__ import annotations

import os
import threading

from flask import Flask, g

from ..errors import APIError
from ..ops import metrics

MB = 1 << 20
DEFAULT_SHARE = 0.25  # of the machine's physical memory, per worker, when memory_budget_mb is not set


def default_budget_bytes() -> int:
    """A quarter of the machine's physical memory (6 GB of 24 GB)."""
    return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") * DEFAULT_SHARE)


class MemoryBudget:
    """Bytes of request working memory one worker admits at once."""

    def __init__(self, limit_bytes: int) -> None:
        self.limit = limit_bytes
        self._held = 0
        self._lock = threading.Lock()

    @property
    def held(self) -> int:
        return self._held

    def reserve(self, nbytes: int, what: str, param: str | None = None) -> None:
        """Hold `nbytes` until this request ends; 503 past the budget, 413 when it could never fit."""
        if nbytes > self.limit:
            raise APIError(f"{what} needs about {nbytes // MB} MB of working memory, above this server's "
                           f"memory_budget_mb of {self.limit // MB}; send less in one call",
                           status=413, param=param, code="request_too_large")
        with self._lock:
            if self._held + nbytes > self.limit:
                metrics.SHED.labels("memory").inc()
                raise APIError(f"the server is at its memory budget ({self._held // MB} of {self.limit // MB} MB "
                               f"held by requests in flight; {what} needs {nbytes // MB} MB); retry shortly",
                               status=503, code="overloaded", headers={"Retry-After": "1"})
            self._held += nbytes
            metrics.MEMORY_RESERVED.set(self._held)
        g.setdefault("maas_reservations", []).append((self, nbytes))

    def release(self, nbytes: int) -> None:
        with self._lock:
            self._held -= nbytes
            metrics.MEMORY_RESERVED.set(self._held)


def init_app(app: Flask) -> None:
    """Give each request's reservations back when it ends, whatever its outcome."""
    app.teardown_request(_release_this_requests_memory)


def _release_this_requests_memory(_exc: BaseException | None) -> None:
    for budget, nbytes in g.pop("maas_reservations", []):
        budget.release(nbytes)
