"""The runner: the one thread that runs a model. Request threads hand it work and wait.

Rules (tested in tests/server/test_runner.py):
- every submitted item gets its own Handle (runtime/handles.py), resolved with the result or an
  exception, and cancelled one way: ``handle.cancel()``;
- items of the same batch method that are queued together run as one batch (up to the adapter's
  or the config's max batch size), waiting at most ``max_wait_ms`` for more to arrive;
- ``prepare`` errors fail only their own item (when the method prepares on the caller's thread,
  they raise from ``submit_many`` and nothing is queued);
- one item's failure is its own: when a batch fails, its items are run again one by one, so only
  the item that fails alone fails (with :class:`ItemFailed`: the same input would fail again) and
  the others get their results; the runner keeps going; a batch that returns the wrong number of
  outputs is an error;
- in a decode batch a request that fails alone leaves with its error while the others decode on;
  a prompt batch that fails to join is joined again one request at a time;
- the queue is bounded: a call that does not fit raises QueueFull at once and queues nothing
  (the wire layer says 503);
- a call's deadline (its own timeout, else ``queue_timeout_s``) is for the model to start on it: a
  call whose first item would wait longer, by the runner's estimate of the work ahead of it over its
  measured service rate, raises Overloaded at once and queues nothing (503 with how long until there
  is room); once one of its items has started, the rest are served to the end (a 30-minute
  recording's 60 chunks are one call, not 60 deadlines);
- the work ahead counts what each item costs: one per item of a batch method; for a step method the
  decode steps x rows it may take (``StepMethod.row_steps``: a generation's max_tokens x n) times the
  share of that finished requests used, for the queued items and what the running rows likely have
  left. The rate is in the same units: items per second of batch work, or for a step method the row
  steps a full batch does per second (measured on decode steps while the batch is at least half full);
- the estimate is made again for the queued calls as the rate is measured anew (once it has
  ``SETTLED_S`` of work behind it): a queued call that has not started and now would start well past
  its deadline (by ``LATE_MARGIN``) fails with Overloaded at once, not with QueueTimeout at its
  deadline; ``queued`` counts the items still waiting, not those cancelled or failed while queued;
- an item cancelled before it ran gets no compute, nor does one whose call waited in the queue past
  its deadline (it fails with QueueTimeout; the wire says 503), nor one cancelled while it waited
  for free rows in a decode batch;
- every item is charged the model time it used (``Work.compute_s``): an equal share of each batch's
  wall time, a share of each decode step by its rows, of each join by its prompt tokens, and its
  own preparation;
- step methods (generation) run continuously: new items join the running batch between steps as
  long as its rows stay within the max batch size, and leave as soon as they finish, or at the
  next step after they are cancelled (with what they produced so far);
- a streamed call (``stream``) gets each item's events and then its outcome on one queue, in order.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import CancelledError
from dataclasses import dataclass
from typing import Any, TypeVar

from ..models.contract import (
    DEFAULT_LANE,
    BatchMethod,
    DecodeBatch,
    ItemFailed,
    Method,
    StepMethod,
    StepOutput,
    TaskModel,
    failed_alone,
)
from ..ops import metrics, steptimes
from ..ops.steptimes import timed
from .handles import CallStart, EventSink, EventStream, Finished, Handle, Progress, Work
from .torch_threads import single_threaded_torch_here

In = TypeVar("In")
Out = TypeVar("Out")

log = logging.getLogger("maas.runtime")

_STOP = object()
EXPIRY_INTERVAL_S = 0.1  # how often a busy runner looks for queued items past (or certain to pass) their deadline
# A queued call is dropped early only when its projected start is this much past its deadline (as a share of
# the deadline): it was admitted on an earlier estimate, and a brief dip in the measured rate must not drop
# work that would still start in time.
LATE_MARGIN = 0.5
# Queued calls are dropped on the rate only once it has this many seconds of work behind it: the first
# seconds of a burst on a cold model run while the burst's own requests are parsed, and a rate taken then
# dropped half of the calls it had queued.
SETTLED_S = 5.0
SHARE_SMOOTHING = 0.1  # how fast the share of max_tokens that generations use follows the latest ones
COLD_QUEUE_BATCHES = 2  # before a model's rate is measured, queue at most this many batches ahead


class ServiceRate:
    """Units of work (items, or a full decode batch's row steps: Work.cost) a model does per second of work,
    smoothed over windows of at least `window_s`.

    Measured only while the runner works, so an idle model keeps its last rate. None until the
    first batch finishes (a model nobody has used yet gets no estimate); until the first window
    closes it is the rate over the work so far, so that a burst soon after start-up is judged by
    a measurement rather than refused as a cold model's (after the traced forward passes made
    a model's first 20 requests take under a window, a burst of 16 met 503s).
    """

    def __init__(self, window_s: float = 0.5, smoothing: float = 0.3) -> None:
        self.window_s, self.smoothing = window_s, smoothing
        self.per_second: float | None = None
        self.measured_s = 0.0  # seconds of work measured in all
        self._items, self._seconds = 0.0, 0.0
        self._first_window = True

    def record(self, items: float, seconds: float) -> None:
        self.measured_s += seconds
        self._items += items
        self._seconds += seconds
        if self._items == 0 or self._seconds <= 0:
            return
        rate = self._items / self._seconds
        if self._seconds < self.window_s:
            if self._first_window:
                self.per_second = rate  # provisional: the work so far, until a full window closes
            return
        previous = None if self._first_window else self.per_second
        self.per_second = rate if previous is None else previous + self.smoothing * (rate - previous)
        self._items, self._seconds, self._first_window = 0.0, 0.0, False


class QueueFull(RuntimeError):
    """The model's queue is at `max_queue`; retry later."""


class Overloaded(RuntimeError):
    """The queue ahead would take longer than the call's deadline: refused before it waits."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after  # seconds until the queue has likely drained enough

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled with its retry_after: a Ray replica sends it back to the server as it is.
        return type(self), (str(self), self.retry_after)


class QueueTimeout(RuntimeError):
    """The item waited in the queue past the model's `queue_timeout_s`; it got no compute."""


class ModelUnavailable(RuntimeError):
    """The model cannot be reached now (no replica running, its cluster unreachable); retry later.

    Raised for models that run elsewhere (runtime/ray_backend.py); the wire layer says 503.
    """

    def __init__(self, message: str, retry_after: float = 2.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (str(self), self.retry_after)


@dataclass(frozen=True)
class _Prepared:
    value: Any  # already prepared on the caller's thread
    seconds: float  # what preparing it took: charged to the item as compute


def _prepared_on_caller(prepare: Callable[[Any], Any], item: Any) -> _Prepared:
    started = time.perf_counter()
    value = prepare(item)
    return _Prepared(value, time.perf_counter() - started)


def _charge(works: list[Work], seconds: float, weights: list[int] | None = None) -> None:
    """Share `seconds` of the model's time among `works`, by `weights` (rows, tokens) or equally."""
    weights = weights if weights and sum(weights) > 0 else [1] * len(works)
    total = sum(weights)
    for work, weight in zip(works, weights):
        work.compute_s += seconds * weight / total


class Runner:
    """Owns one model (one lane of its methods); runs them on a single background thread."""

    def __init__(self, name: str, model: TaskModel, *, max_batch_size: int = 16, max_wait_ms: float = 2.0,
                 max_queue: int = 256, queue_timeout_s: float | None = None,
                 max_prefill_tokens: int | None = None, clock: Callable[[], float] = time.monotonic,
                 lane: str = DEFAULT_LANE) -> None:
        self.name = name
        self.model = model
        self.methods: dict[str, BatchMethod | StepMethod] = {
            method.name: spec for method, spec in model.batch_methods().items() if spec.lane == lane}
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self.queue_timeout = queue_timeout_s
        self.max_prefill_tokens = max_prefill_tokens  # step methods: prompt tokens joining per step (None: no cap)
        self._clock = clock  # a seam for tests of deadlines
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self._admit = threading.Lock()  # makes "is there room?" and the puts one step
        self._held: deque[Work] = deque()  # taken from the queue but of another method than the batch
        self.service_rate = ServiceRate()  # units of work (Work.cost) done per second: the wait estimate's basis
        self._last_expiry = 0.0
        self._room = max_batch_size  # items that would start at once (free rows, or a whole batch when idle)
        self._waiting: set[Work] = set()  # items queued or held, not yet started, cancelled or failed (`_admit`)
        self._waiting_units = 0.0  # their cost, summed
        self._running_units = 0.0  # what the rows of a running decode batch likely still take (runner thread)
        self.used_share = 1.0  # the share of their row steps (max_tokens) finished generations used, smoothed
        self._next_units = 0.0  # the cost of the item taken to join a full decode batch when a row frees
        self._decoding = False  # a decode batch runs: new items join as rows free, not as a whole batch
        self.cancelled = 0  # items cancelled by their caller: before they started, or as decode rows
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
        """Items waiting for the model: not those it is working on, nor those cancelled or failed while queued."""
        return len(self._waiting)

    def submit(self, method: Method[In, Out], item: In, timeout: float | None = None) -> Handle[Out]:
        """Queue one item for `method`; raises QueueFull or Overloaded when it cannot be served in time."""
        return self.submit_many(method, [item], timeout)[0]

    def estimated_wait(self) -> float | None:
        """Seconds a call queued now would wait before compute starts on it; None until the rate is measured."""
        rate = self.service_rate.per_second
        if rate is None:
            return None
        return self._units_ahead(len(self._waiting), self._waiting_units) / rate

    def _units_ahead(self, items: int, units: float) -> float:
        """The work that must be done before an item with `items` items (costing `units`) ahead of it starts."""
        if items < self._room and not self._next_units:
            return 0.0  # it starts at once: in the free rows, or in the next batch of an idle model
        if self._decoding:  # rows free as the running, the next and the earlier items finish
            return self.used_share * (units + self._next_units) + self._running_units
        return max(0.0, units + 1 - self._room)  # whole batches: those ahead, and its own in its batch

    def refusal(self, timeout: float | None = None, *, measured_only: bool = False) -> Overloaded | None:
        """The Overloaded a call with this deadline (default ``queue_timeout_s``) would get now, or None.

        Reads counters only: the wire layer asks before it reads a request's body, to refuse a flood cheaply.
        With `measured_only`, a model that has not measured its rate yet is not refused: the cold rule (two
        batches queued ahead) is for the call's own submit, as the queue of a fast model drains while a
        burst arrives (asked all at once before their bodies were read, a cold burst's embeddings were
        refused where its batches took a fraction of a second).
        """
        deadline_s = timeout if timeout is not None else self.queue_timeout
        if deadline_s is None:
            return None
        wait = self.estimated_wait()  # until its first item starts: the deadline is for that
        if wait is None and measured_only:
            return None
        if wait is None:
            # No rate measured yet (a cold model meeting a burst): queue at most a couple of batches
            # behind the one running, rather than a burst's worth that would wait out its deadline.
            if self.queued >= COLD_QUEUE_BATCHES * self.max_batch_size:
                return Overloaded(f"model {self.name!r} is busy and has no service rate measured yet; "
                                  f"{self.queued} inputs are queued ahead", retry_after=1.0)
            return None
        if wait <= deadline_s:
            return None
        return Overloaded(f"model {self.name!r} is overloaded: {self.queued} inputs are queued ahead, about "
                          f"{wait:.1f}s of work, past this request's {deadline_s:g}s deadline",
                          retry_after=wait - deadline_s)

    def submit_many(self, method: Method[In, Out], items: Iterable[In],
                    timeout: float | None = None) -> list[Handle[Out]]:
        """Queue all items or none: a call that does not fit raises QueueFull and queues nothing.

        `timeout` is how long the items may wait for compute (default: ``queue_timeout_s``). A call
        the estimate says would wait longer raises Overloaded before it waits at all.

        `items` may be a lazy iterator: a method that prepares on the caller's thread prepares each
        item as it is produced, so the caller need never hold all raw items (decoded images) at once.
        An overloaded model refuses the call before anything is prepared.
        """
        return [Handle(work) for work in self._enqueue(method, items, timeout)]

    def stream(self, method: Method[In, Out], items: list[In], timeout: float | None = None) -> EventStream[Out]:
        """Like submit_many, and each item's events, then its outcome, arrive on one queue in order."""
        events: queue.SimpleQueue[Progress | Finished] = queue.SimpleQueue()
        return EventStream(self.stream_to(events, method, items, timeout), events)

    def stream_to(self, sink: EventSink, method: Method[In, Out], items: list[In],
                  timeout: float | None = None) -> list[Handle[Out]]:
        """As `stream`, with the events put on `sink` (a Ray replica's sink wakes its event loop).

        A batch method's call gets its items' outcomes (`Finished`) there too, in the order they finish.
        """
        works = self._enqueue(method, items, timeout, sink)
        for work in works:  # after queueing: a refused call must put nothing on the queue
            work.future.add_done_callback(work.report_outcome)
        return [Handle(work) for work in works]

    def available(self) -> bool:
        """Whether the runner can take work: its thread runs (a model elsewhere also needs a live replica)."""
        return self._thread.is_alive() and not self._stopping

    def replicas(self) -> None:
        """Runners elsewhere report their replicas; this one is the model, in this process."""
        return None

    def _enqueue(self, method: Method[Any, Any], items: Iterable[Any], timeout: float | None,
                 events: EventSink | None = None) -> list[Work]:
        if method.name not in self.methods:
            raise ValueError(f"model {self.name!r} has no method {method.name!r}")
        deadline_s = timeout if timeout is not None else self.queue_timeout
        refused = self.refusal(deadline_s)  # before anything is prepared
        if refused is not None:
            raise refused
        spec = self.methods[method.name]
        if spec.prepare_on_caller:
            single_threaded_torch_here()  # this thread must not start an OpenMP team (runtime/torch_threads.py)
            items = [_prepared_on_caller(spec.prepare, item) for item in items]  # an invalid one raises, queues none
        else:
            items = list(items)
        now = self._clock()
        deadline = now + deadline_s if deadline_s is not None else None
        call = CallStart()
        work = [Work(method.name, item, enqueued=now, deadline=deadline, call=call, index=index, events=events,
                     compute_s=item.seconds if isinstance(item, _Prepared) else 0.0, cost=self._cost(spec, item))
                for index, item in enumerate(items)]
        with self._admit:
            if self._queue.maxsize - self._queue.qsize() < len(work):
                raise QueueFull(f"model {self.name!r} has {self._queue.qsize()} of {self._queue.maxsize} "
                                f"queue places taken; this call needs {len(work)}")
            for w in work:
                self._queue.put_nowait(w)
            self._waiting.update(work)
            self._waiting_units += sum(w.cost for w in work)
        for w in work:  # cancelled or failed while queued: it no longer waits (runs at once when already done)
            w.future.add_done_callback(lambda _, w=w: self._stop_waiting(w))  # type: ignore[misc]
        metrics.set_queue_depth(self.name, self.queued)
        return work

    @staticmethod
    def _cost(spec: BatchMethod | StepMethod, item: Any) -> float:
        """What the wait estimate counts for an item: a step method's row steps once it is prepared, else 1."""
        if isinstance(spec, StepMethod) and isinstance(item, _Prepared):
            return float(max(1, spec.row_steps(item.value)))
        return 1.0

    def _stop_waiting(self, work: Work) -> None:
        with self._admit:
            if work in self._waiting:
                self._waiting.discard(work)
                self._waiting_units = max(0.0, self._waiting_units - work.cost)

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
                self._room, started = 0, time.monotonic()
                batch = self._fill_batch(first, method)
                self._run(batch, method)
                self.service_rate.record(len(batch), time.monotonic() - started)
            self._room = self.max_batch_size
            self._expire_overdue()

    def _take(self, *, block: bool, method: str | None = None, timeout: float | None = None) -> Work | None:
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

    def _start(self, work: Work) -> bool:
        """Claim an item for compute: False when its caller gave up or its deadline passed."""
        if work.future.done() and not work.future.cancelled():
            return False  # already expired while it waited (see _expire_overdue)
        if not work.future.set_running_or_notify_cancel():
            self.cancelled += 1
            return False  # the caller gave up before we started: no compute for it
        now = self._clock()
        if work.deadline is not None and now > work.deadline and not work.call.started:
            work.future.set_exception(QueueTimeout(
                f"model {self.name!r} is overloaded: the request waited {now - work.enqueued:.1f}s in its queue, "
                f"past its {work.deadline - work.enqueued:g}s deadline, and was dropped before any compute"))
            return False
        work.call.started = True
        self._stop_waiting(work)
        return True

    def _drop_late(self, work: Work, wait: float) -> None:
        """Fail a queued item that would start `wait` seconds from now, well past its deadline: 503 now."""
        if not work.future.set_running_or_notify_cancel():
            self.cancelled += 1
            return
        assert work.deadline is not None
        late = self._clock() + wait - work.deadline
        work.future.set_exception(Overloaded(
            f"model {self.name!r} is overloaded: by its measured rate the request would start about {wait:.1f}s "
            f"from now, {late:.1f}s past its {work.deadline - work.enqueued:g}s deadline, and was dropped before "
            f"any compute", retry_after=late))
        metrics.SHED.labels("queue_estimate").inc()

    def _prepare(self, work: Work, method: BatchMethod | StepMethod) -> tuple[bool, Any]:
        if not self._start(work):
            return False, None
        if isinstance(work.item, _Prepared):
            return True, work.item.value
        started = time.perf_counter()
        try:
            return True, method.prepare(work.item)
        except Exception as exc:  # noqa: BLE001 - reported to that caller alone
            work.future.set_exception(exc)
            return False, None
        finally:
            work.compute_s += time.perf_counter() - started

    # -- batch methods: everything queued together runs as one call

    def _limit(self, method: BatchMethod | StepMethod) -> int:
        return min(self.max_batch_size, method.max_batch_size or self.max_batch_size)

    def _fill_batch(self, first: Work, method: BatchMethod) -> list[Work]:
        limit = self._limit(method)
        batch = [first]
        deadline = time.monotonic() + self.max_wait
        while len(batch) < limit:
            work = self._take(block=True, method=first.method, timeout=max(0.0, deadline - time.monotonic()))
            if work is None:
                break
            batch.append(work)
        return batch

    def _run(self, batch: list[Work], method: BatchMethod, prepared: list[Any] | None = None) -> None:
        """Run a batch; `prepared` is given when its items were started and prepared already."""
        live = batch
        if prepared is None:
            prepared, live = [], []
            for work in batch:
                ok, item = self._prepare(work, method)
                if ok:
                    prepared.append(item)
                    live.append(work)
        if not live:
            return
        self._observe(live, len(live))
        started = time.perf_counter()
        try:
            outputs = self._call(method, prepared)
        except Exception as exc:  # noqa: BLE001 - find the item that caused it
            _charge(live, time.perf_counter() - started)
            if len(live) == 1:
                self._fail(live, failed_alone(exc))
                return
            log.warning("batch of %d failed on model %s (%s); running its items one by one",
                        len(live), self.name, exc)
            for work, item in zip(live, prepared):
                self._run([work], method, [item])
            return
        _charge(live, time.perf_counter() - started)
        for work, output in zip(live, outputs):
            work.future.set_result(output)

    def _call(self, method: BatchMethod, prepared: list[Any]) -> list[Any]:
        outputs = method.run(prepared)
        if len(outputs) != len(prepared):
            raise RuntimeError(f"model {self.name!r} returned {len(outputs)} outputs for {len(prepared)} inputs")
        return outputs

    # -- step methods: continuous batching; items join between steps and leave when done

    def _decode(self, first: Work, method: StepMethod) -> None:
        self._decoding = True
        try:
            self._decode_until_idle(first, method)
        finally:
            self._decoding, self._running_units, self._next_units = False, 0.0, 0.0

    def _decode_until_idle(self, first: Work, method: StepMethod) -> None:
        batch = method.new_batch()
        members: set[Work] = set()
        rows_of: dict[Work, int] = {}  # each member's rows: its share of a step's time
        used: dict[Work, float] = {}  # each member's row steps so far (of its Work.cost: its rows x max steps)
        waiting = self._prepared_or_none(first, method)
        while True:
            joining, waiting = self._admit_rows(method, first.method, len(batch), waiting)
            self._next_units = waiting[0].cost if waiting is not None else 0.0
            if not joining and not len(batch):
                if steptimes.enabled:
                    log.info("step times %s", steptimes.summary())
                return  # nothing running and nothing queued: back to the main loop
            members.update(work for work, _ in joining)
            rows_of.update((work, method.rows(prepared)) for work, prepared in joining)
            used.update((work, 0.0) for work, _ in joining)
            try:
                self._leave_if_cancelled(batch, members)
                if joining:
                    joined = time.perf_counter()
                    with timed("runner.join"):
                        self._join(batch, joining, members)
                    _charge([work for work, _ in joining], time.perf_counter() - joined,
                            [method.prefill_tokens(prepared) for _, prepared in joining])
                self._observe([work for work, _ in joining], len(batch) or len(joining))
                if len(batch):
                    stepping, stepped = list(members), time.perf_counter()
                    with timed("runner.step"):
                        output = batch.step()
                    seconds = time.perf_counter() - stepped
                    _charge(stepping, seconds, [rows_of.get(work, 1) for work in stepping])
                    self._measure_step([(work, rows_of.get(work, 1)) for work in stepping], used, seconds,
                                       self._limit(method))
                    self._resolve(members, output)
            except Exception as exc:  # noqa: BLE001 - every caller in the batch hears about it
                self._fail(list(members), exc)
                batch, members = method.new_batch(), set()
            for gone in [work for work in rows_of if work not in members]:
                del rows_of[gone]
                self._learn_share(gone, used.pop(gone, 0.0))
            self._room = max(0, self._limit(method) - len(batch))
            self._running_units = sum(max(0.0, work.cost * self.used_share - steps) for work, steps in used.items())
            self._expire_overdue()

    def _measure_step(self, stepping: list[tuple[Work, int]], used: dict[Work, float], seconds: float,
                      limit: int) -> None:
        """Count a decode step: each member's rows, and the rate a full batch steps at (`limit` row steps a step).

        Measured only while the batch is at least half full: a nearly empty batch steps faster than a full
        one, and a queue, which is what the rate is for, keeps the batch full. Joins are not counted: a
        burst's first prefill took 1.8 s, and a rate that counted it refused nearly the whole burst.
        """
        rows = 0
        for work, work_rows in stepping:
            used[work] = used.get(work, 0.0) + work_rows
            rows += work_rows
        if 2 * rows >= limit:
            self.service_rate.record(limit, seconds)

    def _learn_share(self, work: Work, steps: float) -> None:
        """A finished generation's row steps against its budget: requests that stop early count for less."""
        if work.cancel_requested or work.cost <= 0:
            return  # its caller stopped it: says nothing of how long its output would have been
        share = min(1.0, steps / work.cost)
        self.used_share += SHARE_SMOOTHING * (share - self.used_share)

    def _expire_overdue(self) -> None:
        """Fail queued calls whose deadline has passed (QueueTimeout), or that the estimate, made again
        with the rate measured now, says would start well past it (Overloaded): 503 now, not when a row
        frees up for them or their deadline comes.

        While a decode batch is full, queued requests can wait long; a burst admitted on a rate measured
        while the model was alone can take longer than that rate said. At most every EXPIRY_INTERVAL_S,
        as it scans the whole queue; the first item of a call decides for the call.
        """
        now = self._clock()
        if now - self._last_expiry < EXPIRY_INTERVAL_S or not self.queued:
            return
        self._last_expiry = now
        with self._queue.mutex:  # held items were taken from the queue first: they are ahead
            waiting = list(self._held) + [w for w in self._queue.queue if isinstance(w, Work)]
        rate = self.service_rate.per_second if self.service_rate.measured_s >= SETTLED_S else None
        items, units = 0, 0.0  # what is ahead of the item looked at
        decided: dict[CallStart, bool] = {}  # call -> dropped
        for work in waiting:
            if work.future.done():
                continue
            if work.call.started:  # served to its end: ahead of the rest
                items, units = items + 1, units + work.cost
                continue
            if work.deadline is not None and now > work.deadline:
                self._start(work)  # sets QueueTimeout; the item is skipped when it is taken
                continue
            wait = None if rate is None else self._units_ahead(items, units) / rate
            if work.call not in decided:
                decided[work.call] = (wait is not None and work.deadline is not None
                                      and now + wait - work.deadline > LATE_MARGIN * (work.deadline - work.enqueued))
            if decided[work.call]:
                self._drop_late(work, wait or 0.0)
                continue
            items, units = items + 1, units + work.cost

    def _observe(self, starting: list[Work], batch_size: int) -> None:
        """Metrics: the batch (or decode step) size, how long the inputs starting now waited, the queue."""
        now = self._clock()
        metrics.observe_batch(self.name, batch_size, [now - work.enqueued for work in starting])
        metrics.set_queue_depth(self.name, self.queued)

    def _join(self, batch: DecodeBatch, joining: list[tuple[Work, Any]], members: set[Work]) -> None:
        """Prefill `joining` into the batch; when that fails, join them one by one to find the culprit.

        A failed prefill leaves the running batch as it was (rows merge only after it succeeds).
        """
        try:
            self._resolve(members, batch.add(joining))
            return
        except Exception as exc:  # noqa: BLE001 - find the request that caused it
            if len(joining) == 1:
                members.discard(joining[0][0])
                self._fail([joining[0][0]], failed_alone(exc))
                return
        for one in joining:
            self._join(batch, [one], members)

    def _leave_if_cancelled(self, batch: DecodeBatch, members: set[Work]) -> None:
        """Items whose caller cancelled them leave before the next step, with what they produced."""
        cancelled = [work for work in members if work.cancel_requested]
        if cancelled:
            self.cancelled += len(cancelled)
            self._resolve(members, batch.cancel(cancelled))

    def _resolve(self, members: set[Work], output: StepOutput) -> None:
        with timed("runner.deliver"):
            for work, event in output.events:
                work.emit(event)
        for work, result in output.finished:
            members.discard(work)
            if isinstance(result, ItemFailed):
                work.future.set_exception(result)
            else:
                work.future.set_result(result)

    def _admit_rows(self, method: StepMethod, name: str, rows: int,
                    waiting: tuple[Work, Any] | None) -> tuple[list[tuple[Any, Any]], tuple[Work, Any] | None]:
        """Items that fit in the free rows now, and the first one that did not (it waits for room)."""
        joining: list[tuple[Any, Any]] = []
        prefill = 0
        while True:
            if waiting is not None and waiting[0].cancel_requested:
                # Its caller left while it waited for rows: it never joins (a running future cannot be
                # cancelled, so it fails with CancelledError, which its caller no longer reads).
                self.cancelled += 1
                waiting[0].future.set_exception(CancelledError())
                waiting = None
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

    def _prepared_or_none(self, work: Work, method: StepMethod) -> tuple[Work, Any] | None:
        ok, prepared = self._prepare(work, method)
        return (work, prepared) if ok else None

    def _fail(self, works: list[Work], exc: Exception) -> None:
        log.error("%d item(s) failed on model %s", len(works), self.name, exc_info=exc)
        for work in works:
            if not work.future.done():
                work.future.set_exception(exc)
