"""Accounts and operations on the wire: keys, rate limits, usage rows, metrics and the request log.

``init_app`` hangs three hooks on the app, so no endpoint has to know about any of this:

- before each request: start its clock; for ``/v1`` routes, check the key (401), then the key's
  rate limits (429 with ``Retry-After``);
- after it: add the ``x-ratelimit-*`` headers, read ``model`` and ``usage`` from the response (a
  stream is read as it goes out), then, once the body is sent, charge the tokens to the key's
  limits, write the usage row, observe the metrics and log one JSON line;
- and two routes: ``GET /v1/usage`` (the caller's own usage) and ``GET /metrics`` (Prometheus).

Who may call ``/v1`` without a key is the auth mode's choice (``MAAS_AUTH``, see ``auth_mode``): by
default loopback clients until the first key is created, and nobody after, even once every key
is revoked.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from flask import Blueprint, Flask, Response, current_app, g, has_request_context, request
from flask.json.provider import JSONProvider
from pydantic import BaseModel
from werkzeug.sansio.response import Response as BaseResponse

from ..accounts import (AccountSettings, ApiKey, Authenticator, AuthError, RateLimiter, RedisLimiter, SqlLimiter,
                        Store, StoreUnavailable)
from ..accounts.keys import count_active
from ..accounts.times import parse_time
from ..accounts.usage import UsageRecord, UsageWriter, usage_summary
from ..config import ServerConfig
from ..errors import APIError
from ..ops import metrics
from ..ops.logs import CREDENTIAL_NAMES, KEY_PREFIX, log_request
from . import cors
from . import schemas as s
from ._common import state
from .detect import PERSONAL_DATA_ROUTES

log = logging.getLogger("maas.accounts")
bp = Blueprint("accounting", __name__)

_QUIET_ROUTES = ("/health", "/ready", "/metrics")  # polled often: logged at debug level only
_MAX_LOGGED_BODY = 4000


@dataclass
class Accounts:
    """What init_app hangs on the app (app.extensions["maas_accounts"])."""

    settings: AccountSettings
    store: Store
    auth: Authenticator
    limiter: RateLimiter
    usage: UsageWriter


def init_app(app: Flask, settings: AccountSettings | None = None) -> Accounts:
    """Open the store (migrating it), register the hooks and routes.

    Tests swap the returned object's `auth` or `limiter` for ones on a clock they move.
    """
    settings = settings or AccountSettings.from_env()
    store = Store(settings.url, create=settings.create_store)
    limiter: RateLimiter = RedisLimiter.from_url(settings.redis_url) if settings.redis_url else SqlLimiter(store)
    accounts = Accounts(settings, store, Authenticator(store, ttl=settings.auth_cache_seconds), limiter,
                        UsageWriter(store))
    app.extensions["maas_accounts"] = accounts
    app.extensions["maas"].readiness_checks.append(lambda: _store_problem(store))  # /ready says so too
    app.json = _NotingJSON(app, app.json)
    app.register_blueprint(bp)
    app.before_request(_before)
    app.after_request(_after)
    cors.init_app(app, settings.cors_origins)
    try:
        _log_auth_mode(accounts)
    except StoreUnavailable as exc:  # the worker boots anyway, answers 503 and recovers when the store is back
        log.error("the account store is unavailable: %s", exc)
    return accounts


def _store_problem(store: Store) -> str | None:
    try:
        store.check()
    except StoreUnavailable as exc:
        return f"account store: {exc}"
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


class _NotingJSON(JSONProvider):
    """The app's JSON provider, unchanged, except that it keeps the dict a view answers with.

    `_after` reads `model` and `usage` from that dict: parsing the response body again would cost
    tens of milliseconds for a large batch of embeddings.
    """

    def __init__(self, app: Flask, inner: JSONProvider) -> None:
        super().__init__(app)
        self.inner = inner

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return self.inner.dumps(obj, **kwargs)

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return self.inner.loads(s, **kwargs)

    def response(self, *args: Any, **kwargs: Any) -> BaseResponse:  # JSONProvider's own return type
        if len(args) == 1 and not kwargs and isinstance(args[0], dict) and has_request_context():
            g.maas_answer = args[0]
        return self.inner.response(*args, **kwargs)


def accounts() -> Accounts:
    return current_app.extensions["maas_accounts"]  # type: ignore[no-any-return]


# -- before: clock, key, limits

def _before() -> None:
    g.maas_started = time.perf_counter()
    g.maas_account = None
    g.maas_decision = None
    metrics.IN_FLIGHT.inc()
    _refuse_keys_in_url()
    # A CORS preflight carries no credentials and runs nothing; it is answered without a key.
    if request.method != "OPTIONS" and (request.path.startswith("/v1/") or request.path == "/v1"):
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
    refusal = _refusal_without_key(acc)
    if refusal is not None and token is None:
        raise refusal
    g.maas_account = _account(acc, token, required=refusal is not None)
    if g.maas_account is not None and g.maas_account.limits.any:
        g.maas_decision = decision = acc.limiter.admit(g.maas_account.id, g.maas_account.limits)
        if not decision.allowed:
            limit = decision.limits.rpm if decision.exceeded == "requests" else decision.limits.tpm
            raise APIError(f"rate limit reached for {decision.exceeded}: {limit} per minute for key "
                           f"{g.maas_account.name!r}; retry in {decision.headers()['Retry-After']} s",
                           status=429, code="rate_limit_exceeded")


def _refusal_without_key(acc: Accounts) -> APIError | None:
    """The 401 a call without a key gets from this client, or None when the mode admits it."""
    mode = auth_mode(acc)
    if mode == "open" or (mode == "loopback" and _is_loopback(request.remote_addr)):
        return None
    if mode == "loopback" and not acc.auth.keys_created():
        return APIError("this server has no API keys and serves loopback clients only", status=401,
                        code="anonymous_loopback_only")
    return APIError("missing API key: send Authorization: Bearer <key>", status=401, code="missing_api_key",
                    headers={"WWW-Authenticate": "Bearer"})


def _account(acc: Accounts, token: str | None, *, required: bool) -> ApiKey | None:
    """The key's record (its name goes on usage, its limits apply); 401 for a bad key when one is required."""
    if token is None or not acc.auth.keys_created():
        return None
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


def _bearer() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def _is_loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


# -- after: headers, usage, metrics, log

@dataclass
class _Finished:
    """What one request did, collected while the request context exists and written when its body is sent."""

    route: str
    method: str
    status: int
    request_id: str
    started: float
    account: Any
    model: str | None
    config: ServerConfig
    body: str | None
    usage: dict[str, int] = field(default_factory=dict)
    done: bool = False
    # Whether `_before` counted this request in: a request refused by an earlier hook (the drain
    # check) never was, and must not be counted out either (the gauge went negative).
    counted_in: bool = True
    # A streaming view may leave `g.maas_stream_usage`: a callable giving the stream's exact usage
    # when it ends, whether or not the client asked for a usage chunk (generation does).
    stream_usage: Callable[[], dict[str, int]] | None = None

    def note_event(self, data: str) -> None:
        """One stream event. Parsing every token's JSON would cost CPU the model needs: only the
        first event (model name) and those with usage are parsed; others are counted by sight."""
        if self.stream_usage is not None:
            if self.model is None:
                self.note(json.loads(data))
            return
        if self.model is None or '"usage":{' in data:
            try:
                self.note(json.loads(data))
            except ValueError:
                pass
        elif _has_content(data):
            self.usage["completion_tokens"] = self.usage.get("completion_tokens", 0) + 1

    def note(self, chunk: dict[str, Any]) -> None:
        """Take `model` and `usage` from a response body or a stream chunk."""
        if isinstance(chunk.get("model"), str):
            self.model = chunk["model"]
        if isinstance(chunk.get("usage"), dict):
            self.usage = {k: v for k, v in chunk["usage"].items() if isinstance(v, int)}
        elif chunk.get("object") == "chat.completion.chunk" or chunk.get("object") == "text_completion":
            # A stream without include_usage: count content chunks as completion tokens (one each).
            if any(c.get("text") or (c.get("delta") or {}).get("content") for c in chunk.get("choices") or ()):
                self.usage["completion_tokens"] = self.usage.get("completion_tokens", 0) + 1


def _has_content(data: str) -> bool:
    # A completions chunk carries "text":"...", a chat chunk "content":"..."; empty ones carry no token.
    return ('"text":"' in data and '"text":""' not in data) or ('"content":"' in data and '"content":""' not in data)


def _after(response: Response) -> Response:
    decision = getattr(g, "maas_decision", None)
    if decision is not None:
        response.headers.update(decision.headers())
    finished = _Finished(
        route=request.url_rule.rule if request.url_rule else "unmatched", method=request.method,
        status=response.status_code, request_id=getattr(g, "request_id", "") or "",
        started=getattr(g, "maas_started", time.perf_counter()), account=getattr(g, "maas_account", None),
        model=_requested_model(response.status_code), config=state().config, counted_in="maas_started" in g,
        body=_logged_body(response.status_code))
    if response.is_streamed:
        finished.stream_usage = g.pop("maas_stream_usage", None)
        response.response = _watch_stream(response.response, finished, accounts())
    else:
        answer = g.pop("maas_answer", None)
        if answer is not None:
            finished.note(answer)
        _finish(finished, accounts())
    return response


def _watch_stream(chunks: Iterable[Any], finished: _Finished, acc: Accounts) -> Iterator[Any]:
    """Pass a server-sent event stream through, noting usage; finish when it ends or the client leaves.

    A client that leaves before the end is logged and recorded as 499, as a non-streamed request is.
    """
    try:
        for chunk in chunks:
            text = chunk.decode() if isinstance(chunk, bytes) else chunk
            for line in text.split("\n"):
                if line.startswith("data: {"):
                    finished.note_event(line[len("data: "):])
            yield chunk
    except GeneratorExit:  # the server closed the stream early: a write to the client failed
        finished.status = 499
        raise
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
        _finish(finished, acc)


# Requests refused before their body was read: reading it now would only waste time (or fail: 413).
_BODY_UNREAD = (401, 413, 429)


def _requested_model(status: int) -> str | None:
    # Only a configured name becomes a label or a row: arbitrary names would grow metrics without bound.
    if status in _BODY_UNREAD:
        return None
    name: Any = None
    try:
        if request.mimetype == "multipart/form-data":
            name = request.form.get("model")
        elif request.is_json:
            body = request.get_json(silent=True)
            name = body.get("model") if isinstance(body, dict) else None
    except Exception:  # noqa: BLE001 - an unreadable body has no model to report
        return None
    return name if isinstance(name, str) and state().config.model(name) is not None else None


def _logged_body(status: int) -> str | None:
    if not accounts().settings.log_content or request.mimetype == "multipart/form-data" or status in _BODY_UNREAD:
        return None
    if _carries_faces():
        return None
    try:
        return request.get_data(as_text=True)[:_MAX_LOGGED_BODY]
    except Exception:  # noqa: BLE001 - an unreadable body is not logged, and never fails the response
        return None


def _carries_faces() -> bool:
    # Faces are personal data: never logged, log_content or not. The path is checked too, so that a face image
    # sent to a mistyped path (a 404 or a redirect, with no route) stays out of the log as well.
    path = (request.url_rule.rule if request.url_rule else request.path).lower()
    return any(route in path for route in PERSONAL_DATA_ROUTES)


def _finish(finished: _Finished, acc: Accounts) -> None:
    """Charge tokens, write the usage row, observe metrics, log the line. Never fails the response."""
    if finished.done:
        return
    finished.done = True
    if finished.stream_usage is not None:
        finished.usage = finished.stream_usage()
    seconds = time.perf_counter() - finished.started
    if finished.counted_in:
        metrics.IN_FLIGHT.dec()
    prompt = int(finished.usage.get("prompt_tokens", 0))
    completion = int(finished.usage.get("completion_tokens", 0))
    model = finished.model or ""
    account = finished.account
    try:
        metrics.observe_request(finished.route, model, finished.status, seconds)
        metrics.observe_tokens(model, prompt, completion)
        if finished.route.startswith("/v1/") and finished.status != 401:  # queued first: charging may fail
            acc.usage.add(UsageRecord(
                at=time.time(), route=finished.route, status=finished.status, latency_ms=seconds * 1000,
                key_id=account.id if account else None, key_name=account.name if account else None,
                model=finished.model, task=_task(finished), prompt_tokens=prompt, completion_tokens=completion,
                request_id=finished.request_id))
        if account is not None and account.limits.tpm is not None:
            acc.limiter.charge(account.id, prompt + completion)
    except StoreUnavailable as exc:  # the store logs the outage; the next call from this key is refused (503)
        log.warning("tokens of request %s not charged to its key's limit: %s", finished.request_id, exc)
    except Exception:  # accounting must not turn an answered request into an error
        log.exception("could not record request %s", finished.request_id)
    fields = dict(request_id=finished.request_id, method=finished.method, route=finished.route,
                  status=finished.status, latency_ms=round(seconds * 1000, 2), model=finished.model,
                  key=account.name if account else None, prompt_tokens=prompt, completion_tokens=completion)
    if finished.body is not None:
        fields["body"] = finished.body
    if finished.route in _QUIET_ROUTES:
        if log.isEnabledFor(logging.DEBUG):
            log_request(**fields)
    else:
        log_request(**fields)


def _task(finished: _Finished) -> str | None:
    config = finished.config.model(finished.model) if finished.model else None
    return config.task if config else None


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


class UsageReport(BaseModel):
    """GET /v1/usage: the caller's own usage per model (`key` is the key's name; None when anonymous)."""

    object: Literal["usage"] = "usage"
    key: str | None
    since: float | None
    data: list[UsageRow]


@bp.get("/v1/usage")
def own_usage() -> Any:
    """The caller's usage per model (all time, or since `?since=DATE`)."""
    since_text = request.args.get("since")
    try:
        since = parse_time(since_text) if since_text else None
    except ValueError as exc:
        raise APIError(str(exc), status=422, param="since", code="invalid_value") from None
    account = g.maas_account
    accounts().usage.flush()  # this worker's rows, the caller's latest included, are in the store
    rows = usage_summary(accounts().store, key_id=account.id if account else None, anonymous=account is None,
                         since=since)
    return s.dump(UsageReport(key=account.name if account else None, since=since,
                              data=[UsageRow.model_validate(row) for row in rows]))


@bp.get("/metrics")
def prometheus_metrics() -> Any:
    """Prometheus exposition; needs `Authorization: Bearer $MAAS_METRICS_TOKEN` when that is set."""
    token = accounts().settings.metrics_token
    if token is not None:
        if not hmac.compare_digest((_bearer() or "").encode(), token.encode()):
            raise APIError("/metrics needs Authorization: Bearer <metrics token>", status=401,
                           code="invalid_metrics_token", headers={"WWW-Authenticate": "Bearer"})
    body, content_type = metrics.render()
    return Response(body, content_type=content_type)
