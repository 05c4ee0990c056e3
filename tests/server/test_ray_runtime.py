"""Models on Ray, the parts that need no cluster: config checks, errors that cross the hop as they
were, how a replica's reply settles the handles, and what the wire says when the cluster is gone.

The behaviour on a real Ray instance is tested in tests/integration/ray_serve/.
"""

from __future__ import annotations

import pickle
import queue
import re
import time
from concurrent.futures import CancelledError
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from maas_server.config import ConfigError
from maas_server.models.contract import InvalidInput, ItemFailed
from maas_server.models.text_io import Vector
from maas_server.runtime.handles import Finished, Handle, Progress, Work
from maas_server.runtime.runner import ModelUnavailable, Overloaded, QueueFull, QueueTimeout
from maas_server.settings import load_settings
from tests.server.accounting_support import fake_loader

ray_backend = pytest.importorskip("maas_server.runtime.ray_backend", reason="the ray extra is not installed",
                                  exc_type=ImportError)
from ray.exceptions import GetTimeoutError  # noqa: E402

from maas_server.runtime.ray_replica import Reply  # noqa: E402 - needs ray, checked just above


def _settings(tmp_path: Path, server: dict[str, Any] | None = None, **model: Any) -> Any:
    return load_settings({"data_dir": tmp_path / "data"}, file={
        "server": {"cache_dir": str(tmp_path / "cache"), **(server or {})},
        "models": [{"name": "words", "task": "embeddings", "source": "unused"},
                   {"name": "remote", "task": "embeddings", "source": "unused", **model}]})


@pytest.mark.parametrize("model, message", [
    ({"replicas": 2}, 'replicas apply to backend = "ray" only'),
    ({"backend": "ray", "replicas": 2, "autoscaling": {"max": 4}}, "replicas (a fixed number) or autoscaling"),
    ({"backend": "ray", "autoscaling": {"min": 3, "max": 2}}, "autoscaling min (3) is above max (2)"),
    ({"backend": "ray", "autoscaling": {"min": 0, "max": 2}}, "greater than or equal to 1"),
    ({"backend": "ray", "num_cpus": 0}, "num_cpus: Input should be greater than 0"),
])
def test_ray_settings_are_checked_with_a_message_naming_the_setting(tmp_path: Path, model: dict[str, Any],
                                                                    message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        _settings(tmp_path, {"ray_address": "auto"}, **model)


def test_a_ray_model_without_a_cluster_says_which_flag_names_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"remote run on Ray .* pass --ray-address auto"):
        _settings(tmp_path, backend="ray")
    assert _settings(tmp_path, {"ray_address": "auto"}, backend="ray").ray_models()[0].name == "remote"


def test_a_ray_client_address_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="does not stream through Ray Client"):
        ray_backend.check_address("ray://head:10001")


@pytest.mark.parametrize("error", [
    QueueFull("full"), Overloaded("slow", retry_after=7.5), QueueTimeout("late"),
    ModelUnavailable("gone", retry_after=3), InvalidInput("too long", param="input", code="context_length_exceeded"),
    ItemFailed("bad input"),
], ids=lambda e: type(e).__name__)
def test_runtime_errors_cross_the_hop_as_they_were(error: Exception) -> None:
    # A replica returns them as values (Ray pickles them); the wire layer maps them by type and fields.
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error) and str(copy) == str(error)
    assert {k: v for k, v in vars(copy).items()} == {k: v for k, v in vars(error).items()}


class _Response:
    """Stands in for Ray's DeploymentResponse: only cancel() is called on it here."""

    def __init__(self) -> None:
        self.cancels = 0

    def cancel(self) -> None:
        self.cancels += 1


def _call(items: int, streamed: bool = False) -> tuple[Any, list[Handle[Any]], Any]:
    """A call as RayRunner makes one, without sending it: the test plays the replica's replies."""
    events: queue.SimpleQueue[Any] | None = queue.SimpleQueue() if streamed else None
    call = ray_backend._Call([Work("embed", i, enqueued=0.0, index=i, events=events) for i in range(items)])
    for work in call.works:
        work.on_cancel = call.cancel_if_abandoned
        if streamed:
            work.future.add_done_callback(work.report_outcome)
    return call, [Handle(w) for w in call.works], events


def test_a_replicas_reply_settles_each_handle_and_names_the_replica() -> None:
    call, handles, _ = _call(2)
    call.deliver(Reply("r1", [Finished(1, result=Vector([1.0], 1)), Finished(0, error=InvalidInput("no"))]))
    assert handles[1].result(0) == Vector([1.0], 1)
    with pytest.raises(InvalidInput):
        handles[0].result(0)
    assert [h.served_by for h in handles] == ["r1", "r1"]


def test_a_refused_call_fails_every_item_with_the_replicas_error() -> None:
    call, handles, _ = _call(3)
    call.deliver(Reply("r1", refused=QueueFull("the replica's queue is full")))
    for handle in handles:
        with pytest.raises(QueueFull):
            handle.result(0)


def test_a_streamed_call_gets_progress_then_outcomes_in_order() -> None:
    call, _, events = _call(1, streamed=True)
    call.deliver(Reply("r1", [Progress(0, "a"), Progress(0, "b")]))
    call.deliver(Reply("r1", [Finished(0, result="ab")]))
    got = [events.get(timeout=1) for _ in range(3)]
    assert got == [Progress(0, "a"), Progress(0, "b"), Finished(0, result="ab")]


def test_the_remote_request_is_cancelled_once_every_item_of_it_is() -> None:
    call, handles, _ = _call(2)
    response = _Response()
    call.sent(response)
    assert handles[0].cancel() and response.cancels == 0  # the other item still wants its answer
    assert handles[1].cancel() and response.cancels == 1
    call.deliver(Reply("r1", [Finished(0, result=1), Finished(1, result=2)]))  # too late: stays cancelled
    with pytest.raises(CancelledError):
        handles[0].result(0)


def test_a_stream_whose_item_ran_is_not_cancelled_locally_but_remotely() -> None:
    call, handles, _ = _call(1, streamed=True)
    response = _Response()
    call.sent(response)
    call.deliver(Reply("r1", [Progress(0, "a")]))  # started in the replica
    assert handles[0].cancel() is False and response.cancels == 1
    call.fail(CancelledError())  # what the bridge does when Ray reports the cancellation
    assert not handles[0].cancelled() and isinstance(handles[0].exception(0), CancelledError)


class _Handle:
    """Stands in for a DeploymentHandle: these tests never reach the point of calling a replica."""

    def options(self, **_: Any) -> _Handle:
        return self


def _deployment(running: int) -> dict[str, Any]:
    return {"applications": {"maas": {"deployments": {"remote": {
        "status": "HEALTHY", "message": "", "target_num_replicas": 2,
        "replicas": [{"replica_id": f"r{i}", "state": "RUNNING"} for i in range(running)]}}}}}


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What the Serve controller answers (`details`), or that it does not (`details` None)."""
    state: dict[str, Any] = {"details": _deployment(running=1)}

    def details(timeout: float = 0) -> dict[str, Any]:
        if state["details"] is None:
            raise GetTimeoutError("the controller did not answer")
        return state["details"]  # type: ignore[no-any-return]

    class Backend:
        def __init__(self, config: Any) -> None:
            self.bridge = ray_backend._Bridge()
            self.status = state["status"] = ray_backend._StatusWatch("maas", ["remote"])

        def attach(self, model: Any) -> Any:
            from maas_server.models.contract import ModelDescription

            runner = ray_backend.RayRunner(model, _Handle(), self.bridge, self.status)  # type: ignore[arg-type]
            return runner, ModelDescription(device="cuda", dtype="float16", dimensions=2)

        def stop(self) -> None:
            self.status.stop()
            self.bridge.stop()

    monkeypatch.setattr(ray_backend, "serve_details", details)
    monkeypatch.setattr(ray_backend, "RayBackend", Backend)
    return state


def test_a_call_ray_refuses_as_it_is_sent_settles_its_handles_with_the_meaning(cluster: dict[str, Any]) -> None:
    from ray.exceptions import RaySystemError

    from maas_server.config import ModelConfig
    from maas_server.models.text_io import EMBED

    class Refusing(_Handle):
        def __getattr__(self, method: str) -> Any:
            def remote(*args: Any) -> Any:
                raise RaySystemError("the raylet is gone")
            return type("Method", (), {"remote": staticmethod(remote)})()

    backend = ray_backend.RayBackend(None)  # the fixture's: its status says one replica runs
    config = ModelConfig(name="remote", task="embeddings", source="unused", backend="ray")
    runner = ray_backend.RayRunner(config, Refusing(), backend.bridge, backend.status)  # type: ignore[arg-type]
    try:
        (handle,) = runner.submit_many(EMBED, ["hello"])
        with pytest.raises(ModelUnavailable, match="RaySystemError: System error: the raylet is gone"):
            handle.result(timeout=5)  # not a hang
        events = runner.stream(EMBED, ["hello"])
        outcome = events.next_event(timeout=5)
        assert isinstance(outcome, Finished) and isinstance(outcome.error, ModelUnavailable)
    finally:
        backend.stop()


def test_when_the_cluster_stops_answering_ray_models_say_503_and_local_ones_serve(tmp_path: Path,
                                                                                 cluster: dict[str, Any]) -> None:
    from maas_server.app import create_app

    app: Flask = create_app(_settings(tmp_path, {"ray_address": "auto"}, backend="ray"), loader=fake_loader)
    registry = app.extensions["maas"].registry
    assert registry.wait_until_loaded(10)
    client = app.test_client()
    listed = {m["id"]: m for m in client.get("/v1/models").json["data"]}
    assert listed["remote"]["backend"] == "ray" and listed["remote"]["replicas"] == {"running": 1, "target": 2}
    assert listed["remote"]["device"] == "cuda"  # as the replica described itself
    assert client.get("/ready").status_code == 200

    cluster["details"] = None
    cluster["status"].refresh()
    refused = client.post("/v1/embeddings", json={"model": "remote", "input": "hello"})
    assert refused.status_code == 503 and refused.json["error"]["code"] == "model_unavailable"
    assert refused.headers["Retry-After"] == "5" and "does not answer" in refused.json["error"]["message"]
    assert client.post("/v1/embeddings", json={"model": "words", "input": "hello"}).status_code == 200
    ready = client.get("/ready")
    assert ready.status_code == 503 and ready.json["models"] == {"words": "ready", "remote": "unavailable"}

    cluster["details"] = _deployment(running=0)  # it answers again, with no replica running
    cluster["status"].refresh()
    assert client.post("/v1/embeddings", json={"model": "remote", "input": "hi"}).status_code == 503
    cluster["details"] = _deployment(running=2)
    cluster["status"].refresh()
    assert client.get("/ready").status_code == 200
    registry.stop()


def test_a_worker_that_cannot_reach_ray_serves_its_local_models_and_keeps_trying(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from maas_server.app import create_app

    attempts: list[int] = []

    class Unreachable:
        def __init__(self, config: Any) -> None:
            attempts.append(1)
            raise ConnectionError("cannot reach the Ray cluster at '10.0.0.9:6379': nothing answers there")

    monkeypatch.setattr(ray_backend, "RayBackend", Unreachable)
    monkeypatch.setattr("maas_server.runtime.registry.RAY_RETRY_S", 0.05)
    app = create_app(_settings(tmp_path, {"ray_address": "10.0.0.9:6379"}, backend="ray"), loader=fake_loader)
    registry = app.extensions["maas"].registry
    try:
        _wait(lambda: registry.get("words").ready)
        client = app.test_client()
        assert client.post("/v1/embeddings", json={"model": "words", "input": "hello"}).status_code == 200
        refused = client.post("/v1/embeddings", json={"model": "remote", "input": "hello"})
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "5"
        assert "nothing answers there" in refused.json["error"]["message"]
        _wait(lambda: len(attempts) >= 3)  # it keeps trying: the cluster may come back
        assert client.get("/ready").json["models"] == {"words": "ready", "remote": "failed"}
    finally:
        registry.stop()


def _wait(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
