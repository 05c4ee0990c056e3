"""How a call proves who it is: keys only in the Authorization header, and the auth modes.

Over real routes with the fake embedder (tests/server/accounting_support.py).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from maas_server.accounts import create_key
from maas_server.ops.logs import JsonFormatter
from tests.server.accounting_support import accounts_of, word_app

REMOTE = {"REMOTE_ADDR": "203.0.113.9"}


def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    error: dict[str, Any] = response.json["error"]
    assert error["code"] == code and error["message"], error
    return error


def _log_text(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(JsonFormatter().format(record) for record in caplog.records)


# -- keys in URLs

@pytest.mark.parametrize("query", ["api_key", "key", "access_token", "API_KEY"])
@pytest.mark.parametrize("path", ["/v1/embeddings", "/v1/models", "/health"])
def test_a_key_in_the_query_string_is_refused_and_never_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                               query: str, path: str) -> None:
    app = word_app(tmp_path, log_content=True)
    key, _ = create_key(accounts_of(app).store, "team-a")
    with caplog.at_level(logging.DEBUG):
        response = app.test_client().open(f"{path}?{query}={key}", method="POST" if path == "/v1/embeddings" else "GET",
                                          json={"input": "hi"} if path == "/v1/embeddings" else None)
    error = _error(response, 400, "api_key_in_url")
    assert "Authorization: Bearer" in error["message"] and key not in error["message"]
    assert key not in _log_text(caplog)


def test_a_maas_key_under_any_query_name_is_refused(tmp_path: Path) -> None:
    app = word_app(tmp_path)
    key, _ = create_key(accounts_of(app).store, "team-a")
    _error(app.test_client().get(f"/v1/models?auth={key}"), 400, "api_key_in_url")


def test_harmless_query_parameters_are_still_accepted(tmp_path: Path) -> None:
    assert word_app(tmp_path).test_client().get("/v1/usage?since=2026-01-01").status_code == 200


@pytest.mark.parametrize("body, content_type", [
    ("api_key=SECRET-VALUE-1&input=hi", "application/x-www-form-urlencoded"),
    ('{"input": "hi", "access_token": "SECRET-VALUE-1"}', "application/json"),
    ('{"input": "hi", "note": "maas_SECRETVALUE1SECRETVALUE1"}', "application/json"),
])
def test_logged_bodies_never_carry_credentials(tmp_path: Path, caplog: pytest.LogCaptureFixture, body: str,
                                               content_type: str) -> None:
    client = word_app(tmp_path, log_content=True).test_client()
    with caplog.at_level(logging.INFO, logger="maas.access"):
        client.post("/v1/embeddings", data=body, content_type=content_type)
    logged = [json.loads(JsonFormatter().format(r)) for r in caplog.records if r.name == "maas.access"]
    assert len(logged) == 1 and "[redacted]" in logged[0]["body"]
    assert "SECRET" not in _log_text(caplog)
