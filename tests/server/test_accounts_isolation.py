"""Tenants apart: a key sees its own usage only, and only admin keys read everyone's usage or the audit log."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask

from maas_server.accounts import create_key
from tests.server.accounting_support import accounts_of, word_app


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return word_app(tmp_path)


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_v1_usage_shows_a_key_only_its_own_rows(app: Flask) -> None:
    client = app.test_client()
    store = accounts_of(app).store
    keys = {name: create_key(store, name)[0] for name in ("tenant-a", "tenant-b")}
    for name, calls, words in (("tenant-a", 3, "one two"), ("tenant-b", 5, "one two three four")):
        for _ in range(calls):
            assert client.post("/v1/embeddings", json={"input": words}, headers=_bearer(keys[name])).status_code == 200
    for name, requests, tokens in (("tenant-a", 3, 6), ("tenant-b", 5, 20)):
        # query parameters that would name another tenant are not filters here: the key alone decides
        for query in ("", "?key_id=1&key_id=2", "?key_name=tenant-a&key_name=tenant-b", "?since=1970-01-01"):
            report = client.get(f"/v1/usage{query}", headers=_bearer(keys[name]))
            assert report.status_code == 200, report.json
            assert report.json["key"] == name
            rows = [(row["model"], row["requests"], row["prompt_tokens"]) for row in report.json["data"]]
            assert ("words", requests, tokens) in rows  # with its own /v1/usage calls (no model) beside it
            assert [model for model, _, _ in rows if model is not None] == ["words"]
            other = "tenant-b" if name == "tenant-a" else "tenant-a"
            assert other not in report.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/v1/admin/usage", "/v1/admin/usage?key_id=1", "/v1/admin/audit",
                                  "/v1/admin/audit?key_id=1", "/v1/admin/keys"])
def test_a_tenant_key_gets_403_from_every_admin_read(app: Flask, path: str) -> None:
    client = app.test_client()
    key, record = create_key(accounts_of(app).store, "tenant-a")
    assert client.post("/v1/embeddings", json={"input": "hi"}, headers=_bearer(key)).status_code == 200
    answer = client.get(path.replace("key_id=1", f"key_id={record.id}"), headers=_bearer(key))
    assert answer.status_code == 403 and answer.json["error"]["code"] == "admin_required"
    assert "data" not in answer.json


def test_an_admin_key_sees_every_tenant_where_a_tenant_sees_itself(app: Flask) -> None:
    client = app.test_client()
    store = accounts_of(app).store
    admin, _ = create_key(store, "ops", admin=True)
    tenant, _ = create_key(store, "tenant-a")
    other, _ = create_key(store, "tenant-b")
    for key in (tenant, other):
        assert client.post("/v1/embeddings", json={"input": "hi"}, headers=_bearer(key)).status_code == 200
    everyone = client.get("/v1/admin/usage", headers=_bearer(admin)).json["data"]
    assert {row["key"] for row in everyone} == {"tenant-a", "tenant-b"}
    own = client.get("/v1/usage", headers=_bearer(tenant)).json
    assert (own["key"], [(row["model"], row["requests"]) for row in own["data"]]) == ("tenant-a", [("words", 1)])
