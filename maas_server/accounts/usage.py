"""Usage metering: one row per /v1 request with who, which model, how many tokens, status and latency.

Never the request's content: a usage row has no field that could hold a prompt, an output or an
image.
"""

from __future__ import annotations

import atexit
import dataclasses
import itertools
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Integer, case, cast, func, select

from .store import Store, StoreUnavailable, usage

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
    compute_ms: float = 0.0  # the model's time it used (api/metering.py)


def record_usage(store: Store, record: UsageRecord) -> None:
    with store.begin() as conn:
        conn.execute(usage.insert().values(**dataclasses.asdict(record)))


def prune_usage(store: Store, before: float) -> int:
    """Delete the usage rows older than `before` (unix seconds); returns how many went.

    Idempotent: workers and servers sharing a store may all run it; whoever comes second deletes nothing.
    """
    with store.begin() as conn:
        return int(conn.execute(usage.delete().where(usage.c.at < before)).rowcount or 0)


class _Flush:
    """A marker in the writer's queue: set once every row queued before it was written, or could not be."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.written = False

    def finish(self, written: bool) -> None:
        self.written = written
        self.done.set()


class UsageWriter:
    """Writes usage rows on a background thread, many per transaction, off the request's path.

    A request only queues its row (microseconds); the thread waits `linger` seconds for more, then
    writes what has queued in one transaction (one commit per request cost ~2.5 ms each). So a
    process killed outright (SIGKILL, OOM) loses at most the rows of its last `linger` seconds; an
    orderly exit writes them first. `flush` writes everything queued so far; `/v1/usage` calls it.

    Rows the store refuses (StoreUnavailable) are kept, oldest first, and retried every
    `retry_seconds` until the store takes them. At most `max_pending` rows are kept (about 35 MB per
    100,000); rows past that, and rows still unwritten at exit, are dropped, logged and counted.
    /metrics shows all of it: maas_usage_rows_pending, maas_usage_write_failures_total and
    maas_usage_rows_dropped_total.

    With `retention_seconds`, the same thread deletes the rows older than that (every worker's, every
    server's on the store) once per `prune_every` seconds (an hour), the first time at its start.
    `clock` (unix seconds) is what ages rows; tests replace it.
    """

    def __init__(self, store: Store, *, max_batch: int = 500, linger: float = 0.5, max_pending: int = 100_000,
                 retry_seconds: float = 1.0, retention_seconds: float | None = None, prune_every: float = 3600,
                 clock: Callable[[], float] = time.time, observe: Callable[..., None] | None = None) -> None:
        self.store = store
        self._observe = observe or _observe  # the metrics it reports to (tests give it metrics of its own)
        self.max_batch = max_batch
        self.linger = linger
        self.max_pending = max_pending
        self.retry_seconds = retry_seconds
        self.retention_seconds = retention_seconds
        self.prune_every = prune_every
        self.clock = clock
        self._next_prune: float | None = None  # clock() of the next prune; None: at the thread's start
        self._queue: queue.Queue[UsageRecord | _Flush] = queue.Queue()
        self._pending: deque[UsageRecord] = deque()  # taken from the queue, not yet in the store
        self._failing = False
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def pending(self) -> int:
        """Rows not yet in the store: queued, or kept after a failed write."""
        return self._queue.qsize() + len(self._pending)

    def add(self, record: UsageRecord) -> None:
        self._ensure_thread()
        self._queue.put(record)

    def flush(self, timeout: float = 30) -> bool:
        """Write every row queued before this call. False when they are not all in the store: on
        timeout, or when the store refused them (they are kept and retried)."""
        if self._thread is None:
            return True
        marker = _Flush()
        self._queue.put(marker)
        return marker.done.wait(timeout) and marker.written

    def _ensure_thread(self) -> None:
        # Started on first use, so it is started in the gunicorn worker, never in a process that forks.
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="maas-usage-writer", daemon=True)
                    self._thread.start()
                    atexit.register(self._at_exit)

    def _run(self) -> None:
        while True:
            flushes = self._gather()
            written = self._write_pending()
            self._prune_if_due()
            for marker in flushes:
                marker.finish(written)

    def _prune_if_due(self) -> None:
        if self.retention_seconds is None:
            return
        now = self.clock()
        if self._next_prune is not None and now < self._next_prune:
            return
        self._next_prune = now + self.prune_every
        try:
            deleted = prune_usage(self.store, now - self.retention_seconds)
        except Exception as exc:  # noqa: BLE001 - tried again at the next prune; serving goes on
            log.warning("could not delete usage rows past their retention; tried again in %g s: %s",
                        self.prune_every, exc)
            return
        if deleted:
            log.info("deleted %d usage rows older than %g days (usage_retention_days)", deleted,
                     self.retention_seconds / 86400)

    def _idle_timeout(self) -> float | None:
        """How long the thread may wait for a row: until its next retry or prune, or for good."""
        waits = [self.retry_seconds] if self._pending else []
        if self.retention_seconds is not None and self._next_prune is not None:
            waits.append(max(0.0, self._next_prune - self.clock()))
        return min(waits) if waits else None

    def _gather(self) -> list[_Flush]:
        """Move queued rows to the pending ones: wait for the first (no longer than the next retry of rows
        waiting for one, or the next prune), then linger for more. A flush ends the wait at once."""
        flushes: list[_Flush] = []
        kept = dropped = 0
        deadline = None
        timeout = self._idle_timeout()
        for _ in range(self.max_batch):
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                break
            if isinstance(item, _Flush):
                flushes.append(item)
                break
            if len(self._pending) < self.max_pending:
                self._pending.append(item)
                kept += 1
            else:
                dropped += 1
            deadline = deadline or time.monotonic() + self.linger
            timeout = max(0.0, deadline - time.monotonic())
        self._observe(queued=kept + dropped, dropped=dropped)
        if dropped:
            log.error("dropped %d usage rows: %d wait for the store already, the most kept", dropped, self.max_pending)
        return flushes

    def _write_pending(self) -> bool:
        """Write the pending rows, `max_batch` per transaction; False when the store refused them."""
        while self._pending:
            batch = list(itertools.islice(self._pending, self.max_batch))
            try:
                with self.store.begin() as conn:
                    conn.execute(usage.insert(), [dataclasses.asdict(record) for record in batch])
            except StoreUnavailable as exc:
                self._observe(write_failed=True)
                if not self._failing:
                    log.error("could not write %d usage rows; they are kept and retried: %s", len(self._pending), exc)
                self._failing = True
                return False
            except Exception:  # a bug, not the store's availability: retrying would fail the same way
                log.exception("could not write %d usage rows; they are dropped", len(batch))
                self._take(len(batch), dropped=True)
                return False
            self._take(len(batch))
            if self._failing:
                log.warning("usage rows are written again")
                self._failing = False
        return True

    def _take(self, count: int, *, dropped: bool = False) -> None:
        for _ in range(count):
            self._pending.popleft()
        self._observe(written=0 if dropped else count, dropped=count if dropped else 0)

    def _at_exit(self) -> None:
        if not self.flush(5):
            lost = self.pending
            log.error("the process exits before the store %s took its last %d usage rows; they are dropped",
                      self.store.location, lost)
            self._observe(dropped=lost)


def _observe(*, queued: int = 0, written: int = 0, dropped: int = 0, write_failed: bool = False) -> None:
    # Imported here: prometheus_client must not be imported before `maas-server serve` sets
    # PROMETHEUS_MULTIPROC_DIR, and the CLI imports this module before that.
    from ..ops.metrics import observe_usage_writer

    observe_usage_writer(queued=queued, written=written, dropped=dropped, write_failed=write_failed)


def usage_summary(store: Store, *, key_id: int | None = None, key_name: str | None = None,
                  since: float | None = None, anonymous: bool = False) -> list[dict[str, Any]]:
    """Totals per key and model: requests, errors (status >= 400), tokens, mean latency, compute seconds.

    Filters: `key_id` (one key), `key_name`, `anonymous` (requests made without a key), `since`.
    """
    query = (select(usage.c.key_name, usage.c.model, *_totals())
             .group_by(usage.c.key_name, usage.c.model).order_by(usage.c.key_name, usage.c.model))
    if key_id is not None:
        query = query.where(usage.c.key_id == key_id)
    if key_name is not None:
        query = query.where(usage.c.key_name == key_name)
    if anonymous:
        query = query.where(usage.c.key_id.is_(None))
    if since is not None:
        query = query.where(usage.c.at >= since)
    with store.begin() as conn:
        rows = conn.execute(query).all()
    return [{"key": r.key_name, "model": r.model, **_totals_of(r)} for r in rows]


def _totals() -> list[Any]:
    """The columns both summaries total, per group of usage rows."""
    return [
        func.count().label("requests"),
        func.sum(case((usage.c.status >= 400, 1), else_=0)).label("errors"),
        func.coalesce(func.sum(usage.c.prompt_tokens), 0).label("prompt_tokens"),
        func.coalesce(func.sum(usage.c.completion_tokens), 0).label("completion_tokens"),
        func.avg(usage.c.latency_ms).label("mean_latency_ms"),
        func.coalesce(func.sum(usage.c.compute_ms), 0).label("compute_ms"),
    ]


def _totals_of(r: Any) -> dict[str, Any]:
    return {"requests": int(r.requests), "errors": int(r.errors or 0), "prompt_tokens": int(r.prompt_tokens),
            "completion_tokens": int(r.completion_tokens),
            "total_tokens": int(r.prompt_tokens) + int(r.completion_tokens),
            "mean_latency_ms": round(float(r.mean_latency_ms or 0), 1),
            "compute_seconds": round(float(r.compute_ms) / 1000, 6)}


BUCKETS = {"minute": 60, "hour": 3600, "day": 86400}  # UTC: unix time's minutes, hours and days


def usage_buckets(store: Store, *, bucket: str = "hour", since: float | None = None, until: float | None = None,
                  key_id: int | None = None, key_name: str | None = None, model: str | None = None,
                  limit: int = 10_000) -> list[dict[str, Any]]:
    """Totals per time bucket, key and model, oldest bucket first; at most `limit` rows.

    `since` is inclusive, `until` exclusive. A bucket's `start` is unix seconds.
    """
    size = BUCKETS[bucket]
    with store.begin() as conn:
        # SQLite's CAST truncates (times are positive: that is floor); PostgreSQL's rounds, so it needs floor().
        start = (func.floor(usage.c.at / size) if conn.dialect.name == "postgresql"
                 else cast(usage.c.at / size, Integer)) * size
        start = cast(start, BigInteger).label("start")
        query = select(start, usage.c.key_id, usage.c.key_name, usage.c.model, *_totals()) \
            .group_by(start, usage.c.key_id, usage.c.key_name, usage.c.model) \
            .order_by(start, usage.c.key_id, usage.c.model).limit(limit)
        if since is not None:
            query = query.where(usage.c.at >= since)
        if until is not None:
            query = query.where(usage.c.at < until)
        if key_id is not None:
            query = query.where(usage.c.key_id == key_id)
        if key_name is not None:
            query = query.where(usage.c.key_name == key_name)
        if model is not None:
            query = query.where(usage.c.model == model)
        rows = conn.execute(query).all()
    return [{"start": int(r.start), "key_id": r.key_id, "key": r.key_name, "model": r.model, **_totals_of(r)}
            for r in rows]

