"""The admin API: only admin keys may manage keys and read everyone's usage, over the real routes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from maas_server.accounts import UsageRecord, create_key, record_usage
from tests.server.accounting_support import accounts_of, word_app

REMOTE = {"REMOTE_ADDR": "203.0.113.9"}
ADMIN_CALLS = [("get", "/v1/admin/keys", None), ("post", "/v1/admin/keys", {"name": "x"}),
               ("patch", "/v1/admin/keys/1", {"rpm": 5}), ("delete", "/v1/admin/keys/1", None),
               ("get", "/v1/admin/usage", None), ("get", "/v1/admin/audit", None)]


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return word_app(tmp_path)


@pytest.fixture
def admin(app: Flask) -> dict[str, str]:
    key, _ = create_key(accounts_of(app).store, "ops", admin=True)
    return {"Authorization": f"Bearer {key}"}


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    error: dict[str, Any] = response.json["error"]
    assert error["code"] == code, error
    return error


def _call(client: FlaskClient, method: str, path: str, body: Any, **kwargs: Any) -> Any:
    return client.open(path, method=method.upper(), json=body, **kwargs)


@pytest.mark.parametrize("method, path, body", ADMIN_CALLS)
def test_only_admin_keys_get_in(app: Flask, admin: dict[str, str], method: str, path: str, body: Any) -> None:
    client = app.test_client()
    user, _ = create_key(accounts_of(app).store, "user")
    _error(_call(client, method, path, body, headers=_bearer(user)), 403, "admin_required")
    _error(_call(client, method, path, body, environ_base=REMOTE), 401, "missing_api_key")
    assert client.get("/v1/admin/keys", headers=admin).status_code == 200


@pytest.mark.parametrize("method, path, body", ADMIN_CALLS)
def test_a_caller_admitted_without_a_key_is_no_admin(tmp_path: Path, method: str, path: str, body: Any) -> None:
    for app in (word_app(tmp_path / "loopback"), word_app(tmp_path / "open", auth="open")):
        _error(_call(app.test_client(), method, path, body), 403, "admin_required")


def test_create_shows_the_key_once_and_it_works_within_its_scopes(app: Flask, admin: dict[str, str]) -> None:
    client = app.test_client()
    created = client.post("/v1/admin/keys", headers=admin, json={
        "name": "team-a", "rpm": 60, "models": ["words"], "tasks": ["embeddings"], "expires_at": "2999-01-01"})
    assert created.status_code == 200, created.json
    record = created.json
    assert record["key"].startswith("maas_") and record["prefix"] == record["key"][:12]
    assert (record["rpm"], record["models"], record["tasks"], record["admin"], record["status"]) == (
        60, ["words"], ["embeddings"], False, "active")
    assert client.post("/v1/embeddings", json={"input": "hi"}, headers=_bearer(record["key"])).status_code == 200
    listed = client.get("/v1/admin/keys", headers=admin)
    assert [k["name"] for k in listed.json["data"]] == ["ops", "team-a"]
    assert record["key"] not in listed.get_data(as_text=True)


@pytest.mark.parametrize("body, status, code, param", [
    ({"name": "ops"}, 409, "key_exists", "name"),
    ({"name": "b", "models": ["nope"]}, 400, "invalid_value", "models"),
    ({"name": "b", "tasks": ["painting"]}, 400, "invalid_value", "tasks"),
    ({"name": "b", "models": []}, 400, "invalid_value", "models"),
    ({"name": "b", "rpm": 0}, 400, "invalid_value", "rpm"),
    ({"name": "b", "expires_at": "2001-01-01"}, 400, "invalid_value", "expires_at"),
    ({"name": "b", "key": "maas_mine"}, 400, "invalid_value", "key"),
    ({"name": " "}, 400, "invalid_value", "name"),
])
def test_create_refuses_what_it_cannot_store(app: Flask, admin: dict[str, str], body: dict[str, Any], status: int,
                                             code: str, param: str) -> None:
    error = _error(app.test_client().post("/v1/admin/keys", headers=admin, json=body), status, code)
    assert error["param"] == param


def test_patch_changes_limits_and_scopes_and_null_lifts_them(app: Flask, admin: dict[str, str]) -> None:
    client = app.test_client()
    key, record = create_key(accounts_of(app).store, "team-a")
    path = f"/v1/admin/keys/{record.id}"
    changed = client.patch(path, headers=admin, json={"rpm": 1, "cpm": 2.5, "tasks": ["text-generation"]})
    assert changed.status_code == 200
    assert (changed.json["rpm"], changed.json["cpm"], changed.json["tasks"], changed.json["models"]) == (
        1, 2.5, ["text-generation"], None)
    _error(client.post("/v1/embeddings", json={"input": "hi"}, headers=_bearer(key)), 403, "task_not_allowed")
    lifted = client.patch(path, headers=admin, json={"rpm": None, "tasks": None})
    assert (lifted.json["rpm"], lifted.json["cpm"], lifted.json["tasks"]) == (None, 2.5, None)
    assert client.post("/v1/embeddings", json={"input": "hi"}, headers=_bearer(key)).status_code == 200
    _error(client.patch(path, headers=admin, json={"name": "renamed"}), 400, "invalid_value")
    _error(client.patch(path, headers=admin, json={"admin": None}), 400, "invalid_value")
    _error(client.patch("/v1/admin/keys/999", headers=admin, json={"rpm": 5}), 404, "key_not_found")
    _error(client.patch(f"/v1/admin/keys/{2**40}", headers=admin, json={"rpm": 5}), 404, "key_not_found")


def test_delete_revokes_and_the_key_stops_working(app: Flask, admin: dict[str, str]) -> None:
    client = app.test_client()
    key, record = create_key(accounts_of(app).store, "team-a")
    revoked = client.delete(f"/v1/admin/keys/{record.id}", headers=admin)
    assert revoked.status_code == 200 and revoked.json["status"] == "revoked" and revoked.json["revoked_at"]
    _error(client.post("/v1/embeddings", json={"input": "hi"}, headers=_bearer(key)), 401, "revoked_api_key")
    _error(client.delete(f"/v1/admin/keys/{record.id}", headers=admin), 404, "key_not_found")
    _error(client.patch(f"/v1/admin/keys/{record.id}", headers=admin, json={"rpm": 5}), 404, "key_not_found")


def test_usage_is_totalled_per_bucket_key_and_model(app: Flask, admin: dict[str, str]) -> None:
    store = accounts_of(app).store
    day = 1_800_000_000 - 1_800_000_000 % 86_400
    for at, key, model, tokens, status in ((day + 10, "a", "m1", 3, 200), (day + 50, "a", "m1", 4, 500),
                                           (day + 70, "a", "m1", 5, 200), (day + 80, "b", "m2", 6, 200),
                                           (day + 90_000, "a", "m1", 7, 200)):
        record_usage(store, UsageRecord(at=at, route="/v1/embeddings", status=status, latency_ms=10.0,
                                        key_id=ord(key), key_name=key, model=model, prompt_tokens=tokens,
                                        compute_ms=250.0))
    client = app.test_client()

    def rows(query: str) -> list[tuple[Any, ...]]:
        answer = client.get(f"/v1/admin/usage?{query}", headers=admin)
        assert answer.status_code == 200, answer.json
        return [(r["start"] - day, r["key"], r["model"], r["requests"], r["errors"], r["prompt_tokens"],
                 r["compute_seconds"]) for r in answer.json["data"] if r["key"] in ("a", "b")]

    assert rows("bucket=minute") == [(0, "a", "m1", 2, 1, 7, 0.5), (60, "a", "m1", 1, 0, 5, 0.25),
                                     (60, "b", "m2", 1, 0, 6, 0.25), (90_000, "a", "m1", 1, 0, 7, 0.25)]
    assert rows("bucket=day") == [(0, "a", "m1", 3, 1, 12, 0.75), (0, "b", "m2", 1, 0, 6, 0.25),
                                  (86_400, "a", "m1", 1, 0, 7, 0.25)]
    assert rows(f"bucket=day&key_name=a&until={day + 86_400}") == [(0, "a", "m1", 3, 1, 12, 0.75)]
    assert rows(f"bucket=hour&model=m2&since={day}") == [(0, "b", "m2", 1, 0, 6, 0.25)]
    assert rows(f"key_id={ord('b')}") == [(0, "b", "m2", 1, 0, 6, 0.25)]
    _error(client.get("/v1/admin/usage?bucket=week", headers=admin), 400, "invalid_value")
    for query in ("since=soon", "key_id=a", f"key_id={2**40}"):
        _error(client.get(f"/v1/admin/usage?{query}", headers=admin), 400, "invalid_value")


def test_admin_routes_are_documented_under_their_own_tag(app: Flask) -> None:
    spec = app.test_client().get("/openapi.json").json
    admin = {(path, method) for path, ops in spec["paths"].items() for method, op in ops.items()
             if op.get("tags") == ["admin"]}
    assert admin == {("/v1/admin/keys", "get"), ("/v1/admin/keys", "post"), ("/v1/admin/keys/{key_id}", "patch"),
                     ("/v1/admin/keys/{key_id}", "delete"), ("/v1/admin/usage", "get"), ("/v1/admin/audit", "get")}
    assert [tag["name"] for tag in spec["tags"]] == ["admin"]
    assert "403" in spec["paths"]["/v1/admin/keys"]["get"]["responses"]
    assert "CreatedKey" in spec["components"]["schemas"]
