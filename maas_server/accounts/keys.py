"""API keys: created once and shown once, stored only as SHA-256 hashes, checked in constant time.

A key is ``maas_`` followed by 32 random bytes (``secrets.token_urlsafe``): 256 bits, so a fast
hash is enough; nothing can be guessed or brute-forced from the stored hash.

``Authenticator`` caches lookups for ``ttl`` seconds (default 5, ``MAAS_AUTH_CACHE_SECONDS``) so a
request does not hit the database each time; a revoked key therefore stops working within
``ttl`` seconds on every worker.

A key's scopes say what it may use: the configured models (``models``) and tasks (``tasks``), each
None for every one, and whether it may call the admin API (``admin``). A zero-retention key
(``zero_retention``) has nothing its requests carry or return logged or stored: its request log lines
never hold a body, and ``/v1/responses`` refuses ``store: true``. A key with ``redact_input`` has personal
data removed from the text of its generation and embedding requests before a model sees it (api/redaction.py).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from .audit import CLI, CREATE, REVOKE, UPDATE, Actor, write_audit
from .limits import Limits
from .store import Store, api_keys

PREFIX = "maas_"


class KeyStoreError(ValueError):
    """A key operation the caller can fix (an unknown name, a duplicate name...)."""


class AuthError(Exception):
    """A request's key is not accepted; `code` says why (invalid_api_key, expired_api_key, revoked_api_key)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ApiKey:
    """A key's record: everything but the key itself."""

    id: int
    name: str
    prefix: str
    rpm: int | None
    tpm: int | None
    created_at: float
    expires_at: float | None
    revoked_at: float | None
    cpm: float | None = None  # seconds of model compute per minute
    models: tuple[str, ...] | None = None  # configured model names it may use; None: every model
    tasks: tuple[str, ...] | None = None  # tasks it may use; None: every task
    admin: bool = False  # may call /v1/admin/
    zero_retention: bool = False  # nothing its requests carry or return is logged or stored
    redact_input: bool = False  # personal data is removed from its input text before a model sees it

    @property
    def limits(self) -> Limits:
        return Limits(rpm=self.rpm, tpm=self.tpm, cpm=self.cpm)

    def active(self, now: float) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    def refusal(self, model: str, task: str) -> str | None:
        """Why this key may not use `model` (a configured name) of `task`: model_not_allowed or
        task_not_allowed; None when it may."""
        if self.models is not None and model not in self.models:
            return "model_not_allowed"
        if self.tasks is not None and task not in self.tasks:
            return "task_not_allowed"
        return None


def _scope(names: Iterable[str] | None) -> str | None:
    """A scope as stored: a JSON list (sorted, without repeats), or NULL for every one."""
    return None if names is None else json.dumps(sorted(set(names)))


# What the audit log records of a new key: its settings, never the key, its hash or its prefix.
_AUDITED_ON_CREATE = ("name", "rpm", "tpm", "cpm", "models", "tasks", "admin", "zero_retention", "redact_input",
                      "expires_at")


def _audited(key: ApiKey, fields: Iterable[str]) -> dict[str, Any]:
    """Fields of a key as the audit log writes them (JSON: scopes as lists)."""
    values = {name: getattr(key, name) for name in fields}
    return {name: list(value) if isinstance(value, tuple) else value for name, value in values.items()}


def _record(row: Mapping[Any, Any]) -> ApiKey:
    fields = {k: v for k, v in row.items() if k != "key_hash"}
    for scope in ("models", "tasks"):
        fields[scope] = None if fields.get(scope) is None else tuple(json.loads(fields[scope]))
    fields["admin"] = bool(fields.get("admin"))
    fields["zero_retention"] = bool(fields.get("zero_retention"))
    fields["redact_input"] = bool(fields.get("redact_input"))
    return ApiKey(**fields)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(store: Store, name: str, *, rpm: int | None = None, tpm: int | None = None,
               cpm: float | None = None, expires_at: float | None = None, models: Iterable[str] | None = None,
               tasks: Iterable[str] | None = None, admin: bool = False, zero_retention: bool = False,
               redact_input: bool = False, by: Actor = CLI, now: float | None = None) -> tuple[str, ApiKey]:
    """A new key and its record. The key is returned here only: the store keeps its hash.

    `models` and `tasks` (None: every one) are taken as given: callers resolve aliases and check names.
    `by` is who creates it, for the audit log.
    """
    if not name.strip():
        raise KeyStoreError("a key needs a non-empty --name")
    for label, limit in (("rpm", rpm), ("tpm", tpm)):
        if limit is not None and limit < 1:
            raise KeyStoreError(f"--{label} must be at least 1 (omit it for no limit)")
    if cpm is not None and not 0 < cpm < float("inf"):
        raise KeyStoreError("--compute-per-minute must be a positive number of seconds (omit it for no limit)")
    now = time.time() if now is None else now
    if any(k.name == name and k.active(now) for k in list_keys(store)):
        raise KeyStoreError(f"an active key named {name!r} exists; revoke it first or pick another name")
    key = PREFIX + secrets.token_urlsafe(32)
    values: dict[str, Any] = dict(name=name, key_hash=hash_key(key), prefix=key[:12], rpm=rpm, tpm=tpm,
                                  cpm=cpm, created_at=now, expires_at=expires_at, models=_scope(models),
                                  tasks=_scope(tasks), admin=admin, zero_retention=zero_retention,
                                  redact_input=redact_input)
    with store.begin() as conn:
        inserted = conn.execute(api_keys.insert().values(**values)).inserted_primary_key
        assert inserted is not None  # None only for executemany; a one-row INSERT reports its key
        record = _record({**values, "id": inserted[0], "revoked_at": None})
        write_audit(conn, by, CREATE, record.id, name, _audited(record, _AUDITED_ON_CREATE), now)
    return key, record


def list_keys(store: Store) -> list[ApiKey]:
    """Every key ever created (revoked and expired ones too), oldest first."""
    columns = [c for c in api_keys.c if c.name != "key_hash"]
    with store.begin() as conn:
        return [_record(row._mapping) for row in conn.execute(select(*columns).order_by(api_keys.c.id))]


def revoke_key(store: Store, name_or_id: str, *, by: Actor = CLI, now: float | None = None) -> int:
    """Revoke the active key(s) with this name (or numeric id); returns how many were revoked."""
    now = time.time() if now is None else now
    match = api_keys.c.name == name_or_id
    if name_or_id.isascii() and name_or_id.isdigit() and int(name_or_id) < 2**31:
        match = match | (api_keys.c.id == int(name_or_id))
    with store.begin() as conn:
        revoked = conn.execute(select(api_keys.c.id, api_keys.c.name)
                               .where(match, api_keys.c.revoked_at.is_(None))).all()
        for key_id, name in revoked:
            conn.execute(api_keys.update().where(api_keys.c.id == key_id).values(revoked_at=now))
            write_audit(conn, by, REVOKE, key_id, name, {"revoked_at": now}, now)
    if not revoked:
        raise KeyStoreError(f"no active key named {name_or_id!r}; `maas-server keys list` shows them")
    return len(revoked)


def get_key(store: Store, key_id: int) -> ApiKey:
    """The key with this id; KeyStoreError when there is none."""
    columns = [c for c in api_keys.c if c.name != "key_hash"]
    with store.begin() as conn:
        row = conn.execute(select(*columns).where(api_keys.c.id == key_id)).first()
    if row is None:
        raise KeyStoreError(f"no key with id {key_id}")
    return _record(row._mapping)


# What update_key may change: a key's limits and scopes (None: unlimited, or every one), its retention and
# whether its input is redacted.
UPDATABLE = ("rpm", "tpm", "cpm", "models", "tasks", "admin", "zero_retention", "redact_input")


def update_key(store: Store, key_id: int, changes: Mapping[str, Any], *, by: Actor = CLI,
               now: float | None = None) -> ApiKey:
    """Set some of a key's limits and scopes (UPDATABLE); returns the record after. KeyStoreError for a key
    that does not exist or is revoked. The values are taken as given: callers check them (api/admin.py).
    The audit log gets each field that changed, as [before, after]."""
    unknown = set(changes) - set(UPDATABLE)
    assert not unknown, f"update_key cannot change {unknown}"
    values = {name: _scope(value) if name in ("models", "tasks") else value for name, value in changes.items()}
    columns = [c for c in api_keys.c if c.name != "key_hash"]
    with store.begin() as conn:
        row = conn.execute(select(*columns).where(api_keys.c.id == key_id)).first()
        if row is None or row.revoked_at is not None:
            raise KeyStoreError(f"no active key with id {key_id}")
        before = _record(row._mapping)
        after = _record({**row._mapping, **values})
        changed = {name: [old, new] for name in UPDATABLE
                   if (old := _audited(before, (name,))[name]) != (new := _audited(after, (name,))[name])}
        if changed:
            conn.execute(api_keys.update().where(api_keys.c.id == key_id).values(**values))
            write_audit(conn, by, UPDATE, key_id, before.name, changed, time.time() if now is None else now)
    return after


def revoke_key_id(store: Store, key_id: int, *, by: Actor = CLI, now: float | None = None) -> ApiKey:
    """Revoke the key with this id; returns its record. KeyStoreError when there is no such active key."""
    now = time.time() if now is None else now
    with store.begin() as conn:
        name = conn.execute(select(api_keys.c.name)
                            .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))).scalar()
        if name is None:
            raise KeyStoreError(f"no active key with id {key_id}")
        conn.execute(api_keys.update().where(api_keys.c.id == key_id).values(revoked_at=now))
        write_audit(conn, by, REVOKE, key_id, name, {"revoked_at": now}, now)
    return get_key(store, key_id)


def count_keys(store: Store) -> int:
    """Keys ever created, revoked and expired ones included (rows are never deleted)."""
    with store.engine.begin() as conn:
        return int(conn.execute(select(func.count()).select_from(api_keys)).scalar() or 0)


def count_active(store: Store, now: float) -> int:
    with store.begin() as conn:
        query = select(func.count()).select_from(api_keys).where(
            api_keys.c.revoked_at.is_(None), (api_keys.c.expires_at.is_(None)) | (api_keys.c.expires_at > now))
        return int(conn.execute(query).scalar() or 0)


class Authenticator:
    """Key -> ApiKey for the active key it names, or None; lookups cached for `ttl` seconds."""

    _MAX_CACHED = 10_000  # bounds memory when someone sends many wrong keys

    def __init__(self, store: Store, *, ttl: float = 5.0, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.ttl = ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, ApiKey | None, str]] = {}
        self._checked_for_keys: float | None = None
        self._keys_created = False

    def keys_created(self) -> bool:
        """True once a key was ever created in the store, revoked and expired keys included.

        In the `auto` auth mode this closes /v1 to callers without a key for good: revoking every
        key (an emergency) must shut the server, not reopen it. A True answer never changes, so
        it is not looked up again; False is looked up again after `ttl` seconds.

        StoreUnavailable when the store cannot be used, even with the answer cached: the request's key,
        limits and usage all need the store, so the server fails closed at once.
        """
        self.store.check()
        now = self.clock()
        if not self._keys_created and (self._checked_for_keys is None or now - self._checked_for_keys >= self.ttl):
            self._keys_created = count_keys(self.store) > 0
            self._checked_for_keys = now
        return self._keys_created

    def authenticate(self, key: str) -> ApiKey:
        """The active key record for `key`; AuthError for unknown, revoked or expired keys."""
        now = self.clock()
        digest = hash_key(key)
        hit = self._cache.get(digest)
        if hit is None or now - hit[0] >= self.ttl:
            hit = (now, *self._fetch(digest))
            with self._lock:
                if len(self._cache) >= self._MAX_CACHED:
                    self._cache.clear()
                self._cache[digest] = hit
        _, record, stored_hash = hit
        # The lookup matched on the hash; compare again in constant time so no timing depends on the key.
        if record is None or not hmac.compare_digest(stored_hash, digest):
            raise AuthError("invalid API key; check the Authorization: Bearer header", "invalid_api_key")
        if record.revoked_at is not None:
            raise AuthError(f"API key {record.name!r} was revoked", "revoked_api_key")
        if not record.active(now):
            raise AuthError(f"API key {record.name!r} has expired", "expired_api_key")
        return record

    def _fetch(self, digest: str) -> tuple[ApiKey | None, str]:
        with self.store.begin() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.key_hash == digest)).first()
        if row is None:
            return None, ""
        return _record(row._mapping), row.key_hash
