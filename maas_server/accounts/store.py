"""The SQL store behind keys, limits and usage: one SQLAlchemy Core code path, SQLite or PostgreSQL.

SQLite is the default (a file in the data folder). Several gunicorn workers and their threads
write to it at once, so it runs in WAL mode (readers never block the writer) with a busy
timeout (a writer waits for the lock instead of failing), and every transaction starts with
``BEGIN IMMEDIATE``: it takes the write lock up front, so a transaction that reads then writes
can never deadlock on a lock upgrade, which busy timeouts do not resolve.

The schema migrates forward: ``schema_version`` holds the number of migrations applied, and
``migrate`` applies the missing ones in order, under a lock, so workers starting together apply
each exactly once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import (Column, Connection, Engine, Float, Index, Integer, MetaData, String, Table,
                        create_engine, event, select, text)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

metadata = MetaData()

schema_version = Table("maas_schema_version", metadata, Column("version", Integer, nullable=False))

api_keys = Table(
    "maas_api_keys", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),  # sha256 hex; the key itself is never stored
    Column("prefix", String(16), nullable=False),  # first characters, so `keys list` can tell keys apart
    Column("rpm", Integer),  # requests per minute; NULL = unlimited
    Column("tpm", Integer),  # tokens (or texts/images) per minute; NULL = unlimited
    Column("created_at", Float, nullable=False),  # unix seconds, the same in SQLite and PostgreSQL
    Column("expires_at", Float),
    Column("revoked_at", Float),
)

# One row per key and minute: shared by every worker (and server) using the store.
rate_windows = Table(
    "maas_rate_windows", metadata,
    Column("key_id", Integer, primary_key=True),
    Column("window", Integer, primary_key=True),  # unix minute
    Column("requests", Integer, nullable=False),
    Column("tokens", Integer, nullable=False),
)

usage = Table(
    "maas_usage", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("key_id", Integer),  # NULL: anonymous (no keys configured)
    Column("key_name", String(200)),
    Column("route", String(100), nullable=False),
    Column("model", String(200)),
    Column("task", String(50)),
    Column("prompt_tokens", Integer, nullable=False),  # or texts/images for classification
    Column("completion_tokens", Integer, nullable=False),
    Column("status", Integer, nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("request_id", String(128)),
    Index("maas_usage_key_at", "key_id", "at"),
)


def _create_v1(conn: Connection) -> None:
    for table in (api_keys, rate_windows, usage):
        table.create(conn, checkfirst=True)


# Append only: a released migration never changes; a schema change is a new function here.
MIGRATIONS: list[Callable[[Connection], None]] = [_create_v1]

_PG_MIGRATION_LOCK = 0x6D616173  # "maas": the advisory lock that serializes migrations


class Store:
    """An engine on the store's URL, migrated to the current schema on construction."""

    def __init__(self, url: str, *, busy_timeout_ms: int = 30_000) -> None:
        self.url = url
        self.engine = _engine(url, busy_timeout_ms)
        migrate(self.engine)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def dispose(self) -> None:
        """Close pooled connections (before a fork, and at exit)."""
        self.engine.dispose()


def _engine(url: str, busy_timeout_ms: int) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        from pathlib import Path

        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    # Pooled: opening a connection (and setting WAL on it) costs milliseconds per transaction. A Store is
    # built in each gunicorn worker after the fork; one built before a fork must be disposed first.
    engine = create_engine(url, connect_args={"timeout": busy_timeout_ms / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (SQLAlchemy's pysqlite recipe)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA synchronous=NORMAL")  # safe with WAL: a crash loses at most the last commits
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def migrate(engine: Engine) -> int:
    """Apply the missing migrations; returns the schema version now in place."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
        schema_version.create(conn, checkfirst=True)
        current = conn.execute(select(schema_version.c.version)).scalar()
        if current is None:
            conn.execute(schema_version.insert().values(version=0))
            current = 0
        if current > len(MIGRATIONS):
            raise RuntimeError(f"the store's schema is version {current}, newer than this maas-server "
                               f"({len(MIGRATIONS)}); upgrade maas")
        for step in MIGRATIONS[current:]:
            step(conn)
        conn.execute(schema_version.update().values(version=len(MIGRATIONS)))
        return len(MIGRATIONS)


def insert_ignore(conn: Connection, table: Table, values: dict[str, Any]) -> int:
    """INSERT that does nothing when the primary key exists; returns rows inserted (0 or 1)."""
    dialect = {"sqlite": sqlite, "postgresql": postgresql}[conn.dialect.name]
    return conn.execute(dialect.insert(table).values(**values).on_conflict_do_nothing()).rowcount
