"""How a call proves who it is: keys only in the Authorization header, and the auth modes.

Over real routes with the fake embedder (tests/server/accounting_support.py).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from maas_server.accounts import AccountSettings, Store, create_key, revoke_key
from maas_server.config import ConfigError
from maas_server.ops.logs import JsonFormatter
from maas_server.serve.options import check_serving_address
from maas_server.settings import load_settings
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


# -- auth modes

def _embed(client: FlaskClient, key: str | None = None, remote: bool = False) -> Any:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return client.post("/v1/embeddings", json={"input": "hi"}, headers=headers, environ_base=REMOTE if remote else {})


@pytest.mark.parametrize("allow_anonymous", [False, True])
def test_revoking_every_key_closes_v1_instead_of_reopening_it(tmp_path: Path, allow_anonymous: bool) -> None:
    # The emergency path: a leaked key, every key revoked at once. Nothing may fall back to open.
    app = word_app(tmp_path, allow_anonymous=allow_anonymous)
    store = accounts_of(app).store
    keys = [create_key(store, name)[0] for name in ("team-a", "team-b")]
    client = app.test_client()
    assert _embed(client, keys[0]).status_code == 200
    for name in ("team-a", "team-b"):
        revoke_key(store, name)
    for remote in (False, True):
        _error(_embed(client, remote=remote), 401, "missing_api_key")
        _error(_embed(client, keys[0], remote=remote), 401, "revoked_api_key")
        _error(client.get("/v1/models", environ_base=REMOTE if remote else {}), 401, "missing_api_key")
        _error(client.get("/v1/usage", environ_base=REMOTE if remote else {}), 401, "missing_api_key")
    _error(client.post("/v1/completions", json={"prompt": "hi"}), 401, "missing_api_key")


def test_expired_keys_do_not_reopen_v1(tmp_path: Path) -> None:
    app = word_app(tmp_path)
    key, _ = create_key(accounts_of(app).store, "temp", expires_at=time.time() - 1)
    _error(_embed(app.test_client()), 401, "missing_api_key")
    _error(_embed(app.test_client(), key), 401, "expired_api_key")


def test_keys_mode_needs_a_key_before_the_first_one_exists(tmp_path: Path) -> None:
    app = word_app(tmp_path, auth="keys")
    client = app.test_client()
    _error(_embed(client), 401, "missing_api_key")  # loopback too
    assert _embed(client, "maas_not-a-key-at-all").status_code == 401  # any token, while no key exists
    key, _ = create_key(accounts_of(app).store, "team-a")
    assert _embed(client, key).status_code == 200


def test_loopback_mode_admits_loopback_without_a_key_and_others_with_one(tmp_path: Path) -> None:
    app = word_app(tmp_path, auth="loopback")
    client = app.test_client()
    key, _ = create_key(accounts_of(app).store, "remote-team")
    assert _embed(client).status_code == 200
    _error(_embed(client, remote=True), 401, "missing_api_key")
    assert _embed(client, key, remote=True).status_code == 200


def test_open_mode_admits_anyone_and_still_names_a_valid_key(tmp_path: Path) -> None:
    app = word_app(tmp_path, auth="open")
    client = app.test_client()
    key, _ = create_key(accounts_of(app).store, "team-a")
    assert _embed(client, remote=True).status_code == 200
    assert _embed(client, "placeholder-the-openai-package-needs", remote=True).status_code == 200
    assert client.get("/v1/usage", headers={"Authorization": f"Bearer {key}"}).json["key"] == "team-a"


def test_before_the_first_key_a_placeholder_key_is_ignored(tmp_path: Path) -> None:
    # Clients such as the openai package always send some key; an open server must not refuse them.
    assert _embed(word_app(tmp_path).test_client(), "sk-unused").status_code == 200


def test_auth_mode_is_read_from_maas_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MAAS_AUTH", raising=False)
    assert load_settings().auth == "auto"
    monkeypatch.setenv("MAAS_AUTH", "Keys")
    assert load_settings().auth == "keys"
    monkeypatch.setenv("MAAS_AUTH", "none")
    with pytest.raises(ConfigError, match=r"auth: .*'auto', 'keys', 'loopback' or 'open'"):
        load_settings()


def test_serving_a_public_address_depends_on_the_mode(tmp_path: Path) -> None:
    def check(**settings: Any) -> str | None:
        values = {"allow_anonymous": False, **settings}
        return check_serving_address("0.0.0.0", values["allow_anonymous"],
                                     AccountSettings(data_dir=tmp_path, **values))

    assert check() is not None  # auto, no key ever: it would be open
    assert check(auth="keys") is None and check(auth="open") is None and check(auth="loopback") is None
    store = Store(AccountSettings(data_dir=tmp_path).url)
    create_key(store, "team-a")
    revoke_key(store, "team-a")
    store.dispose()
    assert check() is None  # every key revoked: closed, not open
