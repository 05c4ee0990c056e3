"""Usage metering: one row per /v1 request with who, which model, how many tokens, status and latency.

Never the request's content: a usage row has no field that could hold a prompt, an output or an
image.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, select

from .store import Store, usage

log = logging.getLogger("maas.accounts")


@dataclass(frozen=True)
class UsageRecord:
    """What one request used. `prompt_tokens` counts texts/images for classification."""

    at: float
    route: str
    status: int
    latency_ms: float
    key_id: int | None = None
    key_name: str | None = None
    model: str | None = None
    task: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    request_id: str | None = None


def record_usage(store: Store, record: UsageRecord) -> None:
    with store.engine.begin() as conn:
        conn.execute(usage.insert().values(**dataclasses.asdict(record)))


class UsageWriter:
    """Writes usage rows on a background thread, many per transaction, off the request's path.

    A request only queues its row (microseconds); the thread writes whatever has queued in one
    transaction. `flush` waits until everything queued so far is in the store; it runs before
    `/v1/usage` answers and at exit, so a caller always sees its own requests. A crash can lose
    the rows of the last moments (what queued in the last `linger` seconds, at most `max_batch`).
    """

    def __init__(self, store: Store, *, max_batch: int = 500, linger: float = 0.5) -> None:
        self.store = store
        self.max_batch = max_batch
        self.linger = linger
        self._queue: queue.Queue[UsageRecord | threading.Event] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def add(self, record: UsageRecord) -> None:
        self._ensure_thread()
        self._queue.put(record)

    def flush(self, timeout: float = 30) -> bool:
        """Wait until every row queued before this call is written; False on timeout."""
        if self._thread is None:
            return True
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def _ensure_thread(self) -> None:
        # Started on first use, so it is started in the gunicorn worker, never in a process that forks.
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="maas-usage-writer", daemon=True)
                    self._thread.start()
                    atexit.register(self.flush, 5)

    def _run(self) -> None:
        while True:
            items = [self._queue.get()]
            # Linger so that rows arriving close together share one transaction: one commit per
            # request cost the serving threads ~1 ms of CPU each (measured). A flush ends it early.
            deadline = time.monotonic() + self.linger
            while len(items) < self.max_batch and not isinstance(items[-1], threading.Event):
                try:
                    items.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
            rows = [dataclasses.asdict(item) for item in items if isinstance(item, UsageRecord)]
            try:
                if rows:
                    with self.store.engine.begin() as conn:
                        conn.execute(usage.insert(), rows)
            except Exception:  # a store outage loses these rows, never the serving thread
                log.exception("could not write %d usage rows", len(rows))
            for item in items:
                if isinstance(item, threading.Event):
                    item.set()


def usage_summary(store: Store, *, key_id: int | None = None, key_name: str | None = None,
                  since: float | None = None, anonymous: bool = False) -> list[dict[str, Any]]:
    """Totals per key and model: requests, errors (status >= 400), tokens, mean latency.

    Filters: `key_id` (one key), `key_name`, `anonymous` (requests made without a key), `since`.
    """
    query = select(
        usage.c.key_name, usage.c.model,
        func.count().label("requests"),
        func.sum(case((usage.c.status >= 400, 1), else_=0)).label("errors"),
        func.coalesce(func.sum(usage.c.prompt_tokens), 0).label("prompt_tokens"),
        func.coalesce(func.sum(usage.c.completion_tokens), 0).label("completion_tokens"),
        func.avg(usage.c.latency_ms).label("mean_latency_ms"),
    ).group_by(usage.c.key_name, usage.c.model).order_by(usage.c.key_name, usage.c.model)
    if key_id is not None:
        query = query.where(usage.c.key_id == key_id)
    if key_name is not None:
        query = query.where(usage.c.key_name == key_name)
    if anonymous:
        query = query.where(usage.c.key_id.is_(None))
    if since is not None:
        query = query.where(usage.c.at >= since)
    with store.engine.begin() as conn:
        rows = conn.execute(query).all()
    return [{"key": r.key_name, "model": r.model, "requests": int(r.requests), "errors": int(r.errors or 0),
             "prompt_tokens": int(r.prompt_tokens), "completion_tokens": int(r.completion_tokens),
             "total_tokens": int(r.prompt_tokens) + int(r.completion_tokens),
             "mean_latency_ms": round(float(r.mean_latency_ms or 0), 1)} for r in rows]
