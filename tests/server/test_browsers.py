"""Calls served without a key cannot come from a web page: DNS rebinding (a foreign Host) gets 421, a
cross-site POST (a foreign Origin) 403; keyed calls, probes, curl and configured origins are unaffected.

Over real routes with the fake embedder (tests/server/accounting_support.py).
"""

from __future__ import annotations

import io
import socket
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from maas_server.accounts import create_key
from maas_server.config import ConfigError
from maas_server.settings import load_settings
from tests.server.accounting_support import accounts_of, word_app

EVIL = "evil.example:8000"  # a rebinding page's own name, pointed at this server
REMOTE = {"REMOTE_ADDR": "203.0.113.9"}
EMBED = {"input": "hi"}


def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    error: dict[str, Any] = response.json["error"]
    assert error["code"] == code and error["message"], error
    return error


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    """auto mode with no key: loopback clients are served without one."""
    return word_app(tmp_path_factory.mktemp("browsers"))


# -- Host: DNS rebinding

@pytest.mark.parametrize("method, path", [("get", "/v1/models"), ("get", "/v1/usage"), ("post", "/v1/embeddings"),
                                          ("post", "/models/words")])
def test_a_foreign_host_is_refused_where_no_key_is_needed(app: Flask, method: str, path: str) -> None:
    response = app.test_client().open(path, method=method.upper(), json=EMBED if method == "post" else None,
                                      headers={"Host": EVIL})
    error = _error(response, 421, "host_not_allowed")
    assert "allowed_hosts" in error["message"] and "MAAS_ALLOWED_HOSTS" in error["message"]
    assert "evil.example" in error["message"]


@pytest.mark.parametrize("host", ["localhost", "localhost:8000", "LOCALHOST:9", "127.0.0.1", "127.0.0.1:8000",
                                  "127.8.9.10:1234", "[::1]:8000", "[::1]", "10.4.5.6:8000",
                                  socket.gethostname()])
def test_loopback_names_addresses_and_the_servers_own_name_are_answered(app: Flask, host: str) -> None:
    client = app.test_client()
    assert client.get("/v1/models", headers={"Host": host}).status_code == 200
    assert client.post("/v1/embeddings", json=EMBED, headers={"Host": host}).status_code == 200


@pytest.mark.parametrize("host", ["evil.example", "localhost.evil.example", "127.0.0.1.evil.example",
                                  "evil.example@127.0.0.1", "127.0.0.1:8000/x", "[::1", ""])
def test_names_that_only_look_local_are_refused(app: Flask, host: str) -> None:
    _error(app.test_client().get("/v1/models", headers={"Host": host}), 421, "host_not_allowed")


def test_configured_hosts_are_answered(tmp_path: Path) -> None:
    client = word_app(tmp_path, allowed_hosts=("maas.example.com", "*.internal.example")).test_client()
    for host in ("maas.example.com", "MAAS.example.com:8443", "gpu-1.internal.example", "a.b.internal.example:80"):
        assert client.post("/v1/embeddings", json=EMBED, headers={"Host": host}).status_code == 200, host
    for host in ("internal.example", "maas.example.com.evil.example", "evil.example"):
        _error(client.post("/v1/embeddings", json=EMBED, headers={"Host": host}), 421, "host_not_allowed")


def test_a_star_answers_any_host(tmp_path: Path) -> None:
    client = word_app(tmp_path, allowed_hosts=("*",)).test_client()
    assert client.post("/v1/embeddings", json=EMBED, headers={"Host": EVIL}).status_code == 200


def test_open_mode_checks_the_host_of_keyless_calls_too(tmp_path: Path) -> None:
    client = word_app(tmp_path, auth="open").test_client()
    _error(client.get("/v1/models", headers={"Host": EVIL}, environ_base=REMOTE), 421, "host_not_allowed")
    assert client.get("/v1/models", headers={"Host": "10.0.0.7:8000"}, environ_base=REMOTE).status_code == 200


@pytest.mark.parametrize("auth", ["auto", "loopback", "keys"])
def test_calls_with_a_valid_key_are_answered_under_any_name(tmp_path: Path, auth: str) -> None:
    # A reverse proxy passing its public name on, or a client of a Service by its DNS name: a page has no key.
    app = word_app(tmp_path, auth=auth)
    key, _ = create_key(accounts_of(app).store, "team-a")
    client = app.test_client()
    headers = {"Host": "maas.example.com", "Authorization": f"Bearer {key}", "Origin": "https://app.example"}
    for remote in ({}, REMOTE):
        assert client.post("/v1/embeddings", json=EMBED, headers=headers, environ_base=remote).status_code == 200


def test_keys_mode_answers_a_keyless_call_401_whatever_its_host(tmp_path: Path) -> None:
    app = word_app(tmp_path, auth="keys")
    create_key(accounts_of(app).store, "team-a")
    _error(app.test_client().get("/v1/models", headers={"Host": EVIL}), 401, "missing_api_key")


@pytest.mark.parametrize("path", ["/health", "/ready", "/metrics", "/openapi.json"])
def test_probes_and_scrapers_are_answered_under_any_name(app: Flask, path: str) -> None:
    # Kubernetes' probes and Prometheus name a pod by its IP; some clients by a Service's name.
    for host in ("10.1.2.3:8000", "maas-http.default.svc:8000", EVIL):
        assert app.test_client().get(path, headers={"Host": host}).status_code == 200, (path, host)


# -- Origin: cross-site posts

def _body(kind: str) -> dict[str, Any]:
    """The bodies a page may post cross-site without a preflight, and JSON (which needs one)."""
    return {"form": {"data": "input=hi", "content_type": "application/x-www-form-urlencoded"},
            "text-plain": {"data": '{"input": "hi"}', "content_type": "text/plain"},
            "multipart": {"data": {"file": (io.BytesIO(b"RIFF"), "a.wav"), "model": "words"},
                          "content_type": "multipart/form-data"},
            "json": {"json": EMBED}}[kind]


@pytest.mark.parametrize("body", ["form", "text-plain", "multipart", "json"])
@pytest.mark.parametrize("path", ["/v1/embeddings", "/v1/audio/transcriptions", "/v1/classify/image",
                                  "/models/words"])
def test_a_cross_site_post_is_refused_where_no_key_is_needed(app: Flask, path: str, body: str) -> None:
    response = app.test_client().post(path, headers={"Origin": "http://evil.example"}, **_body(body))
    error = _error(response, 403, "cross_origin_refused")
    assert "cors_origins" in error["message"] and "http://evil.example" in error["message"]
    assert "Access-Control-Allow-Origin" not in response.headers


@pytest.mark.parametrize("headers", [
    {"Origin": "null"},  # a sandboxed frame, a file:// page
    {"Origin": "http://localhost:3000"},  # another port is another origin
    {"Origin": "http://127.0.0.1"},  # and another name for the same address
    {"Origin": "http://localhost.evil.example"},
    {"Origin": "not a url"},
    {"Sec-Fetch-Site": "cross-site"},  # no Origin, but the browser says where the page is
])
def test_other_origins_are_refused(app: Flask, headers: dict[str, str]) -> None:
    response = app.test_client().post("/v1/embeddings", json=EMBED, headers=headers)
    _error(response, 403, "cross_origin_refused")


@pytest.mark.parametrize("host, origin", [("localhost", "http://localhost"), ("localhost:8000", "http://localhost:8000"),
                                          ("127.0.0.1:8000", "http://127.0.0.1:8000"),
                                          ("[::1]:8000", "http://[::1]:8000"),
                                          ("127.0.0.1", "http://127.0.0.1:80")])
def test_a_same_origin_post_is_answered(app: Flask, host: str, origin: str) -> None:
    headers = {"Host": host, "Origin": origin, "Sec-Fetch-Site": "same-origin"}
    assert app.test_client().post("/v1/embeddings", json=EMBED, headers=headers).status_code == 200


def test_a_same_origin_post_through_a_tls_proxy_is_answered(tmp_path: Path) -> None:
    # The proxy speaks HTTPS, the server plain HTTP: the origin's port is https' when Host names none.
    client = word_app(tmp_path, allowed_hosts=("maas.example.com",)).test_client()
    headers = {"Host": "maas.example.com", "Origin": "https://maas.example.com"}
    assert client.post("/v1/embeddings", json=EMBED, headers=headers).status_code == 200


def test_calls_without_an_origin_are_answered(app: Flask) -> None:
    # curl, the SDKs, server-side code: not browsers.
    client = app.test_client()
    assert client.post("/v1/embeddings", json=EMBED).status_code == 200
    assert client.post("/v1/embeddings", json=EMBED, headers={"Sec-Fetch-Site": "none"}).status_code == 200


def test_a_cross_site_get_is_not_refused_for_its_origin(app: Flask) -> None:
    # It changes nothing, and without CORS the page cannot read the answer.
    response = app.test_client().get("/v1/models", headers={"Origin": "http://evil.example"})
    assert response.status_code == 200 and "Access-Control-Allow-Origin" not in response.headers


def test_configured_cors_origins_may_post_without_a_key(tmp_path: Path) -> None:
    client = word_app(tmp_path, cors_origins=("http://localhost:3000", "https://app.example")).test_client()
    for origin in ("http://localhost:3000", "https://app.example"):
        preflight = client.options("/v1/embeddings", headers={"Origin": origin,
                                                             "Access-Control-Request-Method": "POST"})
        assert preflight.headers["Access-Control-Allow-Origin"] == origin
        response = client.post("/v1/embeddings", json=EMBED, headers={"Origin": origin, "Sec-Fetch-Site": "same-site"})
        assert response.status_code == 200 and response.headers["Access-Control-Allow-Origin"] == origin
    _error(client.post("/v1/embeddings", json=EMBED, headers={"Origin": "http://evil.example"}), 403,
           "cross_origin_refused")


def test_cors_for_any_origin_lets_any_origin_post(tmp_path: Path) -> None:
    client = word_app(tmp_path, cors_origins=("*",)).test_client()
    assert client.post("/v1/embeddings", json=EMBED, headers={"Origin": "http://evil.example"}).status_code == 200


# -- the setting, and the description

def test_allowed_hosts_is_read_from_maas_allowed_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAAS_ALLOWED_HOSTS", " maas.example.com , *.Internal.Example. ")
    assert load_settings().allowed_hosts == ("maas.example.com", "*.internal.example")


@pytest.mark.parametrize("value", ["http://maas.example.com", "maas.example.com:8443", "maas.example.com/v1",
                                   "*example.com", "a b"])
def test_allowed_hosts_takes_names_alone(value: str) -> None:
    with pytest.raises(ConfigError, match=r"allowed_hosts: .*without a scheme, port or path"):
        load_settings({"allowed_hosts": value})


def test_openapi_documents_both_refusals(app: Flask) -> None:
    paths = app.test_client().get("/openapi.json").json["paths"]
    assert {"403", "421"} <= set(paths["/v1/embeddings"]["post"]["responses"])
    assert "421" in paths["/v1/models"]["get"]["responses"]
