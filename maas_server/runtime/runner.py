"""The runner: the one thread that runs a model. Request threads hand it work and wait.

Rules (tested in tests/server/test_runner.py):
- every submitted item gets its own Future, resolved with the result or an exception;
- items of the same batch method that are queued together run as one batch (up to the adapter's
  or the config's max batch size), waiting at most ``max_wait_ms`` for more to arrive;
- ``prepare`` errors fail only their own item (when the method prepares on the caller's thread,
  they raise from ``submit_many`` and nothing is queued); a failing batch fails every item in it, and the
  runner keeps going; a batch that returns the wrong number of outputs is an error;
- the queue is bounded: a call that does not fit raises QueueFull at once and queues nothing
  (the wire layer says 503);
- an item whose Future was cancelled before it ran gets no compute, nor does one that waited in
  the queue longer than ``queue_timeout_s`` (it fails with QueueTimeout; the wire says 503);
- step methods (generation) run continuously: new items join the running batch between steps as
  long as its rows stay within the max batch size, and leave as soon as they finish.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable

from ..models.base import BatchMethod, StepMethod, TaskModel
from ..ops import metrics

log = logging.getLogger("maas.runtime")

_STOP = object()


class QueueFull(RuntimeError):
    """The model's queue is at `max_queue`; retry later."""


class QueueTimeout(RuntimeError):
    """The item waited in the queue past the model's `queue_timeout_s`; it got no compute."""


@dataclass(frozen=True)
class _Prepared:
    value: Any  # already prepared on the caller's thread


@dataclass(eq=False)
class _Work:
    method: str
    item: Any
    enqueued: float
    future: Future[Any] = field(default_factory=Future)


class Runner:
    """Owns one model; runs its batch and step methods on a single background thread."""

    def __init__(self, name: str, model: TaskModel, *, max_batch_size: int = 16, max_wait_ms: float = 2.0,
                 max_queue: int = 256, queue_timeout_s: float | None = None,
                 max_prefill_tokens: int | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.model = model
        self.methods: dict[str, BatchMethod | StepMethod] = model.batch_methods()
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self.queue_timeout = queue_timeout_s
        self.max_prefill_tokens = max_prefill_tokens  # step methods: prompt tokens joining per step (None: no cap)
        self._clock = clock  # a seam for tests of deadlines
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self._admit = threading.Lock()  # makes "is there room?" and the puts one step
        self._held: deque[_Work] = deque()  # taken from the queue but of another method than the batch
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name=f"runner-{name}", daemon=True)

    def start(self) -> Runner:
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 5.0) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout)

    @property
    def queued(self) -> int:
        """Items waiting for the model (not counting those it is working on)."""
        return self._queue.qsize() + len(self._held)

    def submit(self, method: str, item: Any) -> Future[Any]:
        """Queue one item for `method`; raises QueueFull when the queue is at its bound."""
        return self.submit_many(method, [item])[0]

    def submit_many(self, method: str, items: Iterable[Any]) -> list[Future[Any]]:
        """Queue all items or none: a call that does not fit raises QueueFull and queues nothing.

        `items` may be a lazy iterator: a method that prepares on the caller's thread prepares each
        item as it is produced, so the caller need never hold all raw items (decoded images) at once.
        """
        if method not in self.methods:
            raise ValueError(f"model {self.name!r} has no method {method!r}")
        spec = self.methods[method]
        if isinstance(spec, BatchMethod) and spec.prepare_on_caller:
            items = [_Prepared(spec.prepare(item)) for item in items]  # an invalid item raises here, queues nothing
        work = [_Work(method, item, enqueued=self._clock()) for item in items]
        with self._admit:
            if self._queue.maxsize - self._queue.qsize() < len(work):
                raise QueueFull(f"model {self.name!r} has {self._queue.qsize()} of {self._queue.maxsize} "
                                f"queue places taken; this call needs {len(work)}")
            for w in work:
                self._queue.put_nowait(w)
        metrics.set_queue_depth(self.name, self.queued)
        return [w.future for w in work]

    # -- the loop

    def _loop(self) -> None:
        while not self._stopping:
            first = self._take(block=True)
            if first is None:
                return
            method = self.methods[first.method]
            if isinstance(method, StepMethod):
                self._decode(first, method)
            else:
                self._run(self._fill_batch(first, method), method)

    def _take(self, *, block: bool, method: str | None = None, timeout: float | None = None) -> _Work | None:
        """The next item (of `method`, if given; others are held for later), or None when there is none."""
        for work in self._held:
            if method is None or work.method == method:
                self._held.remove(work)
                return work
        while not self._stopping:
            try:
                work = self._queue.get(block=block, timeout=timeout)
            except queue.Empty:
                return None
            if work is _STOP:
                self._stopping = True  # finish what is running, then stop
                return None
            if method is None or work.method == method:
                return work  # type: ignore[no-any-return]
            self._held.append(work)
        return None

    def _start(self, work: _Work) -> bool:
        """Claim an item for compute: False when its caller gave up or its deadline passed."""
        if not work.future.set_running_or_notify_cancel():
            return False  # the caller gave up before we started: no compute for it
        waited = self._clock() - work.enqueued
        if self.queue_timeout is not None and waited > self.queue_timeout:
            work.future.set_exception(QueueTimeout(
                f"model {self.name!r} is overloaded: the request waited {waited:.1f}s in its queue, "
                f"past the {self.queue_timeout:g}s limit, and was dropped before any compute"))
            return False
        return True

    def _prepare(self, work: _Work, method: BatchMethod | StepMethod) -> tuple[bool, Any]:
        if not self._start(work):
            return False, None
        if isinstance(work.item, _Prepared):
            return True, work.item.value
        try:
            return True, method.prepare(work.item)
        except Exception as exc:  # noqa: BLE001 - reported to that caller alone
            work.future.set_exception(exc)
            return False, None

    # -- batch methods: everything queued together runs as one call

    def _limit(self, method: BatchMethod | StepMethod) -> int:
        return min(self.max_batch_size, method.max_batch_size or self.max_batch_size)

    def _fill_batch(self, first: _Work, method: BatchMethod) -> list[_Work]:
        limit = self._limit(method)
        batch = [first]
        deadline = time.monotonic() + self.max_wait
        while len(batch) < limit:
            work = self._take(block=True, method=first.method, timeout=max(0.0, deadline - time.monotonic()))
            if work is None:
                break
            batch.append(work)
        return batch

    def _run(self, batch: list[_Work], method: BatchMethod) -> None:
        prepared, live = [], []
        for work in batch:
            ok, item = self._prepare(work, method)
            if ok:
                prepared.append(item)
                live.append(work)
        if not live:
            return
        self._observe(live, len(live))
        try:
            outputs = method.run(prepared)
            if len(outputs) != len(live):
                raise RuntimeError(f"model {self.name!r} returned {len(outputs)} outputs for {len(live)} inputs")
        except Exception as exc:  # noqa: BLE001 - every caller in the batch hears about it
            self._fail(live, exc)
            return
        for work, output in zip(live, outputs):
            work.future.set_result(output)

    # -- step methods: continuous batching; items join between steps and leave when done

    def _decode(self, first: _Work, method: StepMethod) -> None:
        batch = method.new_batch()
        members: set[_Work] = set()
        waiting = self._prepared_or_none(first, method)
        while True:
            joining, waiting = self._admit_rows(method, first.method, len(batch), waiting)
            if not joining and not len(batch):
                return  # nothing running and nothing queued: back to the main loop
            members.update(work for work, _ in joining)
            try:
                if joining:
                    self._resolve(members, batch.add(joining))
                self._observe([work for work, _ in joining], len(batch) or len(joining))
                if len(batch):
                    self._resolve(members, batch.step())
            except Exception as exc:  # noqa: BLE001 - every caller in the batch hears about it
                self._fail(list(members), exc)
                batch, members = method.new_batch(), set()

    def _observe(self, starting: list[_Work], batch_size: int) -> None:
        """Metrics: the batch (or decode step) size, how long the inputs starting now waited, the queue."""
        now = self._clock()
        metrics.observe_batch(self.name, batch_size, [now - work.enqueued for work in starting])
        metrics.set_queue_depth(self.name, self.queued)

    def _resolve(self, members: set[_Work], finished: list[tuple[_Work, Any]]) -> None:
        for work, result in finished:
            members.discard(work)
            work.future.set_result(result)

    def _admit_rows(self, method: StepMethod, name: str, rows: int,
                    waiting: tuple[_Work, Any] | None) -> tuple[list[tuple[Any, Any]], tuple[_Work, Any] | None]:
        """Items that fit in the free rows now, and the first one that did not (it waits for room)."""
        joining: list[tuple[Any, Any]] = []
        prefill = 0
        while True:
            if waiting is None:
                work = self._take(block=False, method=name)
                if work is None:
                    return joining, None
                waiting = self._prepared_or_none(work, method)
                if waiting is None:
                    continue
            cost = method.rows(waiting[1])
            if (rows or joining) and rows + cost > self._limit(method):
                return joining, waiting  # no room until a row leaves
            over_budget = (self.max_prefill_tokens is not None
                           and prefill + method.prefill_tokens(waiting[1]) > self.max_prefill_tokens)
            if joining and over_budget:
                return joining, waiting  # joins at the next step: running rows are not stalled for long
            joining.append(waiting)
            rows += cost
            prefill += method.prefill_tokens(waiting[1])
            waiting = None

    def _prepared_or_none(self, work: _Work, method: StepMethod) -> tuple[_Work, Any] | None:
        ok, prepared = self._prepare(work, method)
        return (work, prepared) if ok else None

    def _fail(self, works: list[_Work], exc: Exception) -> None:
        log.exception("batch of %d failed on model %s", len(works), self.name, exc_info=exc)
        for work in works:
            if not work.future.done():
                work.future.set_exception(exc)
