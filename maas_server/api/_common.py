"""Plumbing shared by the blueprints: body parsing, model lookup, limits and waiting on runners."""

from __future__ import annotations

import math
import select
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flask import Response, after_this_request, current_app, g, request
from pydantic import BaseModel
from werkzeug.exceptions import BadRequest, ClientDisconnected, RequestEntityTooLarge

from ..config import ServerConfig
from ..errors import APIError
from ..models.contract import Method
from ..runtime.handles import EventStream, Handle
from ..runtime.registry import ModelEntry, ModelRegistry
from .endpoints import Endpoint
from .memory import MemoryBudget, default_budget_bytes
from .metering import note_model, note_work
from .wire import MAX_JSON_ARRAY, MAX_JSON_DEPTH

M = TypeVar("M", bound=BaseModel)
In = TypeVar("In")
Out = TypeVar("Out")


def json_response(body: BaseModel) -> Response:
    """`body` as the JSON response, serialized by pydantic-core in one pass.

    ``model_dump(mode="json")`` then Flask's ``json.dumps`` walks the data twice in Python: 0.19-0.29 ms
    for one 384-float embedding against 0.04 ms (docs/performance.md); per request, on the GIL.
    """
    return current_app.response_class(body.model_dump_json(), mimetype="application/json")


@dataclass
class ServerState:
    """What the app factory hangs on the Flask app (app.extensions["maas"])."""

    config: ServerConfig
    registry: ModelRegistry
    started: int = 0  # unix time the app was built; reported as each model's `created`
    draining: threading.Event = field(default_factory=threading.Event)  # set on SIGTERM: finish, admit nothing
    # What else /ready depends on besides the models: each returns why the server cannot serve, or None.
    readiness_checks: list[Callable[[], str | None]] = field(default_factory=list)
    memory: MemoryBudget = field(default_factory=lambda: MemoryBudget(default_budget_bytes()))
    endpoints: dict[str, Endpoint] = field(default_factory=dict)  # by Flask endpoint name: every route's record
    # What a request's items pass through before any runner sees them (a key's redact_input policy, redaction.py).
    input_filters: list[Callable[[Method[Any, Any], Iterable[Any]], Iterable[Any]]] = field(default_factory=list)
    api_prefixes: tuple[str, ...] = ()  # endpoints.api_prefixes of those records


def state() -> ServerState:
    return current_app.extensions["maas"]  # type: ignore[no-any-return]


def current_endpoint() -> Endpoint | None:
    """The record of the endpoint this request reached (None: no route matched)."""
    return state().endpoints.get(request.endpoint or "")




def parse_json(schema: type[M]) -> M:
    """The request body as `schema`: 400 when it is not a JSON object or a field is
    invalid (`param` names the field; OpenAI answers 400 where others say 422)."""
    if not request.is_json:
        raise APIError("send a JSON body with Content-Type: application/json", code="invalid_content_type")
    read_body()
    try:
        body = request.get_json()
    except BadRequest:
        body = None
    except RecursionError:  # the parser recurses once per level: thousands of levels exhaust the stack
        raise APIError(f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels", code="invalid_json") from None
    if not isinstance(body, dict):
        raise APIError("the request body is not a valid JSON object", code="invalid_json")
    _check_values(body)
    return schema.model_validate(body)


def read_body() -> bytes:
    """The whole request body: 413 over max_body_bytes (chunked bodies too), 400 when it was cut short."""
    try:
        data = request.get_data()
    except ClientDisconnected:  # werkzeug's own check, when the server does not frame the body
        raise _truncated(request.content_length) from None
    limit = request.max_content_length
    if request.content_length is None and limit is not None and len(data) >= limit:
        # A chunked body is read up to the limit and no further, so the limit looks like the end:
        # one more byte from the server's stream tells a body of exactly `limit` from a larger one.
        if request.input_stream.read(1):
            raise RequestEntityTooLarge()
    if request.content_length is not None and len(data) < request.content_length:
        # gunicorn hands over what arrived when the client half-closes early; werkzeug cannot tell.
        raise _truncated(request.content_length, len(data))
    return data


def _truncated(expected: int | None, received: int | None = None) -> APIError:
    got = f"{received} bytes" if received is not None else "fewer bytes"
    return APIError(f"the request body ended early: {got} of the {expected} its Content-Length announced",
                    code="truncated_body")


def _check_values(body: dict[str, Any]) -> None:
    """Refuse what JSON allows but no field can hold, before anything recurses into the body.

    Deep nesting would overflow the stack of every later step (validation, logging); an array of
    hundreds of thousands of items would hold the GIL for seconds while it is validated; lone
    surrogate escapes ("\\ud800") are not text, and tokenizers reject them deep inside.
    """
    pending: list[tuple[Any, int]] = [(body, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, str):
            _check_text(value)
            continue
        if isinstance(value, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                raise APIError(f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels", code="invalid_json")
            if isinstance(value, list) and len(value) > MAX_JSON_ARRAY:
                raise APIError(f"a JSON array in the body has {len(value)} items; at most {MAX_JSON_ARRAY} are read",
                               code="request_too_large")
            children = [*value, *value.values()] if isinstance(value, dict) else value
            pending.extend((child, depth + 1) for child in children)


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise APIError("the request contains invalid Unicode (a lone surrogate escape)",
                       code="invalid_unicode") from None


# Names clients send when they mean "whatever this server serves": huggingface_hub's InferenceClient
# sends "dummy" when it was given a URL and no model, as TGI (which ignores `model`) expects.
PLACEHOLDER_MODELS = frozenset({"dummy", "tgi"})


def resolve_model(name: str | None, method: Method[Any, Any] | None = None) -> ModelEntry:
    """The configured model for this request: 404 unknown, 400 wrong task, 503 still loading.

    The endpoint's record says which methods it serves; `method` is what the request needs when it is not
    the usual one (explain: true).
    """
    registry = state().registry
    if name in PLACEHOLDER_MODELS:
        name = None
    endpoint = current_endpoint()
    assert endpoint is not None and endpoint.serves, "only an endpoint that serves a model method resolves one"
    usual = endpoint.serves[0]
    method = method or usual
    what = endpoint.path if method == usual else f"{endpoint.path} with {method.name}"
    allowed = [e for e in registry.entries() if may_use(e)]
    # Without a name, the first model the key may use (a key with no model of this task is refused below).
    entry = next((e for e in allowed if e.offers(method)), registry.first_for(method)) if name is None \
        else registry.get(name)
    serving = [e.config.name for e in allowed if e.offers(method)]
    if entry is None:
        hint = f"models serving {what}: {', '.join(serving)}" if serving else f"no model serves {what}"
        subject = "no model was named" if name is None else f"model {name!r} does not exist"
        raise APIError(f"{subject}; {hint}", status=404, param="model", code="model_not_found")
    if name is not None:  # a refusal from here on is logged under the model the client asked for
        note_model(entry.config.name)
    _refuse_out_of_scope(entry)
    if not entry.offers(method):
        raise APIError(
            f"model {entry.config.name!r} is a {entry.config.task} model and cannot serve {what}; "
            f"use one of: {', '.join(serving) or 'none configured'}",
            param="model", code="wrong_model_task",
        )
    if entry.runner is None:
        why = f"failed to load ({entry.error})" if entry.error else "is still loading"
        raise APIError(f"model {entry.config.name!r} {why}; retry later", status=503, code="model_not_ready",
                       headers={"Retry-After": "5"})
    return entry


def may_use(entry: ModelEntry) -> bool:
    """Whether the request's key (g.maas_account) may use this model; a call without a key may use any."""
    account = g.get("maas_account")
    return account is None or account.refusal(entry.config.name, entry.config.task) is None


def _refuse_out_of_scope(entry: ModelEntry) -> None:
    """403 when the request's key is scoped to other models or tasks (its aliases count as the model)."""
    account = g.get("maas_account")
    code = account.refusal(entry.config.name, entry.config.task) if account is not None else None
    if code == "model_not_allowed":
        raise APIError(f"API key {account.name!r} may not use model {entry.config.name!r}; GET /v1/models lists "
                       f"those it may use", status=403, param="model", code=code)
    if code == "task_not_allowed":
        raise APIError(f"API key {account.name!r} may not use {entry.config.task} models; GET /v1/models lists "
                       f"those it may use", status=403, param="model", code=code)


def check_count(count: int, what: str, param: str) -> None:
    limit = state().config.max_inputs
    if count == 0:
        raise APIError(f"{param} is empty: send at least one {what}", status=400, param=param, code="invalid_value")
    if count > limit:
        raise APIError(f"too many {what}s in one call: {count} > {limit} (max_inputs); split the call",
                       status=400, param=param, code="too_many_inputs")


REQUEST_TIMEOUT_HEADER = "X-Request-Timeout"
MIN_REQUEST_TIMEOUT_S = 0.1  # shorter deadlines cannot be told apart from the time it takes to start at all
MAX_REQUEST_TIMEOUT_S = 3600.0  # the most a config's max_request_timeout_s may allow


def submit(entry: ModelEntry, method: Method[In, Out], items: Iterable[In]) -> list[Handle[Out]]:
    """Queue a request's items on its model's runner, with the request's own deadline if it set one.

    ``X-Request-Timeout: SECONDS`` is how long the caller will wait for the model to start on its
    request; a request the runner's estimate says would wait longer is refused at once (503).
    `items` may be a lazy iterator (see Runner.submit_many). They pass the server's input filters first
    (a key with the redact_input policy has its generation and embedding text redacted: api/redaction.py).
    """
    items = _filtered(method, items)
    handles = entry.runner_for(method).submit_many(method, items, timeout=request_timeout())
    note_work(handles)
    return handles


def _filtered(method: Method[In, Any], items: Iterable[In]) -> Iterable[In]:
    for input_filter in state().input_filters:
        items = input_filter(method, items)
    return items


def stream(entry: ModelEntry, method: Method[In, Out], items: list[In]) -> EventStream[Out]:
    """As `submit`, with each item's events and outcome arriving in order on one stream."""
    events = entry.runner_for(method).stream(method, list(_filtered(method, items)), timeout=request_timeout())
    note_work(events.handles)
    return events


def request_timeout() -> float | None:
    """The request's X-Request-Timeout in seconds (None: the model's queue_timeout_s); 400 when invalid."""
    value = request.headers.get(REQUEST_TIMEOUT_HEADER)
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    longest = state().config.max_request_timeout_s
    if not MIN_REQUEST_TIMEOUT_S <= seconds <= longest:  # also false for NaN
        raise APIError(f"{REQUEST_TIMEOUT_HEADER} must be a number of seconds from {MIN_REQUEST_TIMEOUT_S:g} "
                       f"to {longest:g} (this server's max_request_timeout_s)",
                       param=REQUEST_TIMEOUT_HEADER, code="invalid_request_timeout")
    return seconds


CLIENT_POLL_S = 0.1  # how often a waiting request checks that its client is still there


def wait_all(handles: list[Handle[Out]]) -> list[Out]:
    """Results in order; the first failure is raised (the error handlers map it).

    While it waits it watches the client's socket: when the client has hung up (it timed out and
    closed), its items are cancelled (queued ones never start, running ones stop at their next
    step) and the request ends with 499 (nobody reads it).
    """
    sock = request.environ.get("gunicorn.socket")
    results = []
    for handle in handles:
        while True:
            try:
                results.append(handle.result(timeout=CLIENT_POLL_S if sock is not None else None))
                break
            except FutureTimeout:
                if client_gone(sock):
                    give_up_on_client(handles)
    note_served_by(handles)
    return results


SERVED_BY_HEADER = "X-Maas-Replica"


def note_served_by(handles: list[Handle[Any]]) -> None:
    """Name the replica(s) that answered in the response's X-Maas-Replica header (models on Ray only).

    Operators follow a slow or odd answer to the replica that gave it; a model in this process sets none.
    """
    replicas = sorted({handle.served_by for handle in handles if handle.served_by})
    if replicas:
        g.served_by = ",".join(replicas)


def give_up_on_client(handles: list[Handle[Any]]) -> None:
    """The client hung up: cancel its items and end the request with 499."""
    for handle in handles:
        handle.cancel()
    raise APIError("the client closed the connection before the response was ready", status=499,
                   code="client_closed_request")


def client_gone(sock: socket.socket | None) -> bool:
    """True when the peer has closed its side of `sock` (a read would return end-of-file)."""
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except (ConnectionError, OSError):
        return True  # reset by peer, or the socket is already closed
    except ValueError:
        return False  # TLS sockets do not allow peeking; such clients are noticed when we write


def after_response(callback: Callable[[], object]) -> None:
    """Call `callback` once this request's response has been sent (an error response too)."""
    @after_this_request
    def _register(response: Response) -> Response:
        response.call_on_close(callback)
        return response


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def now() -> int:
    return int(time.time())
