"""The admin API under /v1/admin/: keys (list, create, update, revoke), usage and the audit log, for admin keys only.

A caller is let in only with an admin key (``maas-server keys create --admin``): any other key, and a
call without a key (the loopback or open auth modes), gets 403 ``admin_required``. The key itself
(``/v1`` authentication and its rate limits) is checked before, as for every /v1 route. Every change
to a key is written to the audit log under the admin key's name and the caller's address.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from flask import g, request
from pydantic import BaseModel, ConfigDict, Field

from ..accounts import ApiKey, KeyStoreError, create_key, list_keys
from ..accounts.audit import Actor, read_audit
from ..accounts.keys import revoke_key_id, update_key
from ..accounts.scopes import check_scopes
from ..accounts.times import parse_time
from ..accounts.usage import BUCKETS, usage_buckets
from ..errors import APIError
from ._common import current_endpoint, parse_json, state
from .accounting import UsageRow, accounts
from .endpoints import Family
from .forms import query
from .wire import dump

family = Family("admin", __name__)

_MAX_ID = 2**31 - 1  # ids are 32-bit integers in the store
_MAX_USAGE_ROWS = 10_000
_MAX_AUDIT_ROWS = 1000
_ADMIN: dict[str, object] = {"access": "admin", "tag": "admin"}
_KEYS, _KEY = "/v1/admin/keys", "/v1/admin/keys/{key_id}"
_KEY_ID = {"name": "key_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1},
           "description": "the key's id, as GET /v1/admin/keys lists it"}


def admins_only() -> None:
    """403 for an admin endpoint (its record's access) called without an admin key; runs after authentication."""
    endpoint = current_endpoint()
    if endpoint is None or endpoint.access != "admin":
        return
    account: ApiKey | None = g.get("maas_account")
    if account is None or not account.admin:
        who = "a call without a key" if account is None else f"API key {account.name!r}"
        raise APIError(f"the admin API needs an admin key ({who} is none); `maas-server keys create --admin` "
                       f"makes one", status=403, code="admin_required")


# -- schemas

class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


_Names = Annotated[list[Annotated[str, Field(min_length=1, max_length=200)]], Field(min_length=1, max_length=1000)]
_Rpm = Annotated[int, Field(ge=1, le=_MAX_ID)]
_Cpm = Annotated[float, Field(gt=0, le=1e9)]


class KeyCreate(_Request):
    """POST /v1/admin/keys. Omitted limits and scopes: unlimited, every model and task."""

    name: Annotated[str, Field(min_length=1, max_length=200, pattern=r"\S")]
    rpm: _Rpm | None = None
    tpm: _Rpm | None = None
    cpm: _Cpm | None = Field(None, description="seconds of model compute per minute")
    models: _Names | None = Field(None, description="configured model names (or aliases) the key may use")
    tasks: _Names | None = Field(None, description="tasks the key may use, e.g. embeddings")
    admin: bool = False
    zero_retention: bool = Field(False, description="nothing the key's requests carry or return is logged or "
                                                    "stored; /v1/responses refuses store: true")
    redact_input: bool = Field(False, description="personal data (names, emails, phones, card numbers, IBANs, IPs) "
                                                  "is removed from the text of the key's chat, completion, response "
                                                  "and embedding requests before a model sees it")
    expires_at: str | None = Field(None, description="YYYY-MM-DD, an ISO time or unix seconds; in the future")


class KeyUpdate(_Request):
    """PATCH /v1/admin/keys/{id}: the fields sent are set; null means unlimited (limits) or every one (scopes)."""

    rpm: _Rpm | None = None
    tpm: _Rpm | None = None
    cpm: _Cpm | None = None
    models: _Names | None = None
    tasks: _Names | None = None
    admin: bool | None = None
    zero_retention: bool | None = None
    redact_input: bool | None = None


class AdminKey(BaseModel):
    """A key's record: never the key itself."""

    object: Literal["api_key"] = "api_key"
    id: int
    name: str
    prefix: str
    status: Literal["active", "expired", "revoked"]
    rpm: int | None
    tpm: int | None
    cpm: float | None
    models: list[str] | None
    tasks: list[str] | None
    admin: bool
    zero_retention: bool
    redact_input: bool
    created_at: float
    expires_at: float | None
    revoked_at: float | None


class CreatedKey(AdminKey):
    """The new key's record and, this once, the key itself."""

    key: str


class AdminKeyList(BaseModel):
    object: Literal["list"] = "list"
    data: list[AdminKey]


class UsageBucket(UsageRow):
    """One key's use of one model in one time bucket: the totals /v1/usage gives, per key and bucket."""

    start: int  # unix seconds: the bucket's first second (UTC)
    key_id: int | None
    key: str | None  # None: calls without a key


class AuditEntry(BaseModel):
    """One change to a key: who (an admin key's name, or "cli"), from where, what and when."""

    id: int
    at: float  # unix seconds
    actor: str
    actor_key_id: int | None  # None: the command line
    source: str  # the caller's address, or "cli"
    action: Literal["key.create", "key.update", "key.revoke"]
    key_id: int | None
    key_name: str | None
    changes: dict[str, Any]  # create: the settings; update: {field: [before, after]}; revoke: revoked_at


class AuditList(BaseModel):
    """GET /v1/admin/audit: the newest changes first."""

    object: Literal["list"] = "list"
    data: list[AuditEntry]


class AdminUsage(BaseModel):
    """GET /v1/admin/usage: totals per time bucket, key and model, oldest first."""

    object: Literal["list"] = "list"
    bucket: Literal["minute", "hour", "day"]
    since: float | None
    until: float | None
    has_more: bool  # more rows than one answer holds: narrow the time range or filter
    data: list[UsageBucket]


# -- routes

@family.get(_KEYS, "Every API key, revoked and expired ones too (never the keys themselves)",
            response=AdminKeyList, **_ADMIN)
def keys() -> Any:
    """Every key, revoked and expired ones too, oldest first."""
    return dump(AdminKeyList(data=[_admin_key(k) for k in list_keys(accounts().store)]))


@family.post(_KEYS, "Create a key; the response is the only place the key itself appears",
             request=KeyCreate, response=CreatedKey, more_errors=(409, 413), **_ADMIN,
             examples={"scoped": {"name": "team-a", "rpm": 60, "models": ["all-minilm-l6-v2"],
                                  "tasks": ["embeddings"]}})
def create() -> Any:
    """A new key: the response is the only place its secret appears."""
    body = parse_json(KeyCreate)
    expires = _time(body.expires_at, "expires_at")
    if expires is not None and expires <= _now():
        raise APIError("expires_at is in the past", param="expires_at", code="invalid_value")
    models, tasks = _scopes(body.models, body.tasks)
    try:
        secret, record = create_key(accounts().store, body.name, rpm=body.rpm, tpm=body.tpm, cpm=body.cpm,
                                    expires_at=expires, models=models, tasks=tasks, admin=body.admin,
                                    zero_retention=body.zero_retention, redact_input=body.redact_input,
                                    by=_actor())
    except KeyStoreError as exc:
        raise APIError(str(exc), status=409, param="name", code="key_exists") from None
    return dump(CreatedKey(key=secret, **_admin_key(record).model_dump()))


@family.patch(_KEY, "Change a key's limits and scopes (the fields sent; null: unlimited, "
              "or every model or task)", request=KeyUpdate, response=AdminKey, parameters=(_KEY_ID,),
              more_errors=(413,), examples={"limits": {"rpm": 120, "cpm": 30.0}}, **_ADMIN)
def update(key_id: int) -> Any:
    """Change some of a key's limits and scopes; it applies within the auth cache time."""
    body = parse_json(KeyUpdate)
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    for flag in ("admin", "zero_retention", "redact_input"):
        if changes.get(flag, False) is None:
            raise APIError(f"{flag} is true or false", param=flag, code="invalid_value")
    if "models" in changes or "tasks" in changes:
        models, tasks = _scopes(changes.get("models"), changes.get("tasks"))
        changes.update({k: v for k, v in (("models", models), ("tasks", tasks)) if k in changes})
    try:
        return dump(_admin_key(update_key(accounts().store, _id(key_id), changes, by=_actor(), now=_now())))
    except KeyStoreError as exc:
        raise _not_found(exc) from None


@family.delete(_KEY, "Revoke a key", response=AdminKey, parameters=(_KEY_ID,), **_ADMIN)
def revoke(key_id: int) -> Any:
    """Revoke a key; servers refuse it within the auth cache time (MAAS_AUTH_CACHE_SECONDS)."""
    try:
        return dump(_admin_key(revoke_key_id(accounts().store, _id(key_id), by=_actor(), now=_now())))
    except KeyStoreError as exc:
        raise _not_found(exc) from None


@family.get("/v1/admin/usage", "Usage per time bucket, key and model", response=AdminUsage, **_ADMIN,
            parameters=(query("since", "only requests since this time (YYYY-MM-DD, an ISO time or unix seconds)"),
                        query("until", "only requests before this time"),
                        query("bucket", "the time bucket (UTC)", enum=["minute", "hour", "day"], default="hour"),
                        query("key_id", "only this key, by its id", pattern="^[0-9]{1,10}$"),
                        query("key_name", "only this key, by its name"),
                        query("model", "only this model (its configured name)")))
def usage() -> Any:
    """Usage per time bucket, key and model (`?since=&until=&bucket=minute|hour|day&key_id=&key_name=&model=`).

    (A query parameter named `key` is refused on every route, as a credential sent in the URL.)
    """
    bucket = request.args.get("bucket", "hour")
    if bucket not in BUCKETS:
        raise APIError(f"bucket is one of {', '.join(BUCKETS)}", param="bucket", code="invalid_value")
    since, until = _time(request.args.get("since"), "since"), _time(request.args.get("until"), "until")
    accounts().usage.flush()  # this worker's latest rows are in the store
    rows = usage_buckets(accounts().store, bucket=bucket, since=since, until=until,
                         key_id=_int_arg("key_id", 0, _MAX_ID), key_name=request.args.get("key_name"),
                         model=request.args.get("model"), limit=_MAX_USAGE_ROWS + 1)
    return dump(AdminUsage(bucket=bucket, since=since, until=until,  # type: ignore[arg-type]
                             has_more=len(rows) > _MAX_USAGE_ROWS,
                             data=[UsageBucket.model_validate(row) for row in rows[:_MAX_USAGE_ROWS]]))


@family.get("/v1/admin/audit", "Changes to keys (create, update, revoke): who, from where, what and when; "
            "newest first", response=AuditList, **_ADMIN,
            parameters=(query("since", "only changes since this time (YYYY-MM-DD, an ISO time or unix seconds)"),
                        query("until", "only changes before this time"),
                        query("key_id", "only changes to this key, by its id", pattern="^[0-9]{1,10}$"),
                        query("limit", "at most this many (1-1000; default 100)", pattern="^[0-9]{1,4}$")))
def audit() -> Any:
    """Changes to keys, newest first (`?since=&until=&key_id=&limit=`, limit 1-1000, default 100)."""
    since, until = _time(request.args.get("since"), "since"), _time(request.args.get("until"), "until")
    key_id = _int_arg("key_id", 1, _MAX_ID)
    limit = _int_arg("limit", 1, _MAX_AUDIT_ROWS)
    rows = read_audit(accounts().store, since=since, until=until, key_id=key_id, limit=limit or 100)
    return dump(AuditList(data=[AuditEntry.model_validate(row) for row in rows]))


# -- plumbing

def _actor() -> Actor:
    account: ApiKey = g.maas_account  # an admin key: _admins_only let the request in
    return Actor(name=account.name, key_id=account.id, source=request.remote_addr or "unknown")


def _int_arg(name: str, lowest: int, highest: int) -> int | None:
    text = request.args.get(name)
    if text is None:
        return None
    if not (text.isascii() and text.isdigit() and lowest <= int(text) <= highest):
        raise APIError(f"{name} is a whole number from {lowest} to {highest}", param=name, code="invalid_value")
    return int(text)


def _admin_key(key: ApiKey) -> AdminKey:
    status: Literal["active", "expired", "revoked"] = (
        "revoked" if key.revoked_at is not None else "active" if key.active(_now()) else "expired")
    return AdminKey(id=key.id, name=key.name, prefix=key.prefix, status=status, rpm=key.rpm, tpm=key.tpm,
                    cpm=key.cpm, models=None if key.models is None else list(key.models),
                    tasks=None if key.tasks is None else list(key.tasks), admin=key.admin,
                    zero_retention=key.zero_retention, redact_input=key.redact_input,
                    created_at=key.created_at, expires_at=key.expires_at, revoked_at=key.revoked_at)


def _scopes(models: list[str] | None, tasks: list[str] | None) -> tuple[tuple[str, ...] | None,
                                                                        tuple[str, ...] | None]:
    try:
        return check_scopes(state().config, models, tasks)
    except KeyStoreError as exc:
        raise APIError(str(exc), param="models" if "model" in str(exc) else "tasks", code="invalid_value") from None


def _time(text: str | None, param: str) -> float | None:
    if text is None:
        return None
    try:
        return parse_time(text)
    except ValueError as exc:
        raise APIError(str(exc), param=param, code="invalid_value") from None


def _id(key_id: int) -> int:
    if key_id > _MAX_ID:
        raise APIError(f"no key with id {key_id}", status=404, code="key_not_found")
    return key_id


def _not_found(exc: KeyStoreError) -> APIError:
    return APIError(str(exc), status=404, code="key_not_found")


def _now() -> float:
    return accounts().auth.clock()
