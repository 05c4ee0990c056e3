"""Zero-retention keys: nothing a request carries or returns is logged or stored, even with log_content on."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from maas_server.accounts import create_key
from maas_server.accounts.store import usage
from maas_server.app import create_app
from maas_server.cli import main
from maas_server.ops.logs import JsonFormatter
from maas_server.settings import load_settings
from tests.server.accounting_support import accounts_of, word_app


@pytest.fixture(scope="module")
def gpt2_app(tmp_path_factory: pytest.TempPathFactory, tiny_gpt2: str) -> Flask:
    tmp = tmp_path_factory.mktemp("gpt2-zero-retention")
    settings = load_settings({"data_dir": tmp / "data", "auth_cache_seconds": 0, "log_content": True},
                             file={"server": {"cache_dir": str(tmp / "cache")},
                                   "models": [{"name": "tiny-gpt2", "task": "text-generation", "source": tiny_gpt2}]})
    app = create_app(settings)
    assert app.extensions["maas"].registry.wait_until_loaded(60)
    return app


@pytest.fixture
def words_app(tmp_path: Path) -> Flask:
    return word_app(tmp_path, log_content=True)


def _calls(marker: str) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """Per app: the routes called, each with a body that carries the marker."""
    text = f"please remember {marker} for me"
    return {
        "words": [("/v1/embeddings", {"input": text}),
                  ("/v1/classify/text", {"input": text, "labels": ["secret", marker]})],
        "gpt2": [("/v1/chat/completions", {"model": "tiny-gpt2", "max_tokens": 3,
                                           "messages": [{"role": "user", "content": text}]}),
                 ("/v1/chat/completions", {"model": "tiny-gpt2", "max_tokens": 3, "stream": True,
                                           "messages": [{"role": "user", "content": text}]}),
                 ("/v1/completions", {"model": "tiny-gpt2", "max_tokens": 3, "prompt": text}),
                 ("/v1/responses", {"model": "tiny-gpt2", "max_output_tokens": 3, "input": text, "store": False})],
    }


@pytest.fixture
def captured() -> Iterator[list[logging.LogRecord]]:
    """Every log record of every logger, at every level."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    root, handler = logging.getLogger(), Keep(logging.DEBUG)
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield records
    root.removeHandler(handler)
    root.setLevel(level)


def _call_all(apps: dict[str, Flask], key_name: str, marker: str, **key_options: Any) -> None:
    for name, app in apps.items():
        key, _ = create_key(accounts_of(app).store, f"{key_name}-{uuid.uuid4().hex[:6]}", **key_options)
        client: FlaskClient = app.test_client()
        for route, body in _calls(marker)[name]:
            response = client.post(route, json=body, headers={"Authorization": f"Bearer {key}"})
            assert response.status_code == 200, (route, response.get_data(as_text=True))
            response.get_data()  # a stream to its end
            response.close()
        assert accounts_of(app).usage.flush()


def _logged(records: list[logging.LogRecord]) -> str:
    formatter = JsonFormatter()
    return "\n".join(formatter.format(record) + json.dumps(record.__dict__, default=str) for record in records)


def _usage_rows(app: Flask) -> str:
    with accounts_of(app).store.begin() as conn:
        return repr(conn.execute(select(usage)).all())


def _data_files(app: Flask) -> dict[Path, bytes]:
    folder = accounts_of(app).settings.data_dir
    return {path: path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def test_nothing_a_zero_retention_request_carries_is_logged_or_stored(
        words_app: Flask, gpt2_app: Flask, captured: list[logging.LogRecord]) -> None:
    marker = f"zr-marker-{uuid.uuid4().hex}"
    apps = {"words": words_app, "gpt2": gpt2_app}
    _call_all(apps, "private", marker, zero_retention=True)
    assert marker not in _logged(captured)
    for app in apps.values():
        accounts_of(app).store.dispose()  # SQLite writes its -wal back to the file
        assert "private" in _usage_rows(app) and marker not in _usage_rows(app)  # metered, without content
        files = _data_files(app)
        assert files and not [path for path, data in files.items() if marker.encode() in data]


def test_the_same_requests_from_another_key_are_logged_with_log_content(
        words_app: Flask, gpt2_app: Flask, captured: list[logging.LogRecord]) -> None:
    """The check above can fail: without zero retention, log_content puts every body in the log."""
    marker = f"plain-marker-{uuid.uuid4().hex}"
    _call_all({"words": words_app, "gpt2": gpt2_app}, "plain", marker)
    bodies = [getattr(r, "body", "") for r in captured if r.name == "maas.access"]
    assert sum(marker in body for body in bodies) == sum(len(calls) for calls in _calls(marker).values())


def test_responses_refuse_store_for_a_zero_retention_key_only(gpt2_app: Flask) -> None:
    client = gpt2_app.test_client()
    private, _ = create_key(accounts_of(gpt2_app).store, f"private-{uuid.uuid4().hex[:6]}", zero_retention=True)
    plain, _ = create_key(accounts_of(gpt2_app).store, f"plain-{uuid.uuid4().hex[:6]}")
    body = {"model": "tiny-gpt2", "max_output_tokens": 2, "input": "hi"}
    refused = client.post("/v1/responses", json={**body, "store": True}, headers={"Authorization": f"Bearer {private}"})
    assert refused.status_code == 400
    error = refused.json["error"]
    assert (error["code"], error["param"]) == ("store_not_allowed", "store") and "zero-retention" in error["message"]
    for sent in ({}, {"store": False}):
        answer = client.post("/v1/responses", json={**body, **sent}, headers={"Authorization": f"Bearer {private}"})
        assert answer.status_code == 200 and answer.json["store"] is False
    answer = client.post("/v1/responses", json={**body, "store": True}, headers={"Authorization": f"Bearer {plain}"})
    assert answer.status_code == 200


def test_chat_refuses_store_for_a_zero_retention_key_only(gpt2_app: Flask) -> None:
    client = gpt2_app.test_client()
    private, _ = create_key(accounts_of(gpt2_app).store, f"private-{uuid.uuid4().hex[:6]}", zero_retention=True)
    plain, _ = create_key(accounts_of(gpt2_app).store, f"plain-{uuid.uuid4().hex[:6]}")
    body = {"model": "tiny-gpt2", "max_tokens": 2, "messages": [{"role": "user", "content": "hi"}], "store": True}
    refused = client.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {private}"})
    assert refused.status_code == 400 and refused.json["error"]["code"] == "store_not_allowed", refused.json
    assert client.post("/v1/chat/completions", json={**body, "store": False},
                       headers={"Authorization": f"Bearer {private}"}).status_code == 200
    ordinary = client.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {plain}"})
    assert ordinary.status_code == 200


def test_admin_api_creates_lists_and_patches_zero_retention(words_app: Flask) -> None:
    admin_key, _ = create_key(accounts_of(words_app).store, "ops", admin=True)
    admin = {"Authorization": f"Bearer {admin_key}"}
    client = words_app.test_client()
    created = client.post("/v1/admin/keys", headers=admin, json={"name": "private", "zero_retention": True})
    assert created.status_code == 200 and created.json["zero_retention"] is True
    listed = {k["name"]: k["zero_retention"] for k in client.get("/v1/admin/keys", headers=admin).json["data"]}
    assert listed == {"ops": False, "private": True}
    path = f"/v1/admin/keys/{created.json['id']}"
    assert client.patch(path, headers=admin, json={"zero_retention": False}).json["zero_retention"] is False
    refused = client.patch(path, headers=admin, json={"zero_retention": None})
    assert refused.status_code == 400 and refused.json["error"]["param"] == "zero_retention"
    changes = [e["changes"] for e in client.get("/v1/admin/audit", headers=admin).json["data"]]
    assert changes[0] == {"zero_retention": [True, False]} and changes[1]["zero_retention"] is True


def test_keys_create_zero_retention_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = str(tmp_path / "data")
    assert main(["keys", "create", "--data-dir", data, "--name", "private", "--zero-retention"]) == 0
    assert main(["keys", "create", "--data-dir", data, "--name", "plain"]) == 0
    capsys.readouterr()
    assert main(["keys", "list", "--data-dir", data]) == 0
    header, private, plain = capsys.readouterr().out.splitlines()
    column = header.split().index("zero_retention")
    assert (private.split()[column], plain.split()[column]) == ("yes", "-")
