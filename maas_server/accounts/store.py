"""The SQL store behind keys, limits and usage: one SQLAlchemy Core code path, SQLite or PostgreSQL.

SQLite is the default (a file in the data folder). Several gunicorn workers and their threads
write to it at once, so it runs in WAL mode (readers never block the writer) with a busy
timeout (a writer waits for the lock instead of failing), and every transaction starts with
``BEGIN IMMEDIATE``: it takes the write lock up front, so a transaction that reads then writes
can never deadlock on a lock upgrade, which busy timeouts do not resolve.

The schema migrates forward: ``schema_version`` holds the number of migrations applied, and
``migrate`` applies the missing ones in order, under a lock, so workers starting together apply
each exactly once. It reads the version first and writes nothing when it is current.

The store fails closed and recovers by itself. ``Store.begin`` either gives a working transaction
or raises ``StoreUnavailable`` (unreadable, read-only, damaged, missing, unreachable), which the
wire answers with 503. After a failure the store is looked at again at most once per
``check_interval`` (1 s): reopened, its schema checked and a write tried (then rolled back); once
that works it is used again. The SQLite file's identity (device, inode) is compared every
``check_interval`` too: a replaced file is reopened, a missing one makes the store unavailable.
While serving, a missing file is never created again: an empty store would have no keys, and a
server without keys is open.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    exc,
    false,
    inspect,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url

log = logging.getLogger("maas.accounts")

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
    Column("cpm", Float),  # seconds of model compute per minute (migration 2); NULL = unlimited
    Column("created_at", Float, nullable=False),  # unix seconds, the same in SQLite and PostgreSQL
    Column("expires_at", Float),
    Column("revoked_at", Float),
    # Scopes (migration 3): JSON lists of configured model names and of tasks; NULL = every one
    Column("models", Text),
    Column("tasks", Text),
    Column("admin", Boolean, nullable=False, server_default=false()),  # may call /v1/admin/
    # Zero retention (migration 4): nothing its requests carry or return is logged or stored
    Column("zero_retention", Boolean, nullable=False, server_default=false()),
    # Redacted input (migration 5): personal data is removed from its requests before a model sees them
    Column("redact_input", Boolean, nullable=False, server_default=false()),
)

# One row per key and minute: shared by every worker (and server) using the store.
rate_windows = Table(
    "maas_rate_windows", metadata,
    Column("key_id", Integer, primary_key=True),
    Column("window", Integer, primary_key=True),  # unix minute
    Column("requests", Integer, nullable=False),
    Column("tokens", Integer, nullable=False),
    Column("compute_ms", Float, nullable=False, server_default="0"),  # migration 2
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
    Column("compute_ms", Float, nullable=False, server_default="0"),  # migration 2: model time it used
    Column("request_id", String(128)),
    Index("maas_usage_key_at", "key_id", "at"),
)

# Append only: every change to a key (create, update, revoke), by the admin API or a command (migration 3).
audit_log = Table(
    "maas_audit_log", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("actor", String(200), nullable=False),  # the admin key's name, or "cli"
    Column("actor_key_id", Integer),  # NULL for the command line
    Column("source", String(200), nullable=False),  # the caller's address, or "cli"
    Column("action", String(50), nullable=False),  # key.create, key.update, key.revoke
    Column("target_key_id", Integer),
    Column("target_key_name", String(200)),
    Column("changes", Text, nullable=False),  # JSON: the fields set, never a secret
    Index("maas_audit_at", "at"),
)


def _create_v1(conn: Connection) -> None:
    for table in (api_keys, rate_windows, usage):
        table.create(conn, checkfirst=True)


def _add_compute_v2(conn: Connection) -> None:
    """Compute metering: each usage row's model time, a key's compute limit and its per-minute counter.

    The tables are declared with these columns, so a store created by _create_v1 today has them already.
    """
    for table, column in ((usage, "compute_ms"), (rate_windows, "compute_ms"), (api_keys, "cpm")):
        if column in {c["name"] for c in inspect(conn).get_columns(table.name)}:
            continue
        spec = "FLOAT" if column == "cpm" else "FLOAT NOT NULL DEFAULT 0"
        conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {column} {spec}"))


def _add_scopes_and_audit_v3(conn: Connection) -> None:
    """Key scopes (models, tasks, admin) and the audit log.

    As in _add_compute_v2, a store created by _create_v1 today has the columns already.
    """
    present = {c["name"] for c in inspect(conn).get_columns(api_keys.name)}
    for column, spec in (("models", "TEXT"), ("tasks", "TEXT"), ("admin", "BOOLEAN NOT NULL DEFAULT FALSE")):
        if column not in present:
            conn.execute(text(f"ALTER TABLE {api_keys.name} ADD COLUMN {column} {spec}"))
    audit_log.create(conn, checkfirst=True)


def _add_zero_retention_v4(conn: Connection) -> None:
    """Zero-retention keys. As in _add_compute_v2, a store created by _create_v1 today has the column already."""
    if "zero_retention" not in {c["name"] for c in inspect(conn).get_columns(api_keys.name)}:
        conn.execute(text(f"ALTER TABLE {api_keys.name} ADD COLUMN zero_retention BOOLEAN NOT NULL DEFAULT FALSE"))


def _add_redact_input_v5(conn: Connection) -> None:
    """Keys whose input is redacted. As in _add_compute_v2, a store created by _create_v1 today has the column."""
    if "redact_input" not in {c["name"] for c in inspect(conn).get_columns(api_keys.name)}:
        conn.execute(text(f"ALTER TABLE {api_keys.name} ADD COLUMN redact_input BOOLEAN NOT NULL DEFAULT FALSE"))


# Append only: a released migration never changes; a schema change is a new function here.
MIGRATIONS: list[Callable[[Connection], None]] = [_create_v1, _add_compute_v2, _add_scopes_and_audit_v3,
                                                  _add_zero_retention_v4, _add_redact_input_v5]

_PG_MIGRATION_LOCK = 0x6D616173  # "maas": the advisory lock that serializes migrations


class StoreUnavailable(Exception):
    """The store cannot be read or written now; the message (one line) says what to fix.

    The wire answers it with 503 ``store_unavailable`` and ``Retry-After``; commands exit 2 with it.
    ``reason`` is what is wrong in a few words, naming no file, host or driver message: what `/ready`
    tells anyone who asks, where the message (for the log and the operator) says where and what to do.
    """

    def __init__(self, message: str, reason: str = "cannot be used") -> None:
        super().__init__(message)
        self.reason = reason


# Failures of the store itself: cannot open, read-only, disk I/O, damaged, locked past the busy
# timeout, connection lost, pool exhausted. A constraint violation or a programming error is a bug.
_OUTAGES = (exc.OperationalError, exc.InterfaceError, exc.InternalError, exc.TimeoutError)


def _is_outage(error: Exception) -> bool:
    return isinstance(error, _OUTAGES) or type(error) is exc.DatabaseError  # plain: "file is not a database"


class Store:
    """An engine on the store's URL, and whether the store can be used now (see the module docstring).

    Construction never raises for an unusable store, so a gunicorn worker always boots, answers 503
    and recovers by itself; ``Store.open`` is the strict form, for commands. ``create``: make a
    missing SQLite file and the schema, at construction only (``serve`` turns it off in its workers,
    which must find the store it prepared). Tests may replace ``clock``.
    """

    def __init__(self, url: str, *, busy_timeout_ms: int = 30_000, create: bool = True,
                 check_interval: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self.check_interval = check_interval
        self.clock = clock
        self._path = _sqlite_file(url)
        self.engine = _engine(_never_create(self._path) if self._path else make_url(url), busy_timeout_ms)
        self._lock = threading.Lock()
        # (device, inode) of the SQLite file opened, and of its -wal
        self._identity: tuple[int, int] | None = None
        self._wal_identity: tuple[int, int] | None = None
        self._problem: StoreUnavailable | None = None
        try:
            self._open(create=create)
        except StoreUnavailable as error:
            self._problem = _again(error)  # without its traceback, which holds frames
        self._next_check = clock() + check_interval

    @classmethod
    def open(cls, url: str, **options: Any) -> Store:
        """A store that can be used now; StoreUnavailable, saying what to fix, otherwise."""
        store = cls(url, **options)
        if store._problem is not None:
            store.dispose()
            raise _again(store._problem)
        return store

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def location(self) -> str:
        """The SQLite file, or the URL without its password: what messages name."""
        if self._path:
            return str(self._path)
        parsed = make_url(self.url)
        return self.url if parsed.password is None else parsed.render_as_string(hide_password=True)

    def dispose(self) -> None:
        """Close pooled connections (before a fork, and at exit)."""
        self.engine.dispose()

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A transaction, committed when the block ends; StoreUnavailable when the store cannot be used."""
        self.check()
        try:
            with self.engine.begin() as conn:
                yield conn
        except (exc.DBAPIError, exc.TimeoutError) as error:
            if not _is_outage(error):
                raise
            problem = _describe(error, self.location)
            self._fail(problem)
            raise _again(problem) from error

    def check(self) -> None:
        """StoreUnavailable when the store is known to be unusable.

        At most every `check_interval` seconds it looks again: is the SQLite file still the one that
        was opened (a replaced file is reopened, a missing one is unavailable), and is a failed store back?
        """
        if self.clock() >= self._next_check and self._lock.acquire(blocking=False):
            try:  # (a thread that finds another one looking uses what is known meanwhile)
                self._next_check = self.clock() + self.check_interval
                self._look_again()
            finally:
                self._lock.release()
        problem = self._problem
        if problem is not None:
            raise _again(problem)

    def _look_again(self) -> None:
        was_failing = self._problem is not None
        try:
            identity = self._file_identity()
            if identity == self._identity:
                if not was_failing:
                    self._wal_identity = self._current_wal() or self._wal_identity
                    return
            else:
                self._refuse_old_wal()
            self._open(create=False)
        except StoreUnavailable as error:
            self._fail(_again(error))
            return
        log.warning("the store %s is %s", self.location, "back" if was_failing else "a new file: reopened it")

    def _open(self, *, create: bool) -> None:
        """(Re)open: the file must exist (unless `create`), its schema is checked and migrated forward,
        and a write is tried then rolled back. Pooled connections are closed first: none to a replaced
        file, or one that failed (SQLite keeps a file it opened read-only read-only), is used again."""
        if create and self._path:
            _create_file(self._path)
        identity = self._file_identity()
        self.engine.dispose()
        try:
            if not create and read_schema_version(self.engine) is None:
                raise StoreUnavailable(f"the store {self.location} has no maas tables: restore it from a backup, or "
                                       f"create them with `maas-server keys create` (a running server never does)",
                                       "has no maas tables")
            migrate(self.engine)
            _try_write(self.engine)
        except (exc.DBAPIError, exc.TimeoutError) as error:  # opening: any database error means unusable
            raise _describe(error, self.location) from error
        self._identity = identity
        self._wal_identity = self._current_wal()
        self._problem = None

    def _fail(self, problem: StoreUnavailable) -> None:
        if self._problem is None:
            log.error("the account store is unavailable: %s. Requests that need it are answered 503 until it is "
                      "back; it is looked at again every %g s", problem, self.check_interval)
            self._next_check = self.clock() + self.check_interval
            self.engine.dispose()  # a connection that failed, or to a deleted file, is not used again
        self._problem = problem

    def _file_identity(self) -> tuple[int, int] | None:
        """(device, inode) of the SQLite file; None for other stores."""
        if self._path is None:
            return None
        identity = _identity(self._path)
        if identity is None:
            raise StoreUnavailable(f"the store {self._path} is missing: restore it from a backup, or create a new "
                                   f"one with `maas-server keys create` and the same --data-dir (a running server "
                                   f"never creates it)", "is missing")
        return identity

    def _current_wal(self) -> tuple[int, int] | None:
        return _identity(_wal(self._path)) if self._path else None

    def _refuse_old_wal(self) -> None:
        """A file put in place of the one opened must not be opened while the old one's -wal is still there:
        SQLite would lay the old database's last pages over the new file (deleted keys would work again)."""
        if self._path and self._wal_identity is not None and self._current_wal() == self._wal_identity:
            raise StoreUnavailable(f"the store {self._path} was replaced or deleted while the server ran, and the old "
                                   f"database's {_wal(self._path).name} and -shm files are still there: delete them "
                                   f"(they would mix the old data into the new file); the server then opens the new "
                                   f"file by itself", "was replaced, and the old one's -wal and -shm files are left")


def _identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of a file; None when there is none."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise StoreUnavailable(f"cannot reach the store {path}: {error.strerror}; check its folder's permissions",
                               "cannot be reached") from None
    return status.st_dev, status.st_ino


def _wal(path: Path) -> Path:
    return path.with_name(path.name + "-wal")


def _sqlite_file(url: str) -> Path | None:
    """The file of a plain SQLite URL (``sqlite:///path``), absolute; None for any other URL, used as given."""
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:" \
            or database.startswith("file:") or parsed.query:
        return None
    return Path(os.path.abspath(database))


def _never_create(path: Path) -> URL:
    # mode=rw: SQLite opens the file but never creates it, so a connection the pool opens after the file
    # vanished fails rather than starting an empty store.
    return URL.create("sqlite", database=f"file:{quote(str(path))}", query={"mode": "rw", "uri": "true"})


def _create_file(path: Path) -> None:
    if path.exists():
        return
    if _wal(path).exists():  # SQLite would take the deleted store's last pages into the new one
        raise StoreUnavailable(f"{_wal(path)} and -shm are left from a deleted store: restore {path.name} from a "
                               f"backup, or delete them to start an empty store",
                               "is missing, and a deleted one's -wal and -shm files are left")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab"):  # an empty file is an empty SQLite database
            pass
    except OSError as error:
        raise StoreUnavailable(f"cannot create the store {path}: {error.strerror}; choose a writable --data-dir "
                               f"(MAAS_DATA_DIR)", "cannot be created") from None


def _engine(url: URL, busy_timeout_ms: int) -> Engine:
    if url.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
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
        # A transaction that only reads (read_schema_version) needs no write lock: then it works on a read-only file.
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get("maas_read_only") else "BEGIN IMMEDIATE")

    return engine


def read_schema_version(engine: Engine) -> int | None:
    """The schema version in place, or None for a database without maas's tables. Only reads."""
    with engine.connect() as conn:
        conn.execution_options(maas_read_only=True)
        if not inspect(conn).has_table(schema_version.name):
            return None
        version = conn.execute(select(schema_version.c.version)).scalar()
        return None if version is None else int(version)


def migrate(engine: Engine) -> int:
    """Apply the missing migrations; returns the schema version now in place.

    The version is read first, and nothing is written when it is current: a store that is read-only
    still opens, and a worker that starts on it still boots.
    """
    current = read_schema_version(engine)
    if current == len(MIGRATIONS):
        return current
    _refuse_newer(current)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
        schema_version.create(conn, checkfirst=True)
        current = conn.execute(select(schema_version.c.version)).scalar()
        if current is None:
            conn.execute(schema_version.insert().values(version=0))
            current = 0
        _refuse_newer(current)  # again: another server may have migrated since the first read
        for step in MIGRATIONS[current:]:
            step(conn)
        conn.execute(schema_version.update().values(version=len(MIGRATIONS)))
        return len(MIGRATIONS)


def _refuse_newer(current: int | None) -> None:
    if current is not None and current > len(MIGRATIONS):
        raise StoreUnavailable(f"the store's schema is version {current}, newer than this maas-server "
                               f"({len(MIGRATIONS)}); upgrade maas", "has a schema newer than this maas-server")


def _try_write(engine: Engine) -> None:
    """Fail as a write would (a read-only file, no permission, a read-only replica), writing nothing: the
    update is rolled back."""
    with engine.connect() as conn:
        conn.execute(schema_version.update().values(version=schema_version.c.version))
        conn.rollback()


# What a database error means for the operator, by a fragment of its message.
_MEANINGS = (
    ("readonly", "is read-only: make it (SQLite: the file, its -wal and -shm files and its folder) writable "
                 "by the server's user"),
    ("read-only", "is read-only: make it writable by the server's user"),
    ("unable to open", "cannot be opened: check that it exists and that the server's user can read and write "
                       "it and its folder"),
    ("not a database", "is not a SQLite database (damaged, or another file): restore it from a backup"),
    ("malformed", "is damaged: restore it from a backup"),
    ("no such table", "has no maas tables: restore it from a backup, or set --data-dir (MAAS_DATA_DIR) to the "
                      "right folder"),
    ("locked", "stayed locked by another process past the busy timeout"),
    ("disk i/o", "cannot be read or written (disk I/O error): check the disk, the file and its permissions"),
)


def _describe(error: Exception, location: str) -> StoreUnavailable:
    """One line: what is wrong with the store, and what to do about it."""
    lines = str(getattr(error, "orig", None) or error).strip().splitlines()
    detail = lines[0] if lines else type(error).__name__
    for fragment, meaning in _MEANINGS:
        if fragment in detail.lower():
            return StoreUnavailable(f"the store {location} {meaning} ({detail})", meaning.partition(":")[0])
    return StoreUnavailable(f"the store {location} cannot be used: {detail}")


def _again(problem: StoreUnavailable) -> StoreUnavailable:
    """The known problem as a new exception to raise (one instance raised from many threads would share its
    traceback)."""
    return StoreUnavailable(str(problem), problem.reason)


def insert_ignore(conn: Connection, table: Table, values: dict[str, Any]) -> int:
    """INSERT that does nothing when the primary key exists; returns rows inserted (0 or 1)."""
    dialect = {"sqlite": sqlite, "postgresql": postgresql}[conn.dialect.name]
    return conn.execute(dialect.insert(table).values(**values).on_conflict_do_nothing()).rowcount
