"""The account store fails closed and recovers: read-only, deleted, replaced or damaged stores.

Tests run as root, where chmod does not stop writes, so "read-only" is made where SQLite sees it:
``PRAGMA query_only`` on every new connection (writes fail with SQLITE_READONLY, as on a read-only
file), or a ``mode=ro`` URI. Deletion and replacement are real file operations. Every store here
runs on a hand-moved clock, so "a second later" costs nothing.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import event, func, select

from maas_server.accounts import (
    Authenticator,
    Limits,
    RedisLimiter,
    Store,
    StoreUnavailable,
    UsageRecord,
    UsageWriter,
    create_key,
    usage_summary,
)
from maas_server.accounts import store as store_module
from maas_server.cli import main
from maas_server.ops import metrics
from tests.server.accounting_support import Clock, accounts_of, word_app


def refuse_writes(store: Store) -> Callable[[], None]:
    """Make the store read-only as SQLite sees it; returns the undo. Connections opened before are closed
    (they would still write); the undo closes none: the store must reopen them by itself, as after a
    real chmod, where a connection opened read-only stays read-only."""
    def read_only(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA query_only=1")

    event.listen(store.engine, "connect", read_only)
    store.engine.dispose()
    return lambda: event.remove(store.engine, "connect", read_only)


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return word_app(tmp_path)


@pytest.fixture
def clock(app: Flask) -> Clock:
    clock = Clock()
    accounts_of(app).store.clock = clock
    return clock


def _embed(client: FlaskClient, key: str | None) -> Any:
    return client.post("/v1/embeddings", json={"input": "one two"},
                       headers={"Authorization": f"Bearer {key}"} if key else {})


def _unavailable(response: Any) -> None:
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.json["error"]["code"] == "store_unavailable"
    assert response.json["error"]["type"] == "service_unavailable_error"
    assert int(response.headers["Retry-After"]) >= 1


def _db(app: Flask) -> Path:
    return accounts_of(app).settings.data_dir / "maas.db"


# -- read-only

def test_read_only_store_answers_503_and_recovers_by_itself(app: Flask, clock: Clock) -> None:
    client = app.test_client()
    acc = accounts_of(app)
    key, _ = create_key(acc.store, "team-a")
    assert _embed(client, key).status_code == 200
    undo = refuse_writes(acc.store)
    assert acc.usage.flush() is False  # the row of the call above cannot be written: kept for a retry
    _unavailable(_embed(client, key))  # the worker knows its store failed: it refuses at once
    undo()
    _unavailable(_embed(client, key))  # looked at again only once a second
    clock.now += 1
    assert _embed(client, key).status_code == 200  # back, without a restart
    assert acc.usage.flush() is True
    rows = {(row["key"], row["model"]): (row["requests"], row["errors"]) for row in usage_summary(acc.store)}
    assert rows == {("team-a", "words"): (2, 0), (None, None): (2, 2)}  # none lost (the 503s: before key, model)


def test_rate_limits_fail_closed_with_503_when_their_counters_are_unavailable(app: Flask, clock: Clock) -> None:
    client = app.test_client()
    acc = accounts_of(app)
    acc.auth = Authenticator(acc.store, ttl=60)  # the key's lookup stays cached: only the limiter needs the store
    key, _ = create_key(acc.store, "limited", rpm=100)
    assert _embed(client, key).status_code == 200
    undo = refuse_writes(acc.store)
    _unavailable(_embed(client, key))
    undo()
    clock.now += 1
    assert _embed(client, key).status_code == 200


class _DownRedis:
    """A Redis client whose server cannot be reached."""

    def register_script(self, script: str) -> Callable[..., Any]:
        import redis

        def run(**_: Any) -> Any:
            raise redis.ConnectionError("Error 111 connecting to localhost:6379. Connection refused.")

        return run


def test_redis_limits_fail_closed_with_503_too(app: Flask) -> None:
    acc = accounts_of(app)
    acc.limiter = RedisLimiter(_DownRedis())
    key, _ = create_key(acc.store, "limited", rpm=100)
    _unavailable(_embed(app.test_client(), key))
    with pytest.raises(StoreUnavailable, match="Redis"):
        acc.limiter.admit(1, Limits(rpm=1))


def test_start_up_on_a_current_store_only_reads_its_schema_version(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'maas.db'}")
    statements: list[str] = []
    event.listen(store.engine, "before_cursor_execute", lambda *args: statements.append(args[2].strip().upper()))
    assert store_module.migrate(store.engine) == len(store_module.MIGRATIONS)  # what every worker runs at boot
    writes = ("BEGIN IMMEDIATE", "INSERT", "UPDATE", "DELETE", "CREATE")
    assert statements and not [s for s in statements if s.startswith(writes)], statements
    store.dispose()


def test_a_worker_boots_on_a_read_only_store_and_refuses_with_503(tmp_path: Path) -> None:
    database = tmp_path / "data" / "maas.db"
    Store(f"sqlite:///{database}").dispose()
    read_only = f"sqlite:///file:{database}?mode=ro&uri=true"
    client = word_app(tmp_path, database_url=read_only).test_client()  # booting must not fail on it
    _unavailable(_embed(client, None))
    ready = client.get("/ready")  # a load balancer sends the traffic elsewhere meanwhile
    assert ready.status_code == 503 and ready.get_json()["status"] == "unavailable"
    assert "account store" in ready.get_json()["problems"][0]


@pytest.mark.parametrize(("fault", "reason"), [("read-only", "is read-only"), ("missing", "is missing"),
                                               ("damaged", "is not a SQLite database")])
def test_ready_says_what_is_wrong_with_the_store_but_not_where_it_is(tmp_path: Path, fault: str, reason: str,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    """/ready answers anyone, key or not: it names the fault, and the server log (only) names the file."""
    database = tmp_path / "data" / "maas.db"
    if fault == "read-only":
        Store(f"sqlite:///{database}").dispose()
        app = word_app(tmp_path, database_url=f"sqlite:///file:{database}?mode=ro&uri=true")
    elif fault == "missing":
        app = word_app(tmp_path, create_store=False)
    else:
        database.parent.mkdir()
        database.write_bytes(b"not a database at all" * 200)
        app = word_app(tmp_path)
    ready = app.test_client().get("/ready")
    assert ready.status_code == 503 and ready.get_json()["status"] == "unavailable"
    problem, = ready.get_json()["problems"]
    assert problem.startswith(f"account store: the store {reason}") and "server log" in problem, problem
    body = ready.get_data(as_text=True)
    assert str(tmp_path) not in body and "maas.db" not in body and "sqlite:" not in body, body
    assert str(database) in caplog.text  # where it is and what to do: for the operator


# -- deleted, replaced

def test_a_deleted_store_is_never_served_nor_recreated_and_a_restored_one_is_used(app: Flask, clock: Clock,
                                                                                tmp_path: Path) -> None:
    client = app.test_client()
    acc = accounts_of(app)
    key, _ = create_key(acc.store, "team-a")
    assert _embed(client, key).status_code == 200
    db = _db(app)
    backup = tmp_path / "backup.db"
    with sqlite3.connect(db) as live, sqlite3.connect(backup) as copy:
        live.backup(copy)
    for path in db.parent.glob("maas.db*"):
        path.unlink()
    clock.now += 1
    _unavailable(_embed(client, key))  # not the deleted file's keys
    assert not db.exists()  # and no new, empty (keyless, so open) store
    os.replace(backup, db)
    clock.now += 1
    assert _embed(client, key).status_code == 200


def test_a_replaced_store_file_is_reopened_never_mixed_with_the_old_one(app: Flask, clock: Clock,
                                                                        tmp_path: Path) -> None:
    client = app.test_client()
    acc = accounts_of(app)
    old_key, _ = create_key(acc.store, "old")
    assert _embed(client, old_key).status_code == 200
    other = Store(f"sqlite:///{tmp_path / 'other' / 'maas.db'}")
    new_key, _ = create_key(other, "new")
    other.dispose()
    db = _db(app)
    os.replace(tmp_path / "other" / "maas.db", db)
    clock.now += 1
    # The old file's -wal is still there: SQLite would lay its pages over the new file (old keys would work).
    _unavailable(_embed(client, old_key))
    for name in ("maas.db-wal", "maas.db-shm"):
        (db.parent / name).unlink()
    clock.now += 1
    assert _embed(client, old_key).status_code == 401
    assert _embed(client, new_key).status_code == 200


def test_a_worker_started_while_the_store_is_missing_boots_and_never_creates_it(tmp_path: Path) -> None:
    app = word_app(tmp_path, create_store=False)  # as `serve` starts its workers
    _unavailable(_embed(app.test_client(), None))
    db = _db(app)
    assert not db.exists()
    store = Store.open(f"sqlite:///{db}")  # what `maas-server keys create` does: it may create the store
    key, _ = create_key(store, "team-a")
    accounts_of(app).store.clock = Clock()  # a second (and more) later
    assert _embed(app.test_client(), key).status_code == 200
    store.dispose()


# -- usage rows

@pytest.fixture
def usage_registry() -> CollectorRegistry:
    """Metrics for this test's usage writer alone (`_observer`): other tests' apps write usage rows in the
    background into the process-wide metrics while this one runs."""
    return CollectorRegistry()


def _observer(registry: CollectorRegistry) -> Callable[..., None]:
    return metrics.usage_writer_observer(Gauge("maas_usage_rows_pending", "", registry=registry),
                                         Counter("maas_usage_rows_dropped", "", registry=registry),
                                         Counter("maas_usage_write_failures", "", registry=registry))


def _samples(registry: CollectorRegistry) -> dict[str, float]:
    body = generate_latest(registry).decode()
    return {s.name: s.value for family in text_string_to_metric_families(body) for s in family.samples
            if s.name.startswith("maas_usage")}


def _row(i: int) -> UsageRecord:
    return UsageRecord(at=1000.0 + i, route="/v1/embeddings", status=200, latency_ms=1.0, key_name="k")


def _rows_in(store: Store) -> int:
    with store.engine.begin() as conn:
        return int(conn.execute(select(func.count()).select_from(store_module.usage)).scalar() or 0)


def test_usage_rows_the_store_refuses_are_kept_retried_and_counted(tmp_path: Path,
                                                                  usage_registry: CollectorRegistry) -> None:
    store = Store(f"sqlite:///{tmp_path / 'maas.db'}")
    store.clock = clock = Clock()
    writer = UsageWriter(store, linger=0, observe=_observer(usage_registry))
    before = _samples(usage_registry)
    undo = refuse_writes(store)
    for i in range(5):
        writer.add(_row(i))
    assert writer.flush() is False
    during = _samples(usage_registry)
    assert during["maas_usage_write_failures_total"] > before.get("maas_usage_write_failures_total", 0)
    assert during["maas_usage_rows_pending"] - before.get("maas_usage_rows_pending", 0) == 5
    assert writer.pending == 5
    undo()
    clock.now += 1
    assert writer.flush() is True
    assert _rows_in(store) == 5 and writer.pending == 0
    after = _samples(usage_registry)
    assert after["maas_usage_rows_pending"] == before.get("maas_usage_rows_pending", 0)
    assert after["maas_usage_rows_dropped_total"] == before.get("maas_usage_rows_dropped_total", 0)


def test_usage_rows_past_the_cap_are_dropped_and_counted(tmp_path: Path, usage_registry: CollectorRegistry) -> None:
    store = Store(f"sqlite:///{tmp_path / 'maas.db'}")
    store.clock = clock = Clock()
    writer = UsageWriter(store, linger=0, max_pending=3, observe=_observer(usage_registry))
    before = _samples(usage_registry).get("maas_usage_rows_dropped_total", 0)
    undo = refuse_writes(store)
    for i in range(5):
        writer.add(_row(i))
    assert writer.flush() is False
    assert _samples(usage_registry)["maas_usage_rows_dropped_total"] - before == 2
    undo()
    clock.now += 1
    assert writer.flush() is True and _rows_in(store) == 3


_KILLED_AFTER_THE_WINDOW = """
import os, signal, sys, time
from maas_server.accounts import Store, UsageRecord, UsageWriter
writer = UsageWriter(Store(sys.argv[1]), linger=float(sys.argv[2]))
for i in range(50):
    writer.add(UsageRecord(at=float(i), route="/v1/x", status=200, latency_ms=1.0, key_name="durable"))
time.sleep(float(sys.argv[2]) + 0.5)  # the documented window, and time for the write itself
for i in range(10):
    writer.add(UsageRecord(at=float(i), route="/v1/x", status=200, latency_ms=1.0, key_name="last moment"))
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_sigkill_loses_at_most_the_rows_of_the_last_linger_seconds(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'maas.db'}"
    Store(url).dispose()
    child = subprocess.run([sys.executable, "-c", _KILLED_AFTER_THE_WINDOW, url, "0.1"], timeout=60)
    assert child.returncode == -9
    store = Store(url)
    with store.engine.begin() as conn:
        names = [row.key_name for row in conn.execute(select(store_module.usage.c.key_name))]
    assert names.count("durable") == 50  # rows older than the window survive SIGKILL
    assert names.count("last moment") <= 10


# -- serve and the commands on a bad store

@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAAS_DATA_DIR", str(tmp_path / "unused"))  # --data-dir must win over it
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "metrics"))  # serve sets it for its workers
    monkeypatch.delenv("MAAS_DATABASE_URL", raising=False)
    monkeypatch.setattr("maas_server.cli._serve", lambda args: pytest.fail("serve started on a bad store"))


def test_no_store_is_created_next_to_the_wal_of_a_deleted_one(tmp_path: Path, cli_env: None,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    live = Store(f"sqlite:///{tmp_path / 'maas.db'}")
    create_key(live, "deleted")  # its last pages are in maas.db-wal
    (tmp_path / "maas.db").unlink()
    # An empty store made here would take those pages: the deleted key would be listed, and work.
    assert main(["keys", "create", "--name", "new", "--data-dir", str(tmp_path)]) == 2
    assert "left from a deleted store" in capsys.readouterr().err
    assert not (tmp_path / "maas.db").exists()
    assert main(["keys", "list", "--data-dir", str(tmp_path)]) == 2  # reading never creates a store
    assert "no store at" in capsys.readouterr().err
    assert not (tmp_path / "maas.db").exists()
    live.dispose()


def _bad_stores(tmp_path: Path) -> dict[str, tuple[list[str], dict[str, str], str]]:
    """name -> (--data-dir args, environment, what the message must say)."""
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "maas.db").write_bytes(b"this is not a database" * 300)
    good = tmp_path / "good"
    Store(f"sqlite:///{good / 'maas.db'}").dispose()
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    folder_in_place = tmp_path / "folder"
    (folder_in_place / "maas.db").mkdir(parents=True)
    return {
        "corrupt": (["--data-dir", str(corrupt)], {}, "not a SQLite database"),
        "wrong path": (["--data-dir", str(a_file / "data")], {}, "cannot create the store"),
        "not a file": (["--data-dir", str(folder_in_place)], {}, "cannot be opened"),
        "read-only": ([], {"MAAS_DATABASE_URL": f"sqlite:///file:{good / 'maas.db'}?mode=ro&uri=true"}, "read-only"),
    }


@pytest.mark.parametrize("case", ["corrupt", "wrong path", "not a file", "read-only"])
def test_serve_keys_and_usage_on_a_bad_store_exit_2_with_one_line(case: str, tmp_path: Path, cli_env: None,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    args, env, says = _bad_stores(tmp_path)[case]
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for command in (["serve", *args], ["keys", "list", *args], ["usage", *args]):
        assert main(command) == 2, command
        err = capsys.readouterr().err
        # Where no store exists, the commands that read one say that first: they would not create it.
        expected = "no store at" if case == "wrong path" and command[0] != "serve" else says
        assert err.startswith("maas-server: ") and expected in err, err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
