"""Refusals before Flask: a call every model able to serve it would refuse is answered 503 without its
body being read, counted as any request, and only then. Deterministic: the model blocks on an Event,
the runner's rate is set."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from maas_server.accounts import create_key, usage_summary
from maas_server.app import create_app
from maas_server.models.contract import BatchMethod, Method, ModelDescription
from maas_server.models.text_io import EMBED, ZERO_SHOT_TEXT, Scores, Vector
from maas_server.ops import metrics
from maas_server.runtime.runner import Runner
from maas_server.settings import load_settings
from tests.server.accounting_support import accounts_of

NOT_JSON = b"{this is not json"  # a view that reads it answers 400: a 503 for it was decided before the body


class _GatedEmbedder:
    """Two-dimensional vectors, once the test opens the gate."""

    task = "embeddings"

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.started = threading.Event()

    def describe(self) -> ModelDescription:
        return ModelDescription(device="cpu", dtype="float32", dimensions=2)

    def batch_methods(self) -> dict[Method[Any, Any], BatchMethod]:
        return {EMBED: BatchMethod(prepare=lambda text: text, run=self.run),
                ZERO_SHOT_TEXT: BatchMethod(prepare=lambda item: item, run=self.classify)}

    def run(self, texts: list[Any]) -> list[Vector]:
        self.started.set()
        assert self.gate.wait(10)
        return [Vector([1.0, 0.0], 1) for _ in texts]

    def classify(self, items: list[Any]) -> list[Scores]:
        return [Scores([(label, 1 / len(item.labels)) for label in item.labels], 1) for item in items]

    def warmup(self) -> None:
        pass


@pytest.fixture
def busy(tmp_path: Path) -> Any:
    """An app with two gated embedders: `busy` with 4 s of work queued at one input a second, `idle` with none
    (deadline 2 s for both)."""
    models = {"busy": _GatedEmbedder(), "idle": _GatedEmbedder()}
    file = {"server": {"cache_dir": str(tmp_path / "cache")},
            "models": [{"name": name, "task": "embeddings", "source": "unused", "max_batch_size": 1,
                        "queue_timeout_s": 2} for name in models]}
    app = create_app(load_settings({"data_dir": tmp_path / "data", "auth_cache_seconds": 0}, file=file),
                     loader=lambda config, server: models[config.name])
    assert app.extensions["maas"].registry.wait_until_loaded(10)
    runner: Runner = app.extensions["maas"].registry.get("busy").runner
    runner.service_rate.per_second = 1.0
    runner.submit(EMBED, "running")
    assert models["busy"].started.wait(5)
    runner.submit_many(EMBED, ["a", "b", "c"])  # 4 s until a new call starts: past its 2 s deadline
    yield app, models
    for model in models.values():
        model.gate.set()


def _only(app: Flask, model: str) -> None:
    """Leave `model` the app's only embeddings model."""
    registry = app.extensions["maas"].registry
    registry._entries = {name: entry for name, entry in registry._entries.items() if name == model}


def _post(client: FlaskClient, **headers: str) -> Any:
    return client.post("/v1/embeddings", data=NOT_JSON, content_type="application/json", headers=headers)


def test_a_call_every_model_would_refuse_is_refused_before_its_body_is_read(busy: Any,
                                                                           caplog: pytest.LogCaptureFixture) -> None:
    app, _ = busy
    _only(app, "busy")
    shed_before = metrics.SHED.labels("estimate")._value.get()
    with caplog.at_level(logging.INFO, logger="maas.access"):
        refused = _post(app.test_client(), **{"X-Request-ID": "flood-1"})
    assert refused.status_code == 503, refused.get_json()
    error = refused.get_json()["error"]
    assert error["code"] == "overloaded" and "4.0s of work" in error["message"]
    assert refused.headers["Retry-After"] == "2" and refused.headers["X-Request-ID"] == "flood-1"
    assert metrics.SHED.labels("estimate")._value.get() == shed_before + 1
    logged = [r for r in caplog.records if r.name == "maas.access" and getattr(r, "request_id", "") == "flood-1"]
    assert [(r.status, r.model, r.route) for r in logged] == [(503, "busy", "/v1/embeddings")]
    accounts_of(app).usage.flush()
    rows = usage_summary(accounts_of(app).store, anonymous=True)
    assert [(row["model"], row["requests"], row["errors"]) for row in rows] == [("busy", 1, 1)]


def test_a_call_another_model_could_serve_goes_on_to_its_view(busy: Any) -> None:
    app, _ = busy
    assert _post(app.test_client()).status_code == 400  # `idle` could take it: the view read the body


def test_a_deadline_the_queue_can_meet_goes_on_to_its_view(busy: Any) -> None:
    app, _ = busy
    _only(app, "busy")
    client = app.test_client()
    assert _post(client, **{"X-Request-Timeout": "5"}).status_code == 400  # 4 s of work: within 5 s
    assert _post(client, **{"X-Request-Timeout": "3"}).status_code == 503
    invalid = client.post("/v1/embeddings", json={"model": "busy", "input": "x"},
                          headers={"X-Request-Timeout": "never"})
    assert invalid.status_code == 400 and invalid.get_json()["error"]["code"] == "invalid_request_timeout"


def test_calls_the_early_path_cannot_judge_are_answered_by_flask(busy: Any) -> None:
    """A web page's call (its Host and origin are checked there) and a query string (keys in URLs are
    refused there) go on: the view reads the body and says it is not JSON."""
    app, _ = busy
    _only(app, "busy")
    client = app.test_client()
    assert _post(client, Origin="http://localhost").status_code == 400
    assert client.post("/v1/embeddings?x=1", data=NOT_JSON, content_type="application/json").status_code == 400


def test_a_key_that_would_not_pass_gets_its_401_and_a_valid_one_its_503_on_its_own_usage(busy: Any) -> None:
    app, _ = busy
    _only(app, "busy")
    key, _ = create_key(accounts_of(app).store, "flooder")
    client = app.test_client()
    assert _post(client).status_code == 401  # a key now exists: calls without one are refused first
    assert _post(client, Authorization="Bearer maas_not-a-key").status_code == 401
    assert _post(client, Authorization=f"Bearer {key}").status_code == 503
    accounts_of(app).usage.flush()
    rows = usage_summary(accounts_of(app).store, key_name="flooder")
    assert [(row["model"], row["requests"], row["errors"]) for row in rows] == [("busy", 1, 1)]


def test_a_model_still_loading_is_not_refused_early(busy: Any) -> None:
    app, _ = busy
    _only(app, "busy")
    entry = app.extensions["maas"].registry.get("busy")
    runner, entry.runner = entry.runner, None
    try:
        assert _post(app.test_client()).status_code == 400  # the view answers (it reads the body first)
    finally:
        entry.runner = runner


def test_a_model_without_a_measured_rate_is_judged_by_its_view(busy: Any) -> None:
    """A cold model's rule (two batches queued ahead) is applied at the call's own submit, not before its body
    is read: a fast model's queue drains while a burst arrives."""
    app, _ = busy
    _only(app, "busy")
    app.extensions["maas"].registry.get("busy").runner.service_rate.per_second = None
    client = app.test_client()
    assert _post(client).status_code == 400  # the view read the body
    refused = client.post("/v1/embeddings", json={"model": "busy", "input": "x"})
    assert refused.status_code == 503 and "no service rate measured yet" in refused.get_json()["error"]["message"]
