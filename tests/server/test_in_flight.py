"""Every request counted in is counted out exactly once: answers, refusals, errors, and clients that leave.

A real socket server (werkzeug's, in this process) serves fake models, so clients can hang up while
their request waits in the queue or while their stream is being sent. The in-flight gauge lives in
a registry of the test's own (other tests' apps share the process-wide one).
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from prometheus_client import CollectorRegistry, Gauge
from werkzeug.serving import make_server

from maas_server.accounts import SqlLimiter, create_key
from maas_server.app import begin_drain, create_app
from maas_server.models.contract import ItemFailed, Method, ModelDescription, StepMethod, StepOutput
from maas_server.models.generation_io import GENERATE, Choice, GenerationRequest, GenerationResult, TextDelta
from maas_server.ops import metrics
from maas_server.settings import load_settings
from tests.server.accounting_support import Clock, WordEmbedder, accounts_of

STEP_S = 0.01  # one token per row per step: a 500-token stream is still going when its client leaves


class Talker:
    """Generates " word" per decode step, one row at a time, so a second request waits for the row;
    the prompt "explode" fails alone (500). Prompt tokens: words in the prompt."""

    task = "text-generation"

    def __init__(self) -> None:
        self.taken: list[str | None] = []  # prompts the runner took up (a request waiting for the row too)

    def describe(self) -> ModelDescription:
        return ModelDescription(device="cpu", dtype="float32")

    def batch_methods(self) -> dict[Method[Any, Any], StepMethod]:
        return {GENERATE: StepMethod(self.take, _TalkBatch, max_batch_size=1)}

    def take(self, request: GenerationRequest) -> GenerationRequest:
        self.taken.append(request.prompt)
        return request

    def warmup(self) -> None:
        pass


class _TalkBatch:
    def __init__(self) -> None:
        self.rows: dict[Any, tuple[GenerationRequest, list[int]]] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, items: list[tuple[Any, GenerationRequest]]) -> StepOutput:
        failed = [(key, ItemFailed("the fake model cannot say 'explode'")) for key, r in items if r.prompt == "explode"]
        self.rows.update((key, (r, [0])) for key, r in items if r.prompt != "explode")
        return StepOutput(finished=failed)

    def step(self) -> StepOutput:
        time.sleep(STEP_S)
        output = StepOutput()
        for key, (request, generated) in list(self.rows.items()):
            generated[0] += 1
            if request.stream:
                output.events.append((key, TextDelta(0, " word")))
            if generated[0] >= (request.max_tokens or 16):
                output.finished.append(self._leave(key))
        return output

    def cancel(self, keys: list[Any]) -> StepOutput:
        return StepOutput(finished=[self._leave(key) for key in keys])

    def _leave(self, key: Any) -> tuple[Any, GenerationResult]:
        request, generated = self.rows.pop(key)
        choice = Choice(" word" * generated[0], "length", completion_tokens=generated[0])
        return key, GenerationResult(len((request.prompt or "").split()), [choice])


def _app(tmp_path: Path, talker: Talker) -> Flask:
    settings = load_settings({"data_dir": tmp_path / "data", "auth_cache_seconds": 0}, file={
        "server": {"cache_dir": str(tmp_path / "cache"), "max_tokens": 1000, "max_concurrent_requests": 2},
        "models": [{"name": "words", "task": "embeddings", "source": "unused"},
                   {"name": "talker", "task": "text-generation", "source": "unused", "max_batch_size": 1}]})
    app = create_app(settings, loader=lambda model, server: talker if model.name == "talker" else WordEmbedder())
    assert app.extensions["maas"].registry.wait_until_loaded(10)
    return app


@contextmanager
def _serving(app: Flask) -> Iterator[int]:
    """Serve `app` on a loopback port, each request on its own thread; yields the port."""

    def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
        environ["gunicorn.socket"] = environ["werkzeug.socket"]  # as gunicorn does: waiting requests watch it
        return app(environ, start_response)

    server = make_server("127.0.0.1", 0, wsgi, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()


def _raw_post(port: int, path: str, body: dict[str, Any], key: str) -> socket.socket:
    """Send a request and return the connection unread, for a client that will hang up."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    data = json.dumps(body).encode()
    sock.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (path.encode(), key.encode(), len(data), data))
    return sock


def _read_events(sock: socket.socket, count: int) -> None:
    received = b""
    while received.count(b"data: {") < count:
        chunk = sock.recv(4096)
        assert chunk, received
        received += chunk


def _wait_for(condition: Any, what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_in_flight_returns_to_zero_after_answers_refusals_errors_and_clients_that_left(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    registry = CollectorRegistry()
    monkeypatch.setattr(metrics, "IN_FLIGHT", Gauge("maas_requests_in_flight", "", registry=registry))
    in_flight = lambda: registry.get_sample_value("maas_requests_in_flight")  # noqa: E731
    talker = Talker()
    app = _app(tmp_path, talker)
    acc = accounts_of(app)
    acc.limiter = SqlLimiter(acc.store, clock=Clock())  # one minute throughout: rpm=1 refuses the second call
    key, _ = create_key(acc.store, "team")
    once, _ = create_key(acc.store, "once", rpm=1)
    with caplog.at_level(logging.INFO, logger="maas.access"), _serving(app) as port:
        def post(path: str, body: dict[str, Any], with_key: str | None = key) -> requests.Response:
            auth = {"Authorization": f"Bearer {with_key}"} if with_key else {}
            return requests.post(f"http://127.0.0.1:{port}{path}", json=body, headers=auth, timeout=10)

        talk = {"model": "talker", "prompt": "say three words", "max_tokens": 3}
        statuses = [post("/v1/embeddings", {"input": "a b"}).status_code,
                    post("/v1/completions", talk).status_code,
                    post("/v1/completions", {**talk, "stream": True}).status_code,  # read whole
                    post("/v1/embeddings", {"input": "a"}, once).status_code,
                    post("/v1/embeddings", {"input": "a"}, once).status_code,  # 429
                    post("/v1/embeddings", {"input": "a"}, None).status_code,  # 401
                    post("/v1/embeddings", {"input": []}).status_code,  # 400
                    post("/v1/completions", {**talk, "prompt": "explode"}).status_code,  # 500
                    post("/v1/nowhere", {}).status_code]  # 404
        assert statuses == [200, 200, 200, 200, 429, 401, 400, 500, 404]

        abandoned = _raw_post(port, "/v1/completions", {**talk, "max_tokens": 500, "stream": True}, key)
        _read_events(abandoned, 2)  # the stream holds the model's only row...
        queued = _raw_post(port, "/v1/completions", {**talk, "prompt": "wait"}, key)  # ...so this one waits
        _wait_for(lambda: talker.taken[-1] == "wait", "the runner to take up the waiting request")
        assert in_flight() == 2
        overloaded = post("/v1/embeddings", {"input": "a"})  # both of max_concurrent_requests' places are held
        assert overloaded.status_code == 503 and overloaded.json()["error"]["code"] == "overloaded"
        queued.close()
        _wait_for(lambda: in_flight() == 1, "the waiting request to notice its client left")
        abandoned.close()
        _wait_for(lambda: in_flight() == 0, "the stream to notice its client left")

        begin_drain(app)
        draining = post("/v1/embeddings", {"input": "a"})
        assert draining.status_code == 503 and draining.json()["error"]["code"] == "shutting_down"
    assert in_flight() == 0
    logged = [record.__dict__ for record in caplog.records if record.name == "maas.access"]
    assert sorted(line["status"] for line in logged) == sorted([*statuses, 499, 499, 503])  # each once
    left = sorted((line["prompt_tokens"], line["completion_tokens"], line["model"])
                  for line in logged if line["status"] == 499)
    assert left[0] == (0, 0, "talker")  # the queued call: nothing ran, nothing billed
    assert left[1][0] == 3 and 2 <= left[1][1] < 500 and left[1][2] == "talker"  # the stream: what it generated
