"""Plumbing shared by the blueprints: body parsing, model lookup, limits and waiting on runners."""

from __future__ import annotations

import json
import select
import socket
import threading
import time
import uuid
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

from flask import Response, after_this_request, current_app, request
from pydantic import BaseModel

from ..config import ServerConfig
from ..errors import APIError
from ..runtime.registry import ModelEntry, ModelRegistry

M = TypeVar("M", bound=BaseModel)

# Which tasks can serve which route. A new task adds its route here and nowhere else in api/.
ENDPOINT_TASKS: dict[str, tuple[str, ...]] = {
    "/v1/completions": ("text-generation",),
    "/v1/chat/completions": ("text-generation",),
    "/v1/embeddings": ("embeddings",),
    "/v1/classify/text": ("text-classification", "embeddings"),
    "/v1/classify/image": ("image-classification",),
}


@dataclass
class ServerState:
    """What the app factory hangs on the Flask app (app.extensions["maas"])."""

    config: ServerConfig
    registry: ModelRegistry
    started: int = 0  # unix time the app was built; reported as each model's `created`
    draining: threading.Event = field(default_factory=threading.Event)  # set on SIGTERM: finish, admit nothing


def state() -> ServerState:
    return current_app.extensions["maas"]  # type: ignore[no-any-return]


def parse_json(schema: type[M]) -> M:
    """The request body as `schema`: 400 when it is not a JSON object, 422 when a field is invalid."""
    if not request.is_json:
        raise APIError("send a JSON body with Content-Type: application/json", code="invalid_content_type")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise APIError("the request body is not a valid JSON object", code="invalid_json")
    _check_unicode(body)
    return schema.model_validate(body)


def _check_unicode(body: dict[str, Any]) -> None:
    # JSON may carry lone surrogates ("\ud800") that are not text; tokenizers reject them deep inside.
    try:
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise APIError("the request contains invalid Unicode (a lone surrogate escape)", code="invalid_unicode") from None


def resolve_model(endpoint: str, name: str | None) -> ModelEntry:
    """The configured model for this request: 404 unknown, 400 wrong task, 503 still loading."""
    registry = state().registry
    tasks = ENDPOINT_TASKS[endpoint]
    entry = registry.first_for(tasks) if name is None else registry.get(name)
    serving = [e.config.name for e in registry.entries() if e.config.task in tasks]
    if entry is None:
        hint = f"models serving {endpoint}: {', '.join(serving)}" if serving else f"no model serves {endpoint}"
        raise APIError(f"model {name!r} does not exist; {hint}", status=404, param="model", code="model_not_found")
    if entry.config.task not in tasks:
        raise APIError(
            f"model {entry.config.name!r} is a {entry.config.task} model and cannot serve {endpoint}; "
            f"use one of: {', '.join(serving) or 'none configured'}",
            param="model", code="wrong_model_task",
        )
    if entry.runner is None:
        why = f"failed to load ({entry.error})" if entry.error else "is still loading"
        raise APIError(f"model {entry.config.name!r} {why}; retry later", status=503, code="model_not_ready",
                       headers={"Retry-After": "5"})
    return entry


def check_count(count: int, what: str, param: str) -> None:
    limit = state().config.max_inputs
    if count == 0:
        raise APIError(f"{param} is empty: send at least one {what}", status=422, param=param, code="invalid_value")
    if count > limit:
        raise APIError(f"too many {what}s in one call: {count} > {limit} (max_inputs); split the call",
                       status=422, param=param, code="too_many_inputs")


CLIENT_POLL_S = 0.1  # how often a waiting request checks that its client is still there


def wait_all(futures: list[Future[Any]], on_client_gone: Callable[[], None] | None = None) -> list[Any]:
    """Results in order; the first failure is raised (the error handlers map it).

    While it waits it watches the client's socket: when the client has hung up (it timed out and
    closed), queued items are cancelled, `on_client_gone` stops work already running, and the
    request ends with 499 (nobody reads it).
    """
    sock = request.environ.get("gunicorn.socket")
    results = []
    for future in futures:
        while True:
            try:
                results.append(future.result(timeout=CLIENT_POLL_S if sock is not None else None))
                break
            except FutureTimeout:
                if client_gone(sock):
                    give_up_on_client(futures, on_client_gone)
    return results


def give_up_on_client(futures: list[Future[Any]], on_client_gone: Callable[[], None] | None) -> None:
    """The client hung up: cancel what is queued, stop what runs, and end the request with 499."""
    for future in futures:
        future.cancel()
    if on_client_gone is not None:
        on_client_gone()
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
