"""The audit log: every change to a key, by the admin API or the command line, with who, from where,
what and when; never a key. Read back by GET /v1/admin/audit and `maas-server audit`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flask import Flask

from maas_server.accounts import create_key
from maas_server.accounts.audit import read_audit
from maas_server.cli import main
from tests.server.accounting_support import accounts_of, word_app

REMOTE = {"REMOTE_ADDR": "203.0.113.9"}


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return word_app(tmp_path)


@pytest.fixture
def admin(app: Flask) -> dict[str, str]:
    key, _ = create_key(accounts_of(app).store, "ops", admin=True)
    return {"Authorization": f"Bearer {key}"}


def test_api_changes_are_recorded_with_who_where_and_what_but_no_key(app: Flask, admin: dict[str, str]) -> None:
    client = app.test_client()
    created = client.post("/v1/admin/keys", headers=admin, environ_base=REMOTE,
                          json={"name": "team-a", "rpm": 60, "models": ["words"]}).json
    key_id = created["id"]
    assert client.patch(f"/v1/admin/keys/{key_id}", headers=admin, environ_base=REMOTE,
                        json={"rpm": 120, "tpm": None, "tasks": ["embeddings"]}).status_code == 200
    assert client.patch(f"/v1/admin/keys/{key_id}", headers=admin, json={"rpm": 120}).status_code == 200  # no change
    assert client.delete(f"/v1/admin/keys/{key_id}", headers=admin, environ_base=REMOTE).status_code == 200
    answer = client.get(f"/v1/admin/audit?key_id={key_id}", headers=admin)
    assert answer.status_code == 200
    revoke, update, create = answer.json["data"]
    for entry in (create, update, revoke):
        assert (entry["actor"], entry["source"], entry["key_id"], entry["key_name"]) == (
            "ops", "203.0.113.9", key_id, "team-a")
        assert entry["actor_key_id"] == accounts_of(app).auth.authenticate(admin["Authorization"][7:]).id
    assert create["action"] == "key.create" and create["changes"] == {
        "name": "team-a", "rpm": 60, "tpm": None, "cpm": None, "models": ["words"], "tasks": None, "admin": False,
        "zero_retention": False, "redact_input": False, "expires_at": None}
    assert update["action"] == "key.update" and update["changes"] == {"rpm": [60, 120], "tasks": [None, ["embeddings"]]}
    assert revoke["action"] == "key.revoke" and revoke["changes"] == {"revoked_at": revoke["at"]}
    text = answer.get_data(as_text=True)
    assert created["key"] not in text and created["prefix"] not in text


def test_refused_changes_leave_no_record(app: Flask, admin: dict[str, str]) -> None:
    client = app.test_client()
    before = read_audit(accounts_of(app).store)
    assert client.post("/v1/admin/keys", headers=admin, json={"name": "ops"}).status_code == 409
    assert client.post("/v1/admin/keys", headers=admin, json={"name": "x", "models": ["nope"]}).status_code == 400
    assert client.patch("/v1/admin/keys/999", headers=admin, json={"rpm": 5}).status_code == 404
    assert client.delete("/v1/admin/keys/999", headers=admin).status_code == 404
    assert read_audit(accounts_of(app).store) == before


def test_the_audit_route_filters_limits_and_is_for_admins_only(app: Flask, admin: dict[str, str]) -> None:
    client = app.test_client()
    store = accounts_of(app).store
    user, _ = create_key(store, "user", now=4_000_000_000.0)  # in 2096: after every other change
    for name in ("a", "b", "c"):
        create_key(store, name)
    names = [e["key_name"] for e in client.get("/v1/admin/audit?limit=2", headers=admin).json["data"]]
    assert names == ["c", "b"]
    since = [e["key_name"] for e in client.get("/v1/admin/audit?since=4000000000", headers=admin).json["data"]]
    until = [e["key_name"] for e in client.get("/v1/admin/audit?until=4000000000", headers=admin).json["data"]]
    assert since == ["user"] and until == ["c", "b", "a", "ops"]
    assert client.get("/v1/admin/audit", headers={"Authorization": f"Bearer {user}"}).status_code == 403
    for query in ("limit=0", "limit=1001", "key_id=x", "since=soon"):
        assert client.get(f"/v1/admin/audit?{query}", headers=admin).json["error"]["code"] == "invalid_value"


def test_command_line_changes_are_recorded_as_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MAAS_DATABASE_URL", raising=False)
    data = ["--data-dir", str(tmp_path / "data")]
    assert main(["keys", "create", *data, "--name", "team-a", "--rpm", "5", "--admin"]) == 0
    key = capsys.readouterr().out.strip()
    assert main(["keys", "revoke", *data, "team-a"]) == 0
    assert main(["audit", *data]) == 0
    out = capsys.readouterr().out
    header, revoke, create = out.splitlines()
    assert header.split() == ["at", "actor", "source", "action", "key_id", "key", "changes"]
    assert revoke.split()[1:6] == ["cli", "cli", "key.revoke", "1", "team-a"]
    assert create.split()[1:6] == ["cli", "cli", "key.create", "1", "team-a"]
    changes = json.loads(create.split(maxsplit=6)[6])
    assert (changes["rpm"], changes["admin"]) == (5, True) and key[:12] not in out
    assert main(["audit", *data, "--key-id", "2"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1
    assert main(["audit", *data, "--key-id", str(2**40)]) == 2


