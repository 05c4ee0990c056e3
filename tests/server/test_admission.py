"""Load shedding: the concurrency bound, the wait estimate against a request's deadline, and the
X-Request-Timeout header. Deterministic: models block on Events, the estimate's rate is set."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import Client

from maas_server.api.admission import Admission
from maas_server.models.contract import Method, ModelDescription, StepOutput
from maas_server.models.generation_io import GENERATE
from maas_server.runtime.runner import Overloaded, QueueTimeout, Runner, ServiceRate
from tests.server.runner_support import DOUBLE, GatedModel

_API = ("/models/", "/v1/")


def _held_open_app(release: threading.Event) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])

        def body() -> Iterable[bytes]:
            yield b"first"
            release.wait(10)  # a stream: the request holds its place until its body is closed
            yield b"last"
        return body()
    return app


def test_requests_past_the_concurrency_bound_get_503_at_once_and_places_free_on_close() -> None:
    release = threading.Event()
    client = Client(Admission(_held_open_app(release), limit=2, prefixes=_API))
    open_streams = [client.get("/v1/chat/completions", buffered=False) for _ in range(2)]
    refused = client.get("/v1/embeddings")
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
    assert refused.get_json()["error"]["code"] == "overloaded"
    assert client.get("/health", buffered=False).status_code == 200  # never counted
    release.set()
    for response in open_streams:
        assert b"".join(response.response) == b"firstlast"
        response.close()
    assert client.get("/v1/embeddings", buffered=False).status_code == 200


def test_service_rate_is_provisional_until_a_window_of_work_then_smoothed() -> None:
    rate = ServiceRate(window_s=1.0, smoothing=0.5)
    assert rate.per_second is None  # nothing finished yet
    rate.record(4, 0.5)
    assert rate.per_second == 8.0  # the work so far, before a window closes
    rate.record(2, 0.5)
    assert rate.per_second == 6.0  # the first full window: 6 items in 1 s, not smoothed with the provisional 8
    rate.record(2, 0.5)
    assert rate.per_second == 6.0  # half a window: the measured rate holds
    rate.record(2, 0.5)
    assert rate.per_second == 5.0  # halfway from 6 to 4


def test_a_call_that_would_wait_past_its_deadline_is_refused_before_it_queues() -> None:
    model = GatedModel()
    runner = Runner("m", model, max_batch_size=2, max_wait_ms=0, max_queue=100, queue_timeout_s=60).start()
    try:
        runner.service_rate.per_second = 2.0  # measured: two items a second
        runner.submit(DOUBLE, 1)
        assert model.started.wait(5)
        runner.submit_many(DOUBLE, [2, 3, 4, 5])  # about 2 s of work queued
        with pytest.raises(Overloaded) as refused:
            runner.submit(DOUBLE, 6, timeout=1.0)
        assert refused.value.retry_after == pytest.approx(1.5)  # 5 items ahead / 2 per s, minus the 1 s deadline
        assert runner.queued == 4  # nothing of the refused call was queued
        assert runner.submit(DOUBLE, 7, timeout=10.0) is not None  # a longer deadline is admitted
    finally:
        model.gate.set()
        runner.stop()


def test_an_item_past_its_own_deadline_gets_no_compute() -> None:
    now = [0.0]
    model = GatedModel()
    runner = Runner("m", model, max_batch_size=1, max_wait_ms=0, max_queue=10, queue_timeout_s=60,
                    clock=lambda: now[0]).start()
    try:
        runner.submit(DOUBLE, 1)
        assert model.started.wait(5)
        short = runner.submit(DOUBLE, 2, timeout=5.0)
        default = runner.submit(DOUBLE, 3)
        now[0] = 6.0
        model.gate.set()
        with pytest.raises(QueueTimeout, match="5s deadline"):
            short.result(5)
        assert default.result(5) == 6
    finally:
        model.gate.set()
        runner.stop()


@pytest.mark.parametrize("value", ["abc", "0", "0.01", "-1", "nan", "inf", "99999", "300.5"])
def test_an_invalid_request_timeout_header_is_a_400(client: FlaskClient, value: str) -> None:
    response = client.post("/v1/embeddings", json={"model": "tiny-embed", "input": "x"},
                           headers={"X-Request-Timeout": value})
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_request_timeout"


def test_a_valid_request_timeout_header_is_accepted(client: FlaskClient) -> None:
    response = client.post("/v1/embeddings", json={"model": "tiny-embed", "input": "x"},
                           headers={"X-Request-Timeout": "2.5"})
    assert response.status_code == 200


def test_a_cold_model_queues_at_most_two_batches_before_its_rate_is_known() -> None:
    model = GatedModel()
    runner = Runner("m", model, max_batch_size=2, max_wait_ms=0, max_queue=100, queue_timeout_s=60).start()
    try:
        runner.submit(DOUBLE, 1)
        assert model.started.wait(5)
        runner.submit_many(DOUBLE, [2, 3, 4, 5])  # two batches of two queued: still admitted
        with pytest.raises(Overloaded, match="no service rate measured yet"):
            runner.submit(DOUBLE, 6)
        assert runner.queued == 4
    finally:
        model.gate.set()
        runner.stop()


class _Rows:
    """A step method whose decode batch holds one row and finishes only when told to."""

    task = "test"

    def describe(self) -> ModelDescription:
        return ModelDescription(device="cpu", dtype="float32")

    def __init__(self) -> None:
        self.finish = threading.Event()
        self.stepped = threading.Event()

    def batch_methods(self) -> dict[Method[Any, Any], Any]:
        from maas_server.models.contract import StepMethod

        return {GENERATE: StepMethod(lambda x: x, lambda: _OneRowBatch(self), max_batch_size=1)}

    def warmup(self) -> None:
        pass


class _OneRowBatch:
    def __init__(self, model: _Rows) -> None:
        self.model, self.items = model, []  # type: ignore[var-annotated]

    def __len__(self) -> int:
        return len(self.items)

    def add(self, items: list[Any]) -> StepOutput:
        self.items += items
        return StepOutput()

    def cancel(self, keys: list[Any]) -> StepOutput:
        self.items = [(key, item) for key, item in self.items if key not in keys]
        return StepOutput(finished=[(key, None) for key in keys])

    def step(self) -> StepOutput:
        self.model.stepped.set()
        self.model.finish.wait(0.05)
        if self.model.finish.is_set():
            done, self.items = self.items, []
            return StepOutput(finished=[(key, item) for key, item in done])
        return StepOutput()


def test_a_request_queued_behind_full_rows_is_answered_at_its_deadline_not_later() -> None:
    now = [0.0]
    model = _Rows()
    runner = Runner("m", model, max_batch_size=1, max_wait_ms=0, max_queue=10, clock=lambda: now[0]).start()
    try:
        running = runner.submit(GENERATE, "a")
        assert model.stepped.wait(5)
        waiting = runner.submit(GENERATE, "b", timeout=2.0)
        now[0] = 3.0  # past its deadline while the only row is still busy
        with pytest.raises(QueueTimeout):
            waiting.result(5)
        assert not running.done()  # answered while the running request still holds the row
        model.finish.set()
        assert running.result(5) == "a"
    finally:
        model.finish.set()
        runner.stop()


def test_a_body_read_whole_but_never_closed_still_frees_its_place() -> None:
    release = threading.Event()
    release.set()
    admission = Admission(_held_open_app(release), limit=1, prefixes=_API)
    environ = {"PATH_INFO": "/v1/embeddings", "REQUEST_METHOD": "GET"}
    for _ in range(3):  # a leaked place would refuse the second call
        assert b"".join(admission(environ, lambda *_: None)) == b"firstlast"


def test_a_body_closed_before_it_is_read_frees_its_place_and_closes_the_inner_body() -> None:
    closed: list[bool] = []

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            yield b"never read"

        def close(self) -> None:
            closed.append(True)

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [])
        return Body()

    admission = Admission(app, limit=1, prefixes=_API)
    environ = {"PATH_INFO": "/v1/embeddings", "REQUEST_METHOD": "GET"}
    for _ in range(3):  # a leaked place would refuse the second call
        body = admission(environ, lambda *_: None)
        body.close()  # type: ignore[attr-defined]  # a server whose client left before the first byte
    assert closed == [True, True, True]


def test_a_call_asking_more_than_max_request_tokens_is_a_400_naming_it(
        app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """prompts x n x max_tokens is one call's share of the model's decoding (64 prompts x n 8 x 512
    tokens held every other caller at 503 for minutes); without max_tokens the model's default counts."""
    server = app.extensions["maas"]
    monkeypatch.setattr(server, "config", server.config.model_copy(update={"max_request_tokens": 100}))
    r = client.post("/v1/completions", json={"model": "tiny-gpt2", "prompt": ["a"] * 4, "n": 3, "max_tokens": 9})
    assert r.status_code == 400, r.get_json()
    error = r.get_json()["error"]
    assert (error["code"], error["param"]) == ("request_too_large", "max_tokens")
    assert "max_request_tokens" in error["message"] and "108" in error["message"]
    r = client.post("/v1/chat/completions", json={"model": "tiny-gpt2", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "request_too_large"  # the default: 256
    r = client.post("/v1/completions", json={"model": "tiny-gpt2", "prompt": ["a"] * 4, "n": 3, "max_tokens": 8})
    assert r.status_code == 200, r.get_json()  # 96: within


def test_the_longest_request_timeout_is_the_servers_to_set(
        app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    server = app.extensions["maas"]
    monkeypatch.setattr(server, "config", server.config.model_copy(update={"max_request_timeout_s": 5.0}))
    for value, status in [("5", 200), ("5.5", 400)]:
        r = client.post("/v1/embeddings", json={"model": "tiny-embed", "input": "x"},
                        headers={"X-Request-Timeout": value})
        assert r.status_code == status, r.get_json()
    assert "max_request_timeout_s" in r.get_json()["error"]["message"]


def test_a_call_that_has_started_is_served_to_its_end_past_its_deadline() -> None:
    """The deadline is for the model to start on a call: a long recording's chunks, or many inputs,
    are not dropped one by one while the call is under way."""
    now = [0.0]
    model = GatedModel()
    runner = Runner("m", model, max_batch_size=1, max_wait_ms=0, max_queue=10, clock=lambda: now[0]).start()
    try:
        runner.service_rate.per_second = 0.5  # 2 s an item: 3 items are 6 s of work
        handles = runner.submit_many(DOUBLE, [1, 2, 3], timeout=3.0)  # admitted: its first item starts at once
        assert model.started.wait(5)
        now[0] = 10.0  # far past the deadline while the first item runs
        model.gate.set()
        assert [h.result(5) for h in handles] == [2, 4, 6]
    finally:
        model.gate.set()
        runner.stop()


class _FixedRate:
    """A service rate the test sets (units a second); what the runner measures is ignored."""

    def __init__(self, per_second: float) -> None:
        self.per_second = per_second
        self.measured_s = 60.0  # settled

    def record(self, units: float, seconds: float) -> None:
        pass


class _Generations:
    """A step method whose items are (name, max decode steps): its rows finish only once the gate opens.

    Prepared on the caller's thread, as generation is, so the runner knows each item's decode steps
    (``row_steps``) when it queues it.
    """

    task = "test"

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.stepping = threading.Event()

    def describe(self) -> ModelDescription:
        return ModelDescription(device="cpu", dtype="float32")

    def batch_methods(self) -> dict[Method[Any, Any], Any]:
        from maas_server.models.contract import StepMethod

        return {GENERATE: StepMethod(lambda item: item, lambda: _GatedRows(self), row_steps=lambda item: item[1],
                                     prepare_on_caller=True)}

    def warmup(self) -> None:
        pass


class _GatedRows:
    def __init__(self, model: _Generations) -> None:
        self.model, self.items = model, []  # type: ignore[var-annotated]

    def __len__(self) -> int:
        return len(self.items)

    def add(self, items: list[Any]) -> StepOutput:
        self.items += items
        return StepOutput()

    def cancel(self, keys: list[Any]) -> StepOutput:
        self.items = [(key, item) for key, item in self.items if key not in keys]
        return StepOutput(finished=[(key, None) for key in keys])

    def step(self) -> StepOutput:
        self.model.stepping.set()
        if not self.model.gate.wait(0.01):  # the runner loops between steps meanwhile, as a busy one does
            return StepOutput()
        done, self.items = self.items, []
        return StepOutput(finished=[(key, item[0]) for key, item in done])


def _generation_runner(model: _Generations, rate: float, **options: Any) -> Runner:
    runner = Runner("g", model, max_batch_size=1, max_wait_ms=0, max_queue=16, **options).start()
    runner.service_rate = _FixedRate(rate)  # type: ignore[assignment]
    runner.submit(GENERATE, ("running", 1))  # takes the only row; its one step is soon done
    assert model.stepping.wait(5)
    return runner


def test_the_wait_estimate_counts_the_decode_steps_of_the_generations_ahead() -> None:
    """Two queued generations of 200 and 100 steps are 3 s of work at 100 row steps a second, where
    two items were a fraction of that to an estimate that counted items."""
    model = _Generations()
    runner = _generation_runner(model, 100.0, queue_timeout_s=60)
    try:
        runner.submit_many(GENERATE, [("long", 200)])  # taken to join when the row frees
        runner.submit_many(GENERATE, [("medium", 100)])
        assert runner.estimated_wait() == pytest.approx(3.0, abs=0.011)  # the running row has at most a step left
        with pytest.raises(Overloaded) as refused:
            runner.submit(GENERATE, ("late", 10), timeout=2.5)
        assert refused.value.retry_after == pytest.approx(0.5, abs=0.011)
        assert runner.refusal(2.5) is not None and runner.refusal(3.5) is None  # what the wire asks first
        admitted = runner.submit(GENERATE, ("in time", 10), timeout=3.5)
        assert runner.estimated_wait() == pytest.approx(3.1, abs=0.011)
        model.gate.set()
        assert admitted.result(5) == "in time"
    finally:
        model.gate.set()
        runner.stop()


def test_short_generations_queued_are_a_short_wait() -> None:
    model = _Generations()
    runner = _generation_runner(model, 100.0, queue_timeout_s=1)
    try:
        runner.submit_many(GENERATE, [(f"short {i}", 10) for i in range(5)])  # 50 row steps: half a second
        assert runner.refusal() is None
        assert runner.submit(GENERATE, ("admitted", 10)) is not None
    finally:
        model.gate.set()
        runner.stop()


def test_a_cancelled_queued_item_no_longer_counts_as_queued_or_in_the_estimate() -> None:
    model = GatedModel()
    runner = Runner("m", model, max_batch_size=1, max_wait_ms=0, max_queue=100, queue_timeout_s=60).start()
    try:
        runner.service_rate.per_second = 1.0
        runner.submit(DOUBLE, 1)
        assert model.started.wait(5)
        handles = runner.submit_many(DOUBLE, [2, 3, 4])
        assert runner.queued == 3 and runner.estimated_wait() == pytest.approx(4.0)
        assert handles[1].cancel()
        assert runner.queued == 2 and runner.estimated_wait() == pytest.approx(3.0)
        model.gate.set()
        assert [handles[0].result(5), handles[2].result(5)] == [4, 8]
        assert runner.queued == 0
    finally:
        model.gate.set()
        runner.stop()


def test_queued_calls_the_remeasured_rate_cannot_start_in_time_get_503_at_once() -> None:
    """A warm model's rate, measured before, admits a burst; under the burst it runs at a quarter of
    that. The calls that would now start well past their 10 s deadline (more than half of it) are
    answered at once with Overloaded, not with QueueTimeout at the deadline; the others wait."""
    now = [0.0]
    model = _Generations()
    runner = _generation_runner(model, 100.0, queue_timeout_s=10, clock=lambda: now[0])
    try:
        calls = [runner.submit(GENERATE, (f"q{i}", 100)) for i in range(8)]  # 1 s each: all admitted
        runner.service_rate.per_second = 25.0  # 4 s each now
        now[0] = 1.0  # the runner looks again
        # q0 joins next, then q1, q2 and q3 start about 5, 9 and 13 s from the start; q4 at 17 s is past 15 s.
        for late in calls[4:]:
            error = late.exception(5)
            assert isinstance(error, Overloaded) and error.retry_after > 0
        assert not any(call.done() for call in calls[:4])
        assert runner.queued == 3  # q1 to q3; q0 waits for the row
        model.gate.set()
        assert [call.result(5) for call in calls[:4]] == ["q0", "q1", "q2", "q3"]
    finally:
        model.gate.set()
        runner.stop()


def test_queued_calls_that_would_start_only_slightly_late_are_kept() -> None:
    """Admitted calls are dropped only past a margin: a dip in the measured rate must not drop work that would
    likely still start in time."""
    now = [0.0]
    model = _Generations()
    runner = _generation_runner(model, 100.0, queue_timeout_s=10, clock=lambda: now[0])
    try:
        calls = [runner.submit(GENERATE, (f"q{i}", 300)) for i in range(4)]  # q3 at 9 s: admitted
        runner.service_rate.per_second = 46.0  # q2 would start at 1 + 600 / 46 = 14 s: 40% past its deadline
        now[0] = 1.0
        assert isinstance(calls[3].exception(5), Overloaded)  # 20.6 s: dropped, in the same look at the queue
        assert not any(call.done() for call in calls[:3])
        model.gate.set()
        assert [call.result(5) for call in calls[:3]] == ["q0", "q1", "q2"]
    finally:
        model.gate.set()
        runner.stop()


class _Countdown:
    """Items are (name, max decode steps, steps it takes): each finishes after its own number of steps."""

    task = "test"

    def describe(self) -> ModelDescription:
        return ModelDescription(device="cpu", dtype="float32")

    def batch_methods(self) -> dict[Method[Any, Any], Any]:
        from maas_server.models.contract import StepMethod

        return {GENERATE: StepMethod(lambda item: item, lambda: _CountdownRows(), row_steps=lambda item: item[1],
                                     prepare_on_caller=True)}

    def warmup(self) -> None:
        pass


class _CountdownRows:
    def __init__(self) -> None:
        self.left: dict[Any, list[Any]] = {}

    def __len__(self) -> int:
        return len(self.left)

    def add(self, items: list[Any]) -> StepOutput:
        self.left.update((key, [item[0], item[2]]) for key, item in items)
        return StepOutput()

    def cancel(self, keys: list[Any]) -> StepOutput:
        return StepOutput(finished=[(key, self.left.pop(key)[0]) for key in keys])

    def step(self) -> StepOutput:
        for entry in self.left.values():
            entry[1] -= 1
        done = [key for key, entry in self.left.items() if entry[1] == 0]
        return StepOutput(finished=[(key, self.left.pop(key)[0]) for key in done])


def test_the_estimate_learns_the_share_of_max_tokens_generations_use() -> None:
    """A generation that stops after 10 of its 100 steps moves the share from 1 toward 0.1 (by a tenth), and
    queued budgets count for that share: max_tokens is a ceiling that most requests do not reach."""
    runner = Runner("g", _Countdown(), max_batch_size=1, max_wait_ms=0, max_queue=8).start()
    try:
        assert runner.submit(GENERATE, ("short", 100, 10)).result(5) == "short"
        assert runner.used_share == pytest.approx(0.91)
        assert runner.submit(GENERATE, ("whole", 100, 100)).result(5) == "whole"
        assert runner.used_share == pytest.approx(0.919)
    finally:
        runner.stop()


def test_queued_calls_are_not_dropped_on_a_rate_measured_over_a_moment() -> None:
    """The first steps of a burst on a cold model run while the burst is parsed: a rate measured over
    them alone must not drop the calls already queued."""
    now = [0.0]
    model = _Generations()
    runner = _generation_runner(model, 100.0, queue_timeout_s=10, clock=lambda: now[0])
    try:
        calls = [runner.submit(GENERATE, (f"q{i}", 100)) for i in range(8)]
        runner.service_rate.per_second, runner.service_rate.measured_s = 25.0, 1.0  # as slow as above, for 1 s
        now[0] = 1.0
        looked = threading.Event()
        while runner._last_expiry < 1.0:  # the runner's next look at its queue, made with this rate
            assert not looked.wait(0.001) and runner.queued, "the runner never looked"
        assert not any(call.done() for call in calls)
        assert runner.estimated_wait() == pytest.approx(32.0, abs=0.05)  # new calls are judged on it at once
        with pytest.raises(Overloaded):
            runner.submit(GENERATE, ("new", 100))
        runner.service_rate.measured_s = 60.0  # settled: the next look drops the late ones
        now[0] = 2.0
        assert isinstance(calls[-1].exception(5), Overloaded)
        assert not calls[0].done()
    finally:
        model.gate.set()
        runner.stop()
