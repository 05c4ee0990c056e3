"""The runner's rules, tested deterministically: the fake model blocks on Events, never on sleeps."""

from __future__ import annotations

import threading
from concurrent.futures import CancelledError
from typing import Any

import pytest

from maas_server.models.base import BatchMethod, InvalidInput
from maas_server.runtime.runner import QueueFull, Runner


class GatedModel:
    """Doubles its inputs in batches; the first batch waits until the test opens the gate."""

    task = "test"
    device = "cpu"
    dtype = "float32"

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.started = threading.Event()
        self.batches: list[list[Any]] = []
        self.fail_next = False

    def batch_methods(self) -> dict[str, BatchMethod]:
        return {"double": BatchMethod(self.prepare, self.run), "negate": BatchMethod(lambda x: x, self.negate)}

    def warmup(self) -> None:
        pass

    def prepare(self, item: Any) -> Any:
        if item == "bad":
            raise InvalidInput("bad item", param="input")
        return item

    def run(self, batch: list[Any]) -> list[Any]:
        self.started.set()
        self.gate.wait(timeout=10)
        self.batches.append(list(batch))
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("model exploded")
        if "short" in batch:
            return [0]
        return [x * 2 for x in batch]

    def negate(self, batch: list[Any]) -> list[Any]:
        self.batches.append(list(batch))
        return [-x for x in batch]


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
    first = runner.submit("double", 100)
    assert model.started.wait(5)
    return first


def test_items_queued_while_busy_run_as_one_batch(runner: Runner, model: GatedModel) -> None:
    first = _block_runner(runner, model)
    futures = runner.submit_many("double", [1, 2, 3])
    model.gate.set()
    assert first.result(5) == 200
    assert [f.result(5) for f in futures] == [2, 4, 6]
    assert model.batches == [[100], [1, 2, 3]]


def test_batches_never_exceed_max_batch_size_and_keep_order(runner: Runner, model: GatedModel) -> None:
    _block_runner(runner, model)
    futures = runner.submit_many("double", list(range(7)))
    model.gate.set()
    assert [f.result(5) for f in futures] == [x * 2 for x in range(7)]
    assert [len(b) for b in model.batches[1:]] == [4, 3]


def test_prepare_error_fails_only_its_own_item(runner: Runner, model: GatedModel) -> None:
    _block_runner(runner, model)
    good, bad = runner.submit("double", 5), runner.submit("double", "bad")
    model.gate.set()
    assert good.result(5) == 10
    with pytest.raises(InvalidInput, match="bad item"):
        bad.result(5)


def test_failed_batch_reaches_every_caller_and_runner_survives(runner: Runner, model: GatedModel) -> None:
    _block_runner(runner, model)
    model.fail_next = True  # the blocked first batch fails
    queued = runner.submit_many("double", [1, 2])
    model.gate.set()
    results = [f.result(5) for f in queued]
    assert results == [2, 4]
    model.fail_next = True
    failing = runner.submit_many("double", [3, 4])
    for future in failing:
        with pytest.raises(RuntimeError, match="model exploded"):
            future.result(5)
    assert runner.submit("double", 6).result(5) == 12


def test_wrong_output_count_is_an_error_for_the_batch(runner: Runner, model: GatedModel) -> None:
    _block_runner(runner, model)
    futures = runner.submit_many("double", ["short", 1])  # the model answers one output for two
    model.gate.set()
    for future in futures:
        with pytest.raises(RuntimeError, match="returned 1 outputs for 2 inputs"):
            future.result(5)


def test_full_queue_raises_at_once_and_keeps_admitted_work(runner: Runner, model: GatedModel) -> None:
    first = _block_runner(runner, model)
    admitted = runner.submit_many("double", list(range(8)))
    with pytest.raises(QueueFull):
        runner.submit("double", 99)
    model.gate.set()
    assert first.result(5) == 200
    assert [f.result(5) for f in admitted] == [x * 2 for x in range(8)]


def test_submit_many_queues_nothing_when_the_call_does_not_fit(runner: Runner, model: GatedModel) -> None:
    _block_runner(runner, model)
    with pytest.raises(QueueFull):
        runner.submit_many("double", list(range(10)))
    model.gate.set()
    assert runner.submit("double", 1000).result(5) == 2000
    computed = [x for batch in model.batches for x in batch]
    assert computed == [100, 1000]  # none of the refused call's items ran


def test_cancelled_item_gets_no_compute(runner: Runner, model: GatedModel) -> None:
    _block_runner(runner, model)
    doomed, kept = runner.submit("double", 7), runner.submit("double", 8)
    assert doomed.cancel()
    model.gate.set()
    assert kept.result(5) == 16
    with pytest.raises(CancelledError):
        doomed.result(5)
    assert all(7 not in batch for batch in model.batches)


def test_methods_are_batched_separately(runner: Runner, model: GatedModel) -> None:
    _block_runner(runner, model)
    doubles = runner.submit_many("double", [1, 2])
    negates = runner.submit_many("negate", [3, 4])
    model.gate.set()
    assert [f.result(5) for f in doubles] == [2, 4]
    assert [f.result(5) for f in negates] == [-3, -4]
    assert [1, 2] in model.batches and [3, 4] in model.batches


def test_unknown_method_is_refused(runner: Runner) -> None:
    with pytest.raises(ValueError, match="no method"):
        runner.submit("explode", 1)
