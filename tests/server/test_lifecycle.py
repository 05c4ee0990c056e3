"""Client disconnects, deadlines and draining, on the wire layer: no sleeps, real sockets."""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from maas_server.api._common import client_gone, wait_all
from maas_server.app import begin_drain, create_app
from maas_server.errors import APIError
from maas_server.models.contract import BatchMethod, Method, ModelDescription
from maas_server.models.text_io import EMBED, ZERO_SHOT_TEXT, Vector
from maas_server.runtime.handles import Handle, Work
from maas_server.settings import load_settings

from .conftest import tiny_config


def test_client_gone_sees_a_closed_peer_but_not_a_quiet_or_talking_one() -> None:
    ours, theirs = socket.socketpair()
    with ours:
        assert not client_gone(ours)  # connected, nothing sent
        theirs.sendall(b"GET / HTTP/1.1\r\n")  # a pipelined request is not a hang-up
        assert not client_gone(ours)
        theirs.close()
        ours.recv(100)  # consume the pipelined bytes; what is left is end-of-file
        assert client_gone(ours)
    assert not client_gone(None)


def test_waiting_request_gives_up_and_cancels_when_its_client_hangs_up() -> None:
    ours, theirs = socket.socketpair()
    app = Flask("t")
    queued, running = Work("m", 1, enqueued=0.0), Work("m", 2, enqueued=0.0)
    assert running.future.set_running_or_notify_cancel()
    theirs.close()
    with ours, app.test_request_context(environ_base={"gunicorn.socket": ours}), pytest.raises(APIError) as info:
        wait_all([Handle(queued), Handle(running)])
    assert info.value.status == 499
    assert queued.future.cancelled()  # it never starts
    assert running.cancel_requested and not running.future.done()  # the runner stops it at its next step


def test_waiting_request_returns_results_while_its_client_stays() -> None:
    ours, theirs = socket.socketpair()
    app = Flask("t")
    done = Work("m", 7, enqueued=0.0)
    done.future.set_result(7)
    with ours, theirs, app.test_request_context(environ_base={"gunicorn.socket": ours}):
        assert wait_all([Handle(done)]) == [7]


@pytest.fixture
def draining_client(tmp_path, tiny_gpt2, tiny_bert, tiny_bert_classifier, tiny_resnet,  # type: ignore[no-untyped-def]
                    tiny_timm_weights) -> FlaskClient:
    config = tiny_config(tmp_path, tiny_gpt2, tiny_bert, tiny_bert_classifier, tiny_resnet, tiny_timm_weights)
    app = create_app(config, load_models=False)
    begin_drain(app)
    return app.test_client()


def test_draining_server_is_not_ready_and_refuses_new_work(draining_client: FlaskClient) -> None:
    ready = draining_client.get("/ready")
    assert ready.status_code == 503 and ready.json["status"] == "draining"
    refused = draining_client.post("/v1/embeddings", json={"input": "hi"})
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
    assert refused.json["error"]["code"] == "shutting_down"
    assert draining_client.get("/health").status_code == 200


class GatedEmbedder:
    """Embeds nothing until the test opens the gate, so requests pile up behind the first."""

    task = "embeddings"

    def describe(self) -> ModelDescription:
        return ModelDescription(device="cpu", dtype="float32")

    def __init__(self) -> None:
        self.gate, self.started = threading.Event(), threading.Event()

    def batch_methods(self) -> dict[Method[Any, Any], BatchMethod]:
        return {EMBED: BatchMethod(lambda text: text, self.embed),
                ZERO_SHOT_TEXT: BatchMethod(lambda item: item, lambda items: [])}  # its task declares it; unused

    def warmup(self) -> None:
        pass

    def embed(self, batch: list[str]) -> list[Vector]:
        self.started.set()
        assert self.gate.wait(10)
        return [Vector([1.0], 1) for _ in batch]


def test_overload_answers_503_with_retry_after_and_drops_stale_work_before_compute() -> None:
    model = GatedEmbedder()
    config = load_settings(file={"server": {"max_inputs": 2}, "models": [
        {"name": "e", "task": "embeddings", "source": "unused", "max_queue": 2, "queue_timeout_s": 0.5}]})
    app = create_app(config, loader=lambda cfg, server: model)
    assert app.extensions["maas"].registry.wait_until_loaded(10)
    client = app.test_client()
    post = lambda texts: client.post("/v1/embeddings", json={"input": texts})  # noqa: E731
    with ThreadPoolExecutor(2) as pool:
        running = pool.submit(post, "first")
        assert model.started.wait(10)
        queued = pool.submit(post, ["a", "b"])  # fills the queue (2 places)
        while app.extensions["maas"].registry.get("e").runner.queued < 2:
            threading.Event().wait(0.01)
        full = post("one more")
        assert full.status_code == 503 and full.headers["Retry-After"] == "1"
        assert full.json["error"]["code"] == "queue_full"
        time.sleep(0.6)  # the queued call is now past its 0.5 s deadline
        model.gate.set()
        assert running.result(10).status_code == 200
        stale = queued.result(10)
    assert stale.status_code == 503 and stale.headers["Retry-After"] == "5"
    assert stale.json["error"]["code"] == "queue_timeout"
