"""The runner's rules, tested deterministically: the fake model blocks on Events, never on sleeps."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import CancelledError
from typing import Any

import pytest

from maas_server.models.contract import (
    BatchMethod,
    InvalidInput,
    ItemFailed,
    Method,
    ModelDescription,
    StepMethod,
    StepOutput,
)
from maas_server.runtime.handles import Finished
from maas_server.runtime.runner import QueueFull, QueueTimeout, Runner
from tests.server.runner_support import DOUBLE, NEGATE, GatedModel

GEN: Method[Any, Any] = Method("gen")


@pytest.fixture
def model() -> GatedModel:
    return GatedModel()


@pytest.fixture
def runner(model: GatedModel):  # type: ignore[no-untyped-def]
    runner = Runner("m", model, max_batch_size=4, max_wait_ms=0, max_queue=8).start()
    yield runner
    model.gate.set()
    runner.stop()


def _block_runner(runner: Runner, model: GatedModel) -> Any:
    """Occupy the runner with one item so the next ones queue up behind it."""
    first = runner.submit(DOUBLE, 100)
    assert model.started.wait(5)
    return first


def test_items_queued_while_busy_run_as_one_batch(runner: Runner, model: GatedModel) -> None:
    first = _block_runner(runner, model)
    futures = runner.submit_many(DOUBLE, [1, 2, 3])
    model.gate.set()
    assert first.result(5) == 200
    assert [f.result(5) for f in futures] == [2, 4, 6]
    assert model.batches == [[100], [1, 2, 3]]


def test_batches_never_exceed_max_batch_size_and_keep_order(runner: Runner, model: GatedModel) -> None:
    _block_runner(runner, model)
    futures = runner.submit_many(DOUBLE, list(range(7)))
    model.gate.set()
    assert [f.result(5) for f in futures] == [x * 2 for x in range(7)]
    assert [len(b) for b in model.batches[1:]] == [4, 3]


def test_prepare_error_fails_only_its_own_item(runner: Runner, model: GatedModel) -> None:
    _block_runner(runner, model)
    good, bad = runner.submit(DOUBLE, 5), runner.submit(DOUBLE, "bad")
    model.gate.set()
    assert good.result(5) == 10
    with pytest.raises(InvalidInput, match="bad item"):
        bad.result(5)


def test_a_batch_that_fails_once_is_retried_item_by_item_and_runner_survives(runner: Runner,
                                                                             model: GatedModel) -> None:
    _block_runner(runner, model)
    model.fail_next = True  # the blocked first batch fails; its items then run alone and succeed
    queued = runner.submit_many(DOUBLE, [1, 2])
    model.gate.set()
    assert [f.result(5) for f in queued] == [2, 4]
    model.fail_next = True
    failing = runner.submit_many(DOUBLE, [3, 4])
    assert [f.result(5) for f in failing] == [6, 8]
    assert runner.submit(DOUBLE, 6).result(5) == 12


def test_wrong_output_count_fails_only_the_item_that_causes_it(runner: Runner, model: GatedModel) -> None:
    _block_runner(runner, model)
    futures = runner.submit_many(DOUBLE, ["short", 1])  # the model answers one output too few
    model.gate.set()
    with pytest.raises(ItemFailed, match="returned 0 outputs for 1 inputs"):
        futures[0].result(5)
    assert futures[1].result(5) == 2


def test_full_queue_raises_at_once_and_keeps_admitted_work(runner: Runner, model: GatedModel) -> None:
    first = _block_runner(runner, model)
    admitted = runner.submit_many(DOUBLE, list(range(8)))
    with pytest.raises(QueueFull):
        runner.submit(DOUBLE, 99)
    model.gate.set()
    assert first.result(5) == 200
    assert [f.result(5) for f in admitted] == [x * 2 for x in range(8)]


def test_submit_many_queues_nothing_when_the_call_does_not_fit(runner: Runner, model: GatedModel) -> None:
    _block_runner(runner, model)
    with pytest.raises(QueueFull):
        runner.submit_many(DOUBLE, list(range(10)))
    model.gate.set()
    assert runner.submit(DOUBLE, 1000).result(5) == 2000
    computed = [x for batch in model.batches for x in batch]
    assert computed == [100, 1000]  # none of the refused call's items ran


def test_cancelled_item_gets_no_compute(runner: Runner, model: GatedModel) -> None:
    _block_runner(runner, model)
    doomed, kept = runner.submit(DOUBLE, 7), runner.submit(DOUBLE, 8)
    assert doomed.cancel()
    model.gate.set()
    assert kept.result(5) == 16
    with pytest.raises(CancelledError):
        doomed.result(5)
    assert all(7 not in batch for batch in model.batches)
    assert runner.cancelled == 1  # counted when the runner skips it (a Ray replica reports the count)


def test_methods_are_batched_separately(runner: Runner, model: GatedModel) -> None:
    _block_runner(runner, model)
    doubles = runner.submit_many(DOUBLE, [1, 2])
    negates = runner.submit_many(NEGATE, [3, 4])
    model.gate.set()
    assert [f.result(5) for f in doubles] == [2, 4]
    assert [f.result(5) for f in negates] == [-3, -4]
    assert [1, 2] in model.batches and [3, 4] in model.batches


def test_unknown_method_is_refused(runner: Runner) -> None:
    with pytest.raises(ValueError, match="no method"):
        runner.submit(Method("explode"), 1)


def test_item_that_waited_past_its_deadline_gets_no_compute(model: GatedModel) -> None:
    now = [0.0]
    runner = Runner("m", model, max_batch_size=4, max_wait_ms=0, queue_timeout_s=5, clock=lambda: now[0]).start()
    try:
        first = _block_runner(runner, model)
        late, fresh = runner.submit(DOUBLE, 7), None
        now[0] = 6.0  # `late` has now waited 6 s of its 5
        fresh = runner.submit(DOUBLE, 8)
        model.gate.set()
        assert first.result(5) == 200 and fresh.result(5) == 16
        with pytest.raises(QueueTimeout, match=r"waited 6\.0s"):
            late.result(5)
        assert all(7 not in batch for batch in model.batches)
    finally:
        model.gate.set()
        runner.stop()


# -- step methods (continuous batching)

class CountdownBatch:
    """Each item is (name, steps, rows); a step records who took part, then counts everyone down."""

    def __init__(self, owner: SteppedModel) -> None:
        self.owner = owner
        self.remaining: dict[Any, list[Any]] = {}  # key -> [name, steps left, rows]

    def __len__(self) -> int:
        return sum(rows for _, _, rows in self.remaining.values())

    def add(self, items: list[tuple[Any, Any]]) -> StepOutput:
        for key, (name, steps, rows) in items:
            self.remaining[key] = [name, steps, rows]
        return StepOutput()

    def cancel(self, keys: list[Any]) -> StepOutput:
        return StepOutput(finished=[(key, f"{self.remaining.pop(key)[0]} cancelled") for key in keys])

    def step(self) -> StepOutput:
        self.owner.stepping.set()
        assert self.owner.gate.wait(10)
        self.owner.steps.append(sorted(name for name, _, _ in self.remaining.values()))
        if self.owner.fail_at_step == len(self.owner.steps):
            raise RuntimeError("decode exploded")
        finished = []
        for key, entry in list(self.remaining.items()):
            entry[1] -= 1
            if entry[1] == 0:
                del self.remaining[key]
                finished.append((key, f"{entry[0]} done"))
        return StepOutput(events=[(key, f"{entry[0]} stepped") for key, entry in self.remaining.items()],
                          finished=finished)


class SteppedModel:
    task = "test"

    def describe(self) -> ModelDescription:
        return ModelDescription(device="cpu", dtype="float32")

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.stepping = threading.Event()
        self.steps: list[list[str]] = []
        self.fail_at_step = 0

    def batch_methods(self) -> dict[Method[Any, Any], StepMethod]:
        return {GEN: StepMethod(lambda item: item, lambda: CountdownBatch(self), rows=lambda item: item[2])}

    def warmup(self) -> None:
        pass


@pytest.fixture
def stepped():  # type: ignore[no-untyped-def]
    model = SteppedModel()
    runner = Runner("s", model, max_batch_size=4, max_wait_ms=0, max_queue=8).start()
    yield model, runner
    model.gate.set()
    runner.stop()


def test_new_item_joins_the_running_batch_and_leaves_when_done(stepped) -> None:  # type: ignore[no-untyped-def]
    model, runner = stepped
    long = runner.submit(GEN, ("long", 4, 1))
    assert model.stepping.wait(5)  # `long` is mid-step: the next item must join, not wait for it
    short = runner.submit(GEN, ("short", 2, 1))
    model.gate.set()
    assert short.result(5) == "short done" and long.result(5) == "long done"
    assert model.steps == [["long"], ["long", "short"], ["long", "short"], ["long"]]


def test_items_wait_for_free_rows(stepped) -> None:  # type: ignore[no-untyped-def]
    model, runner = stepped
    wide = runner.submit(GEN, ("wide", 2, 3))  # 3 of the 4 rows
    assert model.stepping.wait(5)
    narrow, too_wide = runner.submit(GEN, ("narrow", 3, 1)), runner.submit(GEN, ("too-wide", 1, 2))
    model.gate.set()
    assert [f.result(5) for f in (wide, narrow, too_wide)] == ["wide done", "narrow done", "too-wide done"]
    assert model.steps == [["wide"], ["narrow", "wide"], ["narrow", "too-wide"], ["narrow"]]


def test_failed_step_reaches_every_member_and_decoding_goes_on(stepped) -> None:  # type: ignore[no-untyped-def]
    model, runner = stepped
    first = runner.submit(GEN, ("a", 3, 1))
    assert model.stepping.wait(5)
    second = runner.submit(GEN, ("b", 3, 1))
    model.fail_at_step = 2  # the first step with both a and b in it
    model.gate.set()
    for future in (first, second):
        with pytest.raises(RuntimeError, match="decode exploded"):
            future.result(5)
    assert runner.submit(GEN, ("c", 1, 1)).result(5) == "c done"
    assert model.steps == [["a"], ["a", "b"], ["c"]]


def test_prepare_on_caller_runs_before_queueing_and_refuses_the_whole_call() -> None:
    calls: list[tuple[str, Any]] = []

    class CallerPrepared(GatedModel):
        def batch_methods(self) -> dict[str, BatchMethod]:
            def prepare(item: Any) -> Any:
                calls.append((threading.current_thread().name, item))
                return self.prepare(item)
            return {DOUBLE: BatchMethod(prepare, self.run, prepare_on_caller=True)}

    model = CallerPrepared()
    model.gate.set()
    runner = Runner("m", model, max_batch_size=4, max_wait_ms=0, max_queue=8).start()
    try:
        assert runner.submit(DOUBLE, 3).result(5) == 6
        with pytest.raises(InvalidInput):
            runner.submit_many(DOUBLE, [1, "bad"])
        assert runner.queued == 0 and model.batches == [[3]]
        assert {name for name, _ in calls} == {threading.current_thread().name}
    finally:
        runner.stop()


def test_prepare_on_caller_consumes_a_lazy_iterable_one_item_at_a_time() -> None:
    events: list[str] = []

    class CallerPrepared(GatedModel):
        def batch_methods(self) -> dict[str, BatchMethod]:
            return {DOUBLE: BatchMethod(lambda item: events.append(f"prepare {item}") or item, self.run,
                                          prepare_on_caller=True)}

    def produce() -> Iterator[int]:
        for item in range(3):
            events.append(f"make {item}")
            yield item

    model = CallerPrepared()
    model.gate.set()
    runner = Runner("m", model, max_batch_size=4, max_wait_ms=0, max_queue=8).start()
    try:
        assert [f.result(5) for f in runner.submit_many(DOUBLE, produce())] == [0, 2, 4]
        assert events == ["make 0", "prepare 0", "make 1", "prepare 1", "make 2", "prepare 2"]
    finally:
        runner.stop()


def test_a_step_method_prepared_on_the_caller_never_holds_up_running_steps() -> None:
    """Tokenizing a long prompt happens on its request's thread: while it takes, the running
    item's decode steps go on to the end, and an invalid prompt is refused with nothing queued."""
    slow_prepare, prepared = threading.Event(), threading.Event()
    model = SteppedModel()

    def prepare(item: Any) -> Any:
        if item[0] == "bad":
            raise InvalidInput("bad prompt", param="prompt")
        if item[0] == "slow":
            prepared.set()
            assert slow_prepare.wait(10)
        return item

    method = model.batch_methods()[GEN]
    model.batch_methods = lambda: {GEN: StepMethod(prepare, method.new_batch, rows=method.rows,  # type: ignore[method-assign]
                                                     prepare_on_caller=True)}
    runner = Runner("s", model, max_batch_size=4, max_wait_ms=0, max_queue=8).start()
    try:
        running = runner.submit(GEN, ("running", 3, 1))
        caller = threading.Thread(target=lambda: runner.submit(GEN, ("slow", 1, 1)).result(10))
        caller.start()
        assert prepared.wait(5)  # the slow one is being prepared on its caller's thread...
        model.gate.set()
        assert running.result(5) == "running done"  # ...and the running item decoded to its end meanwhile
        with pytest.raises(InvalidInput):
            runner.submit(GEN, ("bad", 1, 1))
        assert runner.queued == 0
        slow_prepare.set()
        caller.join(10)
        assert not caller.is_alive() and model.steps[-1] == ["slow"]
    finally:
        slow_prepare.set()
        model.gate.set()
        runner.stop()


def test_prefill_budget_spreads_simultaneous_joins_over_steps() -> None:
    model = SteppedModel()
    method = model.batch_methods()[GEN]
    model.batch_methods = lambda: {GEN: StepMethod(method.prepare, method.new_batch, rows=method.rows,  # type: ignore[method-assign]
                                                     prefill_tokens=lambda item: 8)}
    runner = Runner("s", model, max_batch_size=4, max_wait_ms=0, max_queue=8, max_prefill_tokens=10).start()
    try:
        long = runner.submit(GEN, ("long", 4, 1))
        assert model.stepping.wait(5)
        a, b = runner.submit(GEN, ("a", 2, 1)), runner.submit(GEN, ("b", 2, 1))  # 16 tokens > 10: two steps
        model.gate.set()
        assert [f.result(5) for f in (long, a, b)] == ["long done", "a done", "b done"]
        assert model.steps == [["long"], ["a", "long"], ["a", "b", "long"], ["b", "long"]]
    finally:
        model.gate.set()
        runner.stop()


def test_cancelled_running_item_leaves_before_the_next_step_with_what_it_has(stepped) -> None:  # type: ignore[no-untyped-def]
    model, runner = stepped
    doomed = runner.submit(GEN, ("doomed", 100, 1))
    assert model.stepping.wait(5)  # it is running: cancelling cannot unqueue it any more
    kept = runner.submit(GEN, ("kept", 3, 1))
    assert doomed.cancel() is False
    model.gate.set()
    assert doomed.result(5) == "doomed cancelled" and kept.result(5) == "kept done"
    assert sum("doomed" in step for step in model.steps) <= 2  # the step it was in, at most one more
    assert runner.cancelled == 1


def test_a_call_streamed_to_a_sink_of_the_callers_gets_its_outcomes_there(runner: Runner, model: GatedModel) -> None:
    # What a Ray replica does: its sink wakes an event loop; a batch method's outcomes arrive as Finished.
    received: list[object] = []
    model.gate.set()
    handles = runner.stream_to(type("Sink", (), {"put": lambda self, event: received.append(event)})(), DOUBLE, [1, 2])
    assert [h.result(5) for h in handles] == [2, 4]
    assert sorted((e.index, e.result) for e in received if isinstance(e, Finished)) == [(0, 2), (1, 4)]


def test_a_streamed_call_gets_each_items_events_then_its_outcome_in_order(stepped) -> None:  # type: ignore[no-untyped-def]
    model, runner = stepped
    model.gate.set()
    events = runner.stream(GEN, [("a", 2, 1), ("b", 1, 1)])
    seen = []
    while len([e for e in seen if isinstance(e, Finished)]) < 2:
        event = events.next_event(timeout=5)
        assert event is not None
        seen.append(event)
    a_events = [(type(e).__name__, getattr(e, "event", getattr(e, "result", None))) for e in seen if e.index == 0]
    assert a_events[-1] == ("Finished", "a done") and ("Progress", "a stepped") in a_events
    assert [e.result for e in seen if isinstance(e, Finished)] == ["b done", "a done"]
    assert events.next_event(timeout=0.05) is None  # nothing after the outcomes


def test_a_streamed_item_cancelled_while_queued_reports_its_cancellation(stepped) -> None:  # type: ignore[no-untyped-def]
    model, runner = stepped
    runner.submit(GEN, ("long", 4, 4))  # fills every row
    assert model.stepping.wait(5)
    events = runner.stream(GEN, [("queued", 1, 1)])
    events.cancel()
    outcome = events.next_event(timeout=5)
    assert isinstance(outcome, Finished) and isinstance(outcome.error, CancelledError)
    model.gate.set()


def test_streaming_an_unknown_method_is_refused(runner: Runner) -> None:
    with pytest.raises(ValueError, match="no method"):
        runner.stream(Method("explode"), [1])


def test_each_item_is_charged_its_share_of_the_batch_it_ran_in() -> None:
    """Compute metering: a batch's wall time is shared equally among its items (its handles report it)."""
    model = GatedModel()
    runner = Runner("m", model, max_batch_size=4, max_wait_ms=50, max_queue=8).start()
    try:
        handles = runner.submit_many(DOUBLE, [1, 2])
        assert model.started.wait(5)
        threading.Event().wait(0.2)  # the batch holds the model for at least this long
        model.gate.set()
        assert [h.result(5) for h in handles] == [2, 4] and model.batches == [[1, 2]]
        first, second = (h.compute_s for h in handles)
        assert abs(first - second) < 0.01 and first + second >= 0.2  # equal shares, plus each its own prepare
    finally:
        model.gate.set()
        runner.stop()
