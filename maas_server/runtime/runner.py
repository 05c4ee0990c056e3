"""The runner: the one thread that runs a model. Request threads hand it work and wait.

Rules (tested in tests/server/test_runner.py):
- every submitted item gets its own Future, resolved with the result or an exception;
- items of the same batch method that are queued together run as one batch (up to the adapter's
  or the config's max batch size), waiting at most ``max_wait_ms`` for more to arrive;
- ``prepare`` errors fail only their own item; a failing batch fails every item in it, and the
  runner keeps going; a batch that returns the wrong number of outputs is an error;
- the queue is bounded: a call that does not fit raises QueueFull at once and queues nothing
  (the wire layer says 503);
- an item whose Future was cancelled before it ran gets no compute.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from ..models.base import BatchMethod, TaskModel

log = logging.getLogger("maas.runtime")

_STOP = object()


class QueueFull(RuntimeError):
    """The model's queue is at `max_queue`; retry later."""


@dataclass
class _Work:
    method: str
    item: Any
    future: Future[Any] = field(default_factory=Future)
    enqueued: float = field(default_factory=time.monotonic)


class Runner:
    """Owns one model; runs its batch methods on a single background thread."""

    def __init__(self, name: str, model: TaskModel, *, max_batch_size: int = 16, max_wait_ms: float = 2.0,
                 max_queue: int = 256) -> None:
        self.name = name
        self.model = model
        self.methods: dict[str, BatchMethod] = model.batch_methods()
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self._admit = threading.Lock()  # makes "is there room?" and the puts one step
        self._held: deque[_Work] = deque()  # taken from the queue but of another method than the batch
        self._thread = threading.Thread(target=self._loop, name=f"runner-{name}", daemon=True)

    def start(self) -> Runner:
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 5.0) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def submit(self, method: str, item: Any) -> Future[Any]:
        """Queue one item for `method`; raises QueueFull when the queue is at its bound."""
        return self.submit_many(method, [item])[0]

    def submit_many(self, method: str, items: list[Any]) -> list[Future[Any]]:
        """Queue all items or none: a call that does not fit raises QueueFull and queues nothing."""
        if method not in self.methods:
            raise ValueError(f"model {self.name!r} has no method {method!r}")
        work = [_Work(method, item) for item in items]
        with self._admit:
            if self._queue.maxsize - self._queue.qsize() < len(work):
                raise QueueFull(f"model {self.name!r} has {self._queue.qsize()} of {self._queue.maxsize} "
                                f"queue places taken; this call needs {len(work)}")
            for w in work:
                self._queue.put_nowait(w)
        return [w.future for w in work]

    # -- the loop

    def _loop(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._run(batch)

    def _next_batch(self) -> list[_Work] | None:
        first = self._held.popleft() if self._held else self._queue.get()
        if first is _STOP:
            return None
        limit = min(self.max_batch_size, self.methods[first.method].max_batch_size or self.max_batch_size)
        batch = [first]
        for work in list(self._held):  # held back earlier: they have waited longest
            if len(batch) < limit and work.method == first.method:
                self._held.remove(work)
                batch.append(work)
        deadline = time.monotonic() + self.max_wait
        while len(batch) < limit:
            try:
                work = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if work is _STOP:
                self._queue.put(_STOP)  # finish this batch first, then stop
                break
            (batch if work.method == first.method else self._held).append(work)
        return batch

    def _run(self, batch: list[_Work]) -> None:
        method = self.methods[batch[0].method]
        prepared, live = [], []
        for work in batch:
            if not work.future.set_running_or_notify_cancel():
                continue  # the caller gave up before we started: no compute for it
            try:
                prepared.append(method.prepare(work.item))
                live.append(work)
            except Exception as exc:  # noqa: BLE001 - reported to that caller alone
                work.future.set_exception(exc)
        if not live:
            return
        try:
            outputs = method.run(prepared)
            if len(outputs) != len(live):
                raise RuntimeError(f"model {self.name!r} returned {len(outputs)} outputs for {len(live)} inputs")
        except Exception as exc:  # noqa: BLE001 - every caller in the batch hears about it
            log.exception("batch of %d failed on model %s", len(live), self.name)
            for work in live:
                work.future.set_exception(exc)
            return
        for work, output in zip(live, outputs):
            work.future.set_result(output)
