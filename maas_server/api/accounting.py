"""Accounts and operations on the wire: keys, rate limits, usage rows, metrics and the request log.

``init_app`` registers, in one place, the hooks that count every request in and out:

- in, when Flask starts the request (before any ``before_request`` hook, so a refusal by any of
  them is counted out too): the in-flight gauge goes up and its clock starts;
- before it is served: for ``/v1`` routes, check the key (401), then the key's rate limits (429
  with ``Retry-After``); after it, add the ``x-ratelimit-*`` headers;
- out, exactly once, when its response is done: at teardown, or for a streamed body once it has
  ended or been closed (its client left: logged as 499). Then the gauge goes down, the tokens are
  charged to the key's limits, the usage row is written, the metrics observed and one JSON line
  logged.

The model and usage come from the view's own report (``metering.report_usage``); the outcome is
the response status. Nothing reads a response body or parses the request body a second time
(``log_content`` logs the raw bytes the view already read).

It also adds two routes: ``GET /v1/usage`` (the caller's own usage) and ``GET /metrics`` (Prometheus).

Who may call ``/v1`` without a key is the auth mode's choice (``MAAS_AUTH``, see ``auth_mode``): by
default loopback clients until the first key is created, and nobody after, even once every key
is revoked.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from flask import Flask, Response, current_app, g, request, request_finished, request_started
from pydantic import BaseModel

from ..accounts import (
    AccountSettings,
    ApiKey,
    Authenticator,
    AuthError,
    RateLimiter,
    RedisLimiter,
    SqlLimiter,
    Store,
    StoreUnavailable,
)
from ..accounts.keys import count_active
from ..accounts.times import parse_time
from ..accounts.usage import UsageRecord, UsageWriter, usage_summary
from ..config import ServerConfig
from ..errors import APIError
from ..ops import metrics
from ..ops.logs import CREDENTIAL_NAMES, KEY_PREFIX, log_request
from . import cors
from ._common import current_endpoint, state
from .admission import is_api_path
from .endpoints import Family
from .forms import query
from .metering import Metering, metering
from .wire import Usage, dump

log = logging.getLogger("maas.accounts")
family = Family("accounting", __name__)

_MAX_LOGGED_BODY = 4000


@dataclass
class Accounts:
    """What init_app hangs on the app (app.extensions["maas_accounts"])."""

    settings: AccountSettings
    store: Store
    auth: Authenticator
    limiter: RateLimiter
    usage: UsageWriter


def init_app(app: Flask, settings: AccountSettings) -> Accounts:
    """Open the store (migrating it), register the hooks and routes.

    Tests swap the returned object's `auth` or `limiter` for ones on a clock they move.
    """
    store = Store(settings.url, create=settings.create_store)
    # The one line that says where keys live: `maas-server keys ...` must name the same store to reach this server.
    log.info("keys and usage: store %s", store.location)
    limiter: RateLimiter = RedisLimiter.from_url(settings.redis_url) if settings.redis_url else SqlLimiter(store)
    days = settings.usage_retention_days
    writer = UsageWriter(store, retention_seconds=None if days is None else days * 86400)
    accounts = Accounts(settings, store, Authenticator(store, ttl=settings.auth_cache_seconds), limiter, writer)
    app.extensions["maas_accounts"] = accounts
    app.extensions["maas"].readiness_checks.append(lambda: _store_problem(store))  # /ready says so too
    # Every request is counted in once and out once (see _Counted), refusals and errors included.
    request_started.connect(_count_in, app)  # in: before any before_request hook can refuse it
    app.before_request(_before)  # the key (401) and its rate limits (429)
    app.after_request(_add_limit_headers)
    request_finished.connect(_note_response, app)  # the final response: its status; a stream counts itself out
    app.teardown_request(_count_out_unless_streaming)  # out: Flask tears down every request it started
    cors.init_app(app, settings.cors_origins)
    try:
        _log_auth_mode(accounts)
    except StoreUnavailable as exc:  # the worker boots anyway, answers 503 and recovers when the store is back
        log.error("the account store is unavailable: %s", exc)
    return accounts


def _store_problem(store: Store) -> str | None:
    try:
        store.check()
    except StoreUnavailable as exc:  # /ready answers anyone: what is wrong, not where (the log has that)
        return f"account store: the store {exc.reason}; the server log says where and what to do"
    return None


def _log_auth_mode(acc: Accounts) -> None:
    mode = auth_mode(acc)
    if mode == "open":
        log.warning("auth mode %s: /v1 is open to any client without a key", acc.settings.auth)
    elif mode == "loopback":
        log.warning("auth mode %s: /v1 is open to loopback clients without a key (behind a reverse proxy on this "
                    "host, that is every client); `maas-server keys create` closes it", acc.settings.auth)
    elif count_active(acc.store, time.time()) == 0:
        log.warning("auth mode %s and no active API key: every /v1 call is refused until `maas-server keys create`",
                    acc.settings.auth)


def accounts() -> Accounts:
    return current_app.extensions["maas_accounts"]  # type: ignore[no-any-return]


# -- before: key, limits

def _before() -> None:
    g.maas_account = None
    g.maas_decision = None
    _refuse_keys_in_url()
    # A CORS preflight carries no credentials and runs nothing; it is answered without a key.
    if request.method != "OPTIONS" and is_api_path(request.path, state().api_prefixes):
        _authorize()


def auth_mode(acc: Accounts) -> Literal["keys", "loopback", "open"]:
    """The auth mode in force: `auto` means `keys` once a key was ever created (revoked ones count),
    before that `loopback`, or `open` with allow_anonymous."""
    if acc.settings.auth != "auto":
        return acc.settings.auth
    if acc.auth.keys_created():
        return "keys"
    return "open" if acc.settings.allow_anonymous else "loopback"


def _authorize() -> None:
    acc = accounts()
    token = _bearer()
    refusal = _refusal_without_key(acc, request.remote_addr)
    if refusal is not None and token is None:
        raise refusal
    g.maas_account = _account(acc, token, required=refusal is not None)
    if g.maas_account is not None and g.maas_account.limits.any:
        g.maas_decision = decision = acc.limiter.admit(g.maas_account.id, g.maas_account.limits)
        if not decision.allowed:
            limit = {"requests": decision.limits.rpm, "tokens": decision.limits.tpm,
                     "compute": decision.limits.cpm}.get(decision.exceeded or "")
            what = "compute seconds" if decision.exceeded == "compute" else decision.exceeded
            raise APIError(f"rate limit reached for {what}: {limit:g} per minute for key "
                           f"{g.maas_account.name!r}; retry in {decision.headers()['Retry-After']} s",
                           status=429, code="rate_limit_exceeded")


def _refusal_without_key(acc: Accounts, remote_addr: str | None) -> APIError | None:
    """The 401 a call without a key gets from this client, or None when the mode admits it."""
    mode = auth_mode(acc)
    if mode == "open" or (mode == "loopback" and _is_loopback(remote_addr)):
        return None
    if mode == "loopback" and not acc.auth.keys_created():
        return APIError("this server has no API keys and serves loopback clients only", status=401,
                        code="anonymous_loopback_only")
    return APIError("missing API key: send Authorization: Bearer <key>", status=401, code="missing_api_key",
                    headers={"WWW-Authenticate": "Bearer"})


def _account(acc: Accounts, token: str | None, *, required: bool) -> ApiKey | None:
    """The key's record (its name goes on usage, its limits apply); 401 for a bad key when one is required."""
    if token is None or (not required and not acc.auth.keys_created()):
        return None  # where a key is required, no key existing yet must not let any token in
    try:
        return acc.auth.authenticate(token)
    except AuthError as exc:
        if not required:  # where no key is needed, clients may send a placeholder (the openai package must)
            return None
        raise APIError(str(exc), status=401, code=exc.code, headers={"WWW-Authenticate": "Bearer"}) from None


def _refuse_keys_in_url() -> None:
    # A URL is written to access logs, proxy logs and browser history: a key there is a leaked key.
    for name, value in request.args.items(multi=True):
        if name.lower() in CREDENTIAL_NAMES or value.startswith(KEY_PREFIX):
            raise APIError(f"API keys are refused in the URL (query parameter {name!r}): URLs end up in logs. "
                           "Send the header Authorization: Bearer <key> instead, and revoke a key that was sent "
                           "in a URL", code="api_key_in_url")


def _bearer(header: str | None = None) -> str | None:
    scheme, _, token = (request.headers.get("Authorization", "") if header is None else header).partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def _is_loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def count_refused_early(app: Flask, environ: dict[str, Any], model: str | None, started: float,
                        request_id: str) -> bool:
    """Count a /v1 request answered 503 before it reached Flask (api/shedding.py) as any request is counted:
    its usage row under its key, its metrics and its log line.

    False, counting nothing, when the key check would refuse the call (no key where one is needed, or
    a bad one): the caller then lets Flask answer it, with its 401, as any other.
    """
    acc: Accounts = app.extensions["maas_accounts"]
    token = _bearer(environ.get("HTTP_AUTHORIZATION", ""))
    try:
        required = _refusal_without_key(acc, environ.get("REMOTE_ADDR")) is not None
        if required and token is None:
            return False
        account = _account(acc, token, required=required)
    except (APIError, StoreUnavailable):
        return False
    path = environ.get("PATH_INFO", "")
    done = _Done(route=path, api=True, polled=False, method=environ.get("REQUEST_METHOD", ""),
                 request_id=request_id, account=account, metering=Metering(model=model),
                 config=app.extensions["maas"].config, body=None)
    _record(done, 503, time.perf_counter() - started, acc)
    return True


# -- in and out: the gauge, then the usage row, metrics and the log line

@dataclass
class _Counted:
    """One request from when it is counted in until it is counted out, exactly once (`out`).

    Flask runs teardown for every request it started, answered or failed, so teardown counts a
    request out; a streamed body outlives teardown and counts its request out itself (_CountedBody).
    """

    started: float
    status: int = 500  # the final response's, once Flask has one (a response that failed to finish: 500)
    streaming: bool = False  # the response body counts the request out, when it ends or is closed
    done: _Done | None = None  # what the request did, taken at teardown while its context exists
    out: bool = False


@dataclass(frozen=True)
class _Done:
    """What a request did, as accounting records it."""

    route: str
    api: bool  # an authenticated endpoint's: billed in the usage table
    polled: bool  # a probe's or a scrape's
    method: str
    request_id: str
    account: ApiKey | None
    metering: Metering  # the model and usage its view reported, if it got that far
    config: ServerConfig
    body: str | None  # for the log, with log_content


def _count_in(sender: Flask, **_: Any) -> None:
    g.maas_counted = _Counted(started=time.perf_counter())
    metrics.IN_FLIGHT.inc()


def _add_limit_headers(response: Response) -> Response:
    decision = getattr(g, "maas_decision", None)
    if decision is not None:
        response.headers.update(decision.headers())
    return response


def _note_response(sender: Flask, response: Response, **_: Any) -> None:
    """Flask's final response, after every after_request hook: its status, and for a stream, a body
    that counts the request out. (Sent again, with a 500, if finishing the first response failed.)"""
    counted: _Counted | None = g.get("maas_counted")
    if counted is None:
        return
    counted.status = response.status_code
    counted.streaming = response.is_streamed
    if response.is_streamed:
        response.response = _CountedBody(response.response, counted, accounts())


def _count_out_unless_streaming(error: BaseException | None) -> None:
    counted: _Counted | None = g.pop("maas_counted", None)
    if counted is None:  # Flask failed before it started the request: it was never counted in
        return
    counted.done = _what_it_did(counted.status)
    if not counted.streaming:
        _count_out(counted, accounts())


def _what_it_did(status: int) -> _Done:
    endpoint = current_endpoint()
    return _Done(route=request.url_rule.rule if request.url_rule else "unmatched", method=request.method,
                 api=endpoint is not None and endpoint.authenticated, polled=endpoint is not None and endpoint.polled,
                 request_id=getattr(g, "request_id", "") or "", account=g.get("maas_account"),
                 metering=metering(), config=state().config, body=_logged_body(status))


class _CountedBody:
    """A streamed response body that counts its request out once: after its last chunk, or when the
    server closes it before that (a write failed: the client left, recorded as 499).

    The server calls ``close`` whether or not it sent the body whole; a test client that reads a
    body but never closes it is counted out at the last chunk.
    """

    def __init__(self, chunks: Iterable[Any], counted: _Counted, acc: Accounts) -> None:
        self.chunks, self.counted, self.acc = chunks, counted, acc
        self.ended = False

    def __iter__(self) -> Iterator[Any]:
        try:
            yield from self.chunks
        except Exception:
            self.counted.status = 500  # it broke on our side, not the client's
            self._end()
            raise
        self._end()

    def close(self) -> None:
        if not self.ended:
            self.counted.status = 499
        self._end()

    def _end(self) -> None:
        if self.ended:
            return
        self.ended = True
        try:
            close = getattr(self.chunks, "close", None)
            if close is not None:
                close()  # first: a stream stops generating here, which settles the usage it reports
        finally:
            _count_out(self.counted, self.acc)


# Requests refused before their body was read: reading it now would only waste time (or fail: 413).
_BODY_UNREAD = (401, 413, 429)


def zero_retention() -> bool:
    """Whether the request's key is a zero-retention one: nothing the request carries or returns may be
    logged or stored."""
    account: ApiKey | None = g.get("maas_account")
    return account is not None and account.zero_retention


def _logged_body(status: int) -> str | None:
    if not accounts().settings.log_content or request.mimetype == "multipart/form-data" or status in _BODY_UNREAD:
        return None
    if _carries_personal_data() or zero_retention():
        return None
    try:
        return request.get_data(as_text=True)[:_MAX_LOGGED_BODY]
    except Exception:  # noqa: BLE001 - an unreadable body is not logged, and never fails the response
        return None


def _carries_personal_data() -> bool:
    # Faces and voices are personal data (their endpoints' records say so): never logged, log_content or not.
    # A body sent to no endpoint (a mistyped path, a redirect) is not logged either: nothing says what it holds.
    endpoint = current_endpoint()
    return endpoint is None or endpoint.personal_data


def _count_out(counted: _Counted, acc: Accounts) -> None:
    """The other half of _count_in, once per request: the gauge, then the request's records."""
    if counted.out:
        return
    counted.out = True
    metrics.IN_FLIGHT.dec()
    seconds = time.perf_counter() - counted.started
    if counted.done is None:  # a body closed before its request's teardown: nothing to record it by
        log.error("a request was counted out before its teardown; it is not recorded")
        return
    _record(counted.done, counted.status, seconds, acc)


def _record(done: _Done, status: int, seconds: float, acc: Accounts) -> None:
    """Charge tokens, write the usage row, observe metrics, log the line. Never fails the response."""
    usage = _settled_usage(done)
    prompt, completion = (usage.prompt_tokens, usage.completion_tokens) if usage is not None else (0, 0)
    compute = done.metering.compute_seconds()  # after the usage settled: a stream's rows have left by then
    model, account = done.metering.model, done.account
    try:
        backend = _backend(done.config, model)
        metrics.observe_request(done.route, model or "", status, seconds, backend)
        metrics.observe_tokens(model or "", prompt, completion, backend)
        metrics.observe_compute(model or "", compute, backend)
        if done.api and status != 401:  # queued first: charging may fail
            acc.usage.add(UsageRecord(
                at=time.time(), route=done.route, status=status, latency_ms=seconds * 1000,
                key_id=account.id if account else None, key_name=account.name if account else None,
                model=model, task=_task(done.config, model), prompt_tokens=prompt, completion_tokens=completion,
                request_id=done.request_id, compute_ms=compute * 1000))
        if account is not None and (account.limits.tpm is not None or account.limits.cpm is not None):
            acc.limiter.charge(account.id, prompt + completion, compute)
    except StoreUnavailable as exc:  # the store logs the outage; the next call from this key is refused (503)
        log.warning("tokens of request %s not charged to its key's limit: %s", done.request_id, exc)
    except Exception:  # accounting must not turn an answered request into an error
        log.exception("could not record request %s", done.request_id)
    fields = dict(request_id=done.request_id, method=done.method, route=done.route, status=status,
                  latency_ms=round(seconds * 1000, 2), model=model, key=account.name if account else None,
                  prompt_tokens=prompt, completion_tokens=completion, compute_ms=round(compute * 1000, 2))
    if done.body is not None:
        fields["body"] = done.body
    if not done.polled or log.isEnabledFor(logging.DEBUG):  # probes and scrapes: at debug level only
        log_request(**fields)


def _settled_usage(done: _Done) -> Usage | None:
    try:
        return done.metering.settled_usage()
    except Exception:  # a stream that cannot say what it used is recorded without usage
        log.exception("could not settle the usage of request %s", done.request_id)
        return None


def _task(config: ServerConfig, model: str | None) -> str | None:
    found = config.model(model) if model else None
    return found.task if found else None


def _backend(config: ServerConfig, model: str | None) -> str:
    found = config.model(model) if model else None
    return found.backend if found else ""


# -- routes

class UsageRow(BaseModel):
    """One model's totals for the caller."""

    model: str | None
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    mean_latency_ms: float
    compute_seconds: float  # seconds of model time: each request's share of the batches and steps it was in


class UsageReport(BaseModel):
    """GET /v1/usage: the caller's own usage per model (`key` is the key's name; None when anonymous)."""

    object: Literal["usage"] = "usage"
    key: str | None
    since: float | None
    data: list[UsageRow]


@family.get("/v1/usage", "The caller's own usage per model", response=UsageReport,
            parameters=(query("since", "only requests since this time: YYYY-MM-DD, an ISO time or unix seconds"),))
def own_usage() -> Any:
    """The caller's usage per model (all time, or since `?since=DATE`)."""
    since_text = request.args.get("since")
    try:
        since = parse_time(since_text) if since_text else None
    except ValueError as exc:
        raise APIError(str(exc), status=400, param="since", code="invalid_value") from None
    account = g.maas_account
    accounts().usage.flush()  # this worker's rows, the caller's latest included, are in the store
    rows = usage_summary(accounts().store, key_id=account.id if account else None, anonymous=account is None,
                         since=since)
    return dump(UsageReport(key=account.name if account else None, since=since,
                              data=[UsageRow.model_validate(row) for row in rows]))


@family.get("/metrics", "Prometheus metrics, summed over workers", text="Prometheus text exposition format",
            access="metrics", polled=True)
def prometheus_metrics() -> Any:
    """Prometheus exposition; needs `Authorization: Bearer $MAAS_METRICS_TOKEN` when that is set."""
    token = accounts().settings.metrics_token
    if token is not None:
        if not hmac.compare_digest((_bearer() or "").encode(), token.encode()):
            raise APIError("/metrics needs Authorization: Bearer <metrics token>", status=401,
                           code="invalid_metrics_token", headers={"WWW-Authenticate": "Bearer"})
    body, content_type = metrics.render()
    return Response(body, content_type=content_type)
