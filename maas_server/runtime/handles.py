"""What a caller holds for work it submitted to a runner: one handle per item, one way to cancel.

A handle gives the item's result (or its error) and ``cancel()``. Cancelling an item that is still
queued means it never starts; cancelling one that is running (a generation) makes it leave its
decode batch at the next step, finished with what it produced so far. That is the only way work
is cancelled: the model never asks the wire layer whether to go on.

Step methods can also be *streamed*: the runner then puts each item's progress events and, last,
its outcome on one queue for the whole call (:class:`EventStream`), in order. Events are plain
dataclasses (see models/contract.py), so a stream can cross a process boundary as well as a thread.

The same handles serve a model that runs elsewhere (a Ray Serve replica, runtime/ray_backend.py):
there the item's future is resolved from the replica's reply, and ``cancel()`` also cancels the
remote request (``Work.on_cancel``), so the replica's runner drops the item or its decode row.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

Out = TypeVar("Out")


@dataclass(frozen=True)
class Progress:
    """An event from item `index` of a streamed call (for generation: a TextDelta)."""

    index: int
    event: Any


@dataclass(frozen=True)
class Finished:
    """Item `index` of a streamed call is done: its result, or the error it failed with."""

    index: int
    result: Any = None
    error: BaseException | None = None


class EventSink(Protocol):
    """Where a streamed call's events go: a queue.SimpleQueue, or anything with its ``put``."""

    def put(self, item: Progress | Finished) -> None: ...


@dataclass(eq=False)
class CallStart:
    """Shared by the items of one call: set once the first of them starts. The call's deadline is for
    the model to start on it; after that its remaining items are served to the end, not dropped."""

    started: bool = False


@dataclass(eq=False)
class Work:
    """One submitted item as the runner tracks it (the handle's other side)."""

    method: str
    item: Any
    enqueued: float
    deadline: float | None = None  # on the runner's clock: its call not started by then, it gets no compute
    call: CallStart = field(default_factory=CallStart)
    future: Future[Any] = field(default_factory=Future)
    index: int = 0  # its position in the call that submitted it
    events: EventSink | None = None  # set when the call is streamed
    cancel_requested: bool = False  # read by the runner between decode steps
    on_cancel: Callable[[], None] | None = None  # a remote item: cancels the request it is part of
    served_by: str | None = None  # a remote item: the replica that answered it
    cost: float = 1.0  # what the runner's wait estimate counts for it: 1, or a generation's decode steps x rows
    # Seconds of the model's time charged to this item: its share of the wall time of each batch or
    # decode step it took part in, and its own preparation. What usage meters as compute.
    compute_s: float = 0.0

    def emit(self, event: Any) -> None:
        if self.events is not None:
            self.events.put(Progress(self.index, event))

    def report_outcome(self, future: Future[Any]) -> None:
        """Done callback: the item's outcome, after its events (the runner resolves it after emitting)."""
        assert self.events is not None
        if future.cancelled():
            self.events.put(Finished(self.index, error=CancelledError()))
        elif (error := future.exception()) is not None:
            self.events.put(Finished(self.index, error=error))
        else:
            self.events.put(Finished(self.index, result=future.result()))


class Handle(Generic[Out]):
    """One submitted item: wait for its result, or cancel it."""

    def __init__(self, work: Work) -> None:
        self._work = work

    def result(self, timeout: float | None = None) -> Out:
        """The item's result; raises its error, or TimeoutError after `timeout` seconds."""
        return self._work.future.result(timeout)  # type: ignore[no-any-return]

    def exception(self, timeout: float | None = None) -> BaseException | None:
        return self._work.future.exception(timeout)

    def done(self) -> bool:
        return self._work.future.done()

    def cancelled(self) -> bool:
        """True when the item was cancelled before it started (it got no compute)."""
        return self._work.future.cancelled()

    @property
    def served_by(self) -> str | None:
        """The replica that answered a remote item (None for an item this process ran, or not yet answered)."""
        return self._work.served_by

    @property
    def compute_s(self) -> float:
        """Seconds of the model's time this item has used so far (see Work.compute_s); 0 for a remote item."""
        return self._work.compute_s

    def cancel(self) -> bool:
        """Stop the item: a queued one never starts, a running one leaves at its next decode step.

        True when it had not started (it gets no compute), as ``Future.cancel``. A remote item counts
        as started once its replica reported on it.
        """
        self._work.cancel_requested = True
        cancelled = self._work.future.cancel()  # succeeds only while it is queued
        if self._work.on_cancel is not None:
            self._work.on_cancel()
        return cancelled


class EventStream(Generic[Out]):
    """A streamed call: every item's progress and outcome on one queue, in the order they happened."""

    def __init__(self, handles: list[Handle[Out]], events: queue.SimpleQueue[Progress | Finished]) -> None:
        self.handles = handles
        self._events = events

    def next_event(self, timeout: float | None = None) -> Progress | Finished | None:
        """The next event, or None when none came within `timeout` seconds."""
        try:
            return self._events.get(timeout=timeout)
        except queue.Empty:
            return None

    def cancel(self) -> None:
        for handle in self.handles:
            handle.cancel()


@dataclass(frozen=True)
class Replicas:
    """A model's replicas elsewhere: how many run now, and how many its deployment wants."""

    running: int
    target: int
