"""The accounts store on its own: keys, migrations, limits and usage under concurrent writers.

Every test runs on SQLite; with MAAS_TEST_DATABASE_URL (PostgreSQL) and MAAS_TEST_REDIS_URL set, as
.ci/run sets them, the same tests run against those real servers too.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from maas_server.accounts import (
    Authenticator,
    AuthError,
    KeyStoreError,
    Limits,
    RedisLimiter,
    SqlLimiter,
    Store,
    StoreUnavailable,
    UsageRecord,
    UsageWriter,
    create_key,
    list_keys,
    record_usage,
    revoke_key,
    usage_summary,
)
from maas_server.accounts import store as store_module
from maas_server.accounts.audit import Actor, read_audit
from maas_server.accounts.keys import get_key, revoke_key_id, update_key
from maas_server.accounts.times import parse_time
from maas_server.accounts.usage import prune_usage, usage_buckets
from tests.server.accounting_support import Clock, reset_postgres

PG_URL = os.environ.get("MAAS_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("MAAS_TEST_REDIS_URL")
needs_pg = pytest.mark.skipif(not PG_URL, reason="MAAS_TEST_DATABASE_URL is not set (.ci/run starts PostgreSQL)")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="MAAS_TEST_REDIS_URL is not set (.ci/run starts Redis)")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=needs_pg)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'maas.db'}"
    assert PG_URL
    reset_postgres(PG_URL)
    return PG_URL


@pytest.fixture
def store(url: str) -> Iterator[Store]:
    store = Store(url)
    yield store
    store.dispose()


# -- keys

def test_key_is_long_random_and_only_its_hash_is_stored(store: Store) -> None:
    key, record = create_key(store, "team-a", rpm=10)
    assert key.startswith("maas_") and len(key) >= 5 + 43  # 32 random bytes, url-safe base64
    with store.engine.begin() as conn:
        row = conn.execute(select(store_module.api_keys)).one()
    assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert key not in [str(v) for v in row]
    assert record.prefix == key[:12] and record.rpm == 10
    assert create_key(store, "team-b")[0] != key


def test_key_names_are_unique_among_active_keys(store: Store) -> None:
    create_key(store, "team-a")
    with pytest.raises(KeyStoreError, match="active key named 'team-a'"):
        create_key(store, "team-a")
    revoke_key(store, "team-a")
    create_key(store, "team-a")  # rotation: a new key under the old name
    assert [k.name for k in list_keys(store)] == ["team-a", "team-a"]
    with pytest.raises(KeyStoreError, match="no active key"):
        revoke_key(store, "nobody")


def test_authenticate_accepts_active_keys_only(store: Store) -> None:
    clock = Clock()
    auth = Authenticator(store, ttl=0, clock=clock)
    assert not auth.keys_created()
    key, record = create_key(store, "a", expires_at=clock.now + 10, now=clock.now)
    assert auth.keys_created() and auth.authenticate(key).id == record.id
    with pytest.raises(AuthError) as wrong:
        auth.authenticate(key[:-1] + ("A" if key[-1] != "A" else "B"))
    assert wrong.value.code == "invalid_api_key"
    clock.now += 10
    with pytest.raises(AuthError) as expired:
        auth.authenticate(key)
    assert expired.value.code == "expired_api_key"
    assert auth.keys_created()  # the only key expired: keys stay required, the server does not reopen


def test_parse_time_reads_dates_and_unix_seconds() -> None:
    assert parse_time("2026-01-02") == parse_time("2026-01-02T00:00:00Z") == 1767312000.0
    assert parse_time("1767312000") == 1767312000.0
    with pytest.raises(ValueError, match="not a date"):
        parse_time("tomorrow")
    assert parse_time("0001-01-01") == -62135596800.0 and parse_time("9999-12-31T23:59:59Z") == 253402300799.0
    for absurd in ("inf", "-inf", "nan", "1e300", "253402300800", "0001-01-01T00:00+01:00"):
        with pytest.raises(ValueError, match="between 0001-01-01 and 9999-12-31"):
            parse_time(absurd)


# -- migrations

def test_schema_migrates_forward_once(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    Store(url).dispose()
    applied: list[int] = []
    released = len(store_module.MIGRATIONS)
    monkeypatch.setattr(store_module, "MIGRATIONS", [*store_module.MIGRATIONS, lambda conn: applied.append(1)])
    for _ in range(2):
        Store(url).dispose()
    assert applied == [1]
    with Store(url).engine.begin() as conn:
        assert conn.execute(select(store_module.schema_version.c.version)).scalar() == released + 1


def test_a_store_of_the_first_schema_gains_the_compute_columns(url: str) -> None:
    """A store made before compute metering: its usage rows count 0 s, and new rows and limits work."""
    store = Store(url)
    create_key(store, "old", rpm=5)
    with store.engine.begin() as conn:  # back to the first schema's shape
        for table, column in (("maas_usage", "compute_ms"), ("maas_rate_windows", "compute_ms"),
                              ("maas_api_keys", "cpm")):
            conn.execute(text(f"ALTER TABLE {table} DROP COLUMN {column}"))
        conn.execute(store_module.schema_version.update().values(version=1))
    store.dispose()
    store = Store(url)
    [old] = list_keys(store)
    assert old.cpm is None and old.rpm == 5
    _, limited = create_key(store, "limited", cpm=2.5)
    assert limited.limits.cpm == 2.5
    store.dispose()


def test_a_store_of_the_second_schema_gains_scopes_and_the_audit_log(url: str) -> None:
    """Keys made before scopes may use everything and are no admin keys; scoped keys work at once."""
    store = Store(url)
    create_key(store, "old", rpm=5)
    with store.engine.begin() as conn:  # back to the second schema's shape
        for column in ("models", "tasks", "admin"):
            conn.execute(text(f"ALTER TABLE maas_api_keys DROP COLUMN {column}"))
        store_module.audit_log.drop(conn)
        conn.execute(store_module.schema_version.update().values(version=2))
    store.dispose()
    store = Store(url)
    [old] = list_keys(store)
    assert (old.models, old.tasks, old.admin, old.rpm) == (None, None, False, 5)
    _, scoped = create_key(store, "scoped", models=["b", "a"], tasks=["embeddings"], admin=True)
    assert list_keys(store)[1] == scoped and (scoped.models, scoped.tasks, scoped.admin) == (("a", "b"),
                                                                                             ("embeddings",), True)
    assert [(e["action"], e["key_name"]) for e in read_audit(store)] == [("key.create", "scoped")]
    store.dispose()


def test_a_store_of_the_third_schema_gains_zero_retention(url: str) -> None:
    """Keys made before zero retention keep logging as they did; zero-retention keys work at once."""
    store = Store(url)
    create_key(store, "old")
    with store.engine.begin() as conn:  # back to the third schema's shape
        conn.execute(text("ALTER TABLE maas_api_keys DROP COLUMN zero_retention"))
        conn.execute(store_module.schema_version.update().values(version=3))
    store.dispose()
    store = Store(url)
    assert [k.zero_retention for k in list_keys(store)] == [False]
    _, private = create_key(store, "private", zero_retention=True)
    assert list_keys(store)[1] == private and private.zero_retention
    with store.engine.begin() as conn:
        assert conn.execute(select(store_module.schema_version.c.version)).scalar() == len(store_module.MIGRATIONS)
    store.dispose()
    store_module.migrate(Store(url).engine)  # once more: nothing to add


def test_a_store_of_the_fourth_schema_gains_redact_input(url: str) -> None:
    """Keys made before redaction keep their settings and are not redacted; redacting keys work at once."""
    store = Store(url)
    _, old = create_key(store, "old", rpm=7, zero_retention=True)
    with store.engine.begin() as conn:  # back to the fourth schema's shape
        conn.execute(text("ALTER TABLE maas_api_keys DROP COLUMN redact_input"))
        conn.execute(store_module.schema_version.update().values(version=4))
    store.dispose()
    store = Store(url)
    (kept,) = list_keys(store)
    assert kept == old and not kept.redact_input and kept.rpm == 7 and kept.zero_retention
    _, redacting = create_key(store, "redacting", redact_input=True)
    assert list_keys(store)[1] == redacting and redacting.redact_input
    assert update_key(store, old.id, {"redact_input": True}).redact_input
    with store.engine.begin() as conn:
        assert conn.execute(select(store_module.schema_version.c.version)).scalar() == 5
    store.dispose()
    store_module.migrate(Store(url).engine)  # once more: nothing to add


def test_a_newer_schema_is_refused(url: str) -> None:
    Store(url).dispose()
    with Store(url).engine.begin() as conn:
        conn.execute(store_module.schema_version.update().values(version=99))
    with pytest.raises(StoreUnavailable, match="newer than this maas-server"):
        Store.open(url)
    served = Store(url)  # a worker still starts on it, and refuses to use it
    with pytest.raises(StoreUnavailable, match="upgrade maas"):
        list_keys(served)


# -- limits

@pytest.fixture(params=["sql", pytest.param("redis", marks=needs_redis)])
def limiter_factory(request: pytest.FixtureRequest, store: Store):  # type: ignore[no-untyped-def]
    if request.param == "sql":
        return lambda clock: SqlLimiter(store, clock=clock)
    prefix = f"maas-test:{uuid.uuid4().hex}"
    return lambda clock: RedisLimiter.from_url(REDIS_URL, prefix=prefix, clock=clock)  # type: ignore[arg-type]


def test_limiter_counts_requests_and_tokens_per_window(limiter_factory) -> None:  # type: ignore[no-untyped-def]
    clock = Clock(1_800_000_000.0 + 50)
    limiter = limiter_factory(clock)
    limits = Limits(rpm=3, tpm=100)
    assert [limiter.admit(1, limits).allowed for _ in range(4)] == [True, True, True, False]
    refused = limiter.admit(1, limits)
    assert refused.exceeded == "requests" and refused.headers()["Retry-After"] == "10"
    assert limiter.admit(2, limits).allowed  # another key has its own counters
    clock.now += 10
    limiter.charge(1, 150)
    over = limiter.admit(1, limits)
    assert not over.allowed and over.exceeded == "tokens" and over.headers()["x-ratelimit-remaining-tokens"] == "0"
    clock.now += 60
    assert limiter.admit(1, limits).allowed


def test_limiter_counts_compute_seconds_per_window(limiter_factory) -> None:  # type: ignore[no-untyped-def]
    """A key limited in compute: what its calls cost in model time, whatever their size, charged after."""
    clock = Clock(1_800_000_000.0)
    limiter = limiter_factory(clock)
    limits = Limits(cpm=2.5)
    first = limiter.admit(1, limits)
    assert first.allowed and first.headers()["x-ratelimit-limit-compute-seconds"] == "2.5"
    limiter.charge(1, 0, 1.75)
    second = limiter.admit(1, limits)
    assert second.allowed and second.headers()["x-ratelimit-remaining-compute-seconds"] == "0.75"
    limiter.charge(1, 10, 0.8)
    refused = limiter.admit(1, limits)
    assert not refused.allowed and refused.exceeded == "compute"
    clock.now += 60
    assert limiter.admit(1, limits).allowed


def test_two_limiters_on_one_store_share_the_counters(limiter_factory) -> None:  # type: ignore[no-untyped-def]
    clock = Clock()
    first, second = limiter_factory(clock), limiter_factory(clock)
    limits = Limits(rpm=4)
    admitted = [limiter.admit(7, limits).allowed for limiter in (first, second) * 3]
    assert admitted == [True, True, True, True, False, False]


def test_limits_hold_under_concurrent_threads(limiter_factory) -> None:  # type: ignore[no-untyped-def]
    limiter = limiter_factory(Clock())
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: limiter.admit(3, Limits(rpm=25)).allowed, range(60)))
    assert sum(results) == 25


_ADMIT_IN_A_PROCESS = """
import sys
from maas_server.accounts import Limits, SqlLimiter, Store
store = Store(sys.argv[1])
limiter = SqlLimiter(store, clock=lambda: 1_800_000_000.0)
print(sum(limiter.admit(9, Limits(rpm=int(sys.argv[2]))).allowed for _ in range(int(sys.argv[3]))))
"""


def test_limits_hold_across_processes(url: str) -> None:
    Store(url).dispose()  # migrate once, as `maas-server serve` does before forking
    procs = [subprocess.Popen([sys.executable, "-c", _ADMIT_IN_A_PROCESS, url, "30", "25"], stdout=subprocess.PIPE,
                              text=True) for _ in range(3)]
    admitted = [int(p.communicate(timeout=120)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sum(admitted) == 30


# -- usage

def _row(i: int, key: str = "k", model: str = "m") -> UsageRecord:
    return UsageRecord(at=1000.0 + i, route="/v1/embeddings", status=200 if i % 5 else 500, latency_ms=2.0,
                       key_id=1, key_name=key, model=model, task="embeddings", prompt_tokens=3, completion_tokens=1)


def test_usage_buckets_floor_times_to_utc_minutes_hours_and_days(store: Store) -> None:
    day = 1_800_000_000 - 1_800_000_000 % 86_400
    for at, key in ((day + 59.9, "a"), (day + 60.0, "a"), (day + 3_599.6, "b"), (day + 86_399.9, "a")):
        record_usage(store, UsageRecord(at=at, route="/v1/embeddings", status=200, latency_ms=1.0, key_id=ord(key),
                                        key_name=key, model="m", prompt_tokens=1, compute_ms=500.0))

    def starts(bucket: str, **filters: object) -> list[tuple[int, str, int]]:
        return [(r["start"] - day, r["key"], r["requests"]) for r in usage_buckets(store, bucket=bucket, **filters)]

    assert starts("minute") == [(0, "a", 1), (60, "a", 1), (3_540, "b", 1), (86_340, "a", 1)]
    assert starts("hour") == [(0, "a", 2), (0, "b", 1), (82_800, "a", 1)]
    assert starts("day") == [(0, "a", 3), (0, "b", 1)]
    assert starts("day", key_name="a", since=day + 60, until=day + 86_399.9) == [(0, "a", 1)]
    assert starts("day", key_id=ord("b")) == [(0, "b", 1)]
    assert usage_buckets(store, bucket="day", limit=1)[0]["compute_seconds"] == 1.5


def test_keys_are_updated_and_revoked_by_id(store: Store) -> None:
    _, key = create_key(store, "team-a", rpm=5)
    updated = update_key(store, key.id, {"rpm": None, "cpm": 1.5, "models": ["m2", "m1"], "admin": True})
    assert (updated.rpm, updated.cpm, updated.models, updated.tasks, updated.admin) == (None, 1.5, ("m1", "m2"),
                                                                                       None, True)
    assert list_keys(store) == [updated]
    revoked = revoke_key_id(store, key.id, by=Actor("ops", "192.0.2.1", key_id=7), now=123.0)
    assert revoked.revoked_at == 123.0 and get_key(store, key.id) == revoked
    revoke, update, create = read_audit(store, key_id=key.id)
    assert [e["action"] for e in (create, update, revoke)] == ["key.create", "key.update", "key.revoke"]
    assert update["changes"] == {"rpm": [5, None], "cpm": [None, 1.5], "models": [None, ["m1", "m2"]],
                                 "admin": [False, True]}
    assert (revoke["actor"], revoke["source"], revoke["actor_key_id"], revoke["at"]) == ("ops", "192.0.2.1", 7, 123.0)
    assert (create["actor"], create["source"]) == ("cli", "cli")
    for change in (lambda: update_key(store, key.id, {"rpm": 1}), lambda: revoke_key_id(store, key.id),
                   lambda: get_key(store, 999)):
        with pytest.raises(KeyStoreError, match=r"no (active )?key with id"):
            change()


def test_usage_summary_totals_per_key_and_model(store: Store) -> None:
    for i in range(10):
        record_usage(store, _row(i, model="m1" if i < 6 else "m2"))
    record_usage(store, _row(0, key="other"))
    summary = usage_summary(store, key_name="k")
    assert [(r["model"], r["requests"], r["errors"], r["prompt_tokens"], r["total_tokens"]) for r in summary] == \
        [("m1", 6, 2, 18, 24), ("m2", 4, 0, 12, 16)]
    assert sum(r["requests"] for r in usage_summary(store, since=1005)) == 5


# -- retention

_DAY = 86_400.0


def _ages(store: Store) -> list[float]:
    with store.begin() as conn:
        return sorted(conn.execute(select(store_module.usage.c.at)).scalars())


def test_a_retention_of_one_day_deletes_exactly_the_rows_older_than_a_day(store: Store) -> None:
    clock = Clock()
    now = clock.now
    for at in (now - 3 * _DAY, now - _DAY - 1, now - _DAY, now - _DAY + 1, now - 60, now):
        record_usage(store, UsageRecord(at=at, route="/v1/embeddings", status=200, latency_ms=1.0))
    writer = UsageWriter(store, retention_seconds=_DAY, clock=clock)
    writer.add(UsageRecord(at=now, route="/v1/embeddings", status=200, latency_ms=1.0))
    assert writer.flush()  # the writer's thread prunes when it starts, before it answers the flush
    assert _ages(store) == [now - _DAY, now - _DAY + 1, now - 60, now, now]


def test_the_writer_prunes_again_only_once_an_hour(store: Store) -> None:
    clock = Clock()
    start = clock.now
    writer = UsageWriter(store, retention_seconds=_DAY, clock=clock)
    writer.add(UsageRecord(at=start - _DAY + 1000, route="/v1/embeddings", status=200, latency_ms=1.0))
    assert writer.flush() and len(_ages(store)) == 1  # pruned at start, when the row was younger than a day
    clock.now = start + 1800  # the row is now past its day, but the last prune was half an hour ago
    writer.add(UsageRecord(at=clock.now, route="/v1/embeddings", status=200, latency_ms=1.0))
    assert writer.flush() and len(_ages(store)) == 2
    clock.now = start + 3600
    writer.add(UsageRecord(at=clock.now, route="/v1/embeddings", status=200, latency_ms=1.0))
    assert writer.flush() and _ages(store) == [start + 1800, start + 3600]


def test_without_a_retention_rows_are_kept_forever(store: Store) -> None:
    writer = UsageWriter(store)
    writer.add(UsageRecord(at=1.0, route="/v1/embeddings", status=200, latency_ms=1.0))
    assert writer.flush() and _ages(store) == [1.0]


def test_pruning_is_idempotent_and_keeps_the_audit_log(store: Store) -> None:
    create_key(store, "audited", now=1.0)
    for at in (1.0, 2.0, 5000.0):
        record_usage(store, UsageRecord(at=at, route="/v1/embeddings", status=200, latency_ms=1.0))
    assert prune_usage(store, before=100.0) == 2
    assert prune_usage(store, before=100.0) == 0  # a second worker or server on the store deletes nothing
    assert _ages(store) == [5000.0]
    assert [row["action"] for row in read_audit(store)] == ["key.create"]


_WRITE_IN_A_PROCESS = """
import sys
from maas_server.accounts import Store, UsageRecord, record_usage
store = Store(sys.argv[1])
for i in range(int(sys.argv[2])):
    record_usage(store, UsageRecord(at=float(i), route="/v1/x", status=200, latency_ms=1.0, key_name=sys.argv[3]))
"""


def test_no_usage_row_is_lost_with_threads_and_processes_writing_at_once(store: Store, url: str) -> None:
    procs = [subprocess.Popen([sys.executable, "-c", _WRITE_IN_A_PROCESS, url, "100", f"proc{i}"]) for i in range(3)]
    writer = UsageWriter(store)  # what request threads use: rows queue, one thread writes them in batches

    def write(i: int) -> None:  # half through the writer, half directly
        writer.add(_row(i, key="threads")) if i % 2 else record_usage(store, _row(i, key="threads"))

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(write, range(300)))
    assert writer.flush(timeout=60)
    assert all(p.wait(timeout=120) == 0 for p in procs)
    with store.engine.begin() as conn:
        assert conn.execute(select(func.count()).select_from(store_module.usage)).scalar() == 600
    assert {r["key"]: r["requests"] for r in usage_summary(store)} == {
        "threads": 300, "proc0": 100, "proc1": 100, "proc2": 100}
