"""The one JSON error envelope, and the handlers that turn every failure into it.

``{"error": {"type", "message", "param", "code"}}`` with the right status, whatever went wrong:
our own APIError, a model-level InvalidInput, a full queue, an account store that cannot be used
(503 ``store_unavailable``), pydantic validation, Werkzeug's HTTP errors (404, 405, 413...) and,
for genuine bugs, a 500 that names the request id and never carries a stack trace.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from flask import Flask, Response, g, jsonify
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from .accounts.store import StoreUnavailable
from .models.contract import InvalidInput, ItemFailed
from .runtime.runner import ModelUnavailable, Overloaded, QueueFull, QueueTimeout

log = logging.getLogger("maas.server")

_TYPES = {401: "authentication_error", 403: "permission_error", 404: "not_found_error",
          429: "rate_limit_error", 503: "service_unavailable_error"}


class APIError(Exception):
    """An error the client can act on. Raise it anywhere in the wire layer."""

    def __init__(self, message: str, *, status: int = 400, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.param = param
        self.code = code
        self.headers = headers or {}


def error_body(status: int, message: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    error_type = _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"type": error_type, "message": message, "param": param, "code": code}}


def error_response(error: APIError) -> Response:
    response = jsonify(error_body(error.status, error.message, error.param, error.code))
    response.status_code = error.status
    response.headers.update(error.headers)
    return response


def validation_error(exc: ValidationError) -> APIError:
    """400 naming the first invalid field (as OpenAI answers; never 422), e.g. `temperature: Input should be <= 2`."""
    first = exc.errors()[0]
    param = _path(first["loc"]) or None
    message = "; ".join(f"{_path(e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()[:5])
    return APIError(message, status=400, param=param, code="invalid_value")


_TYPE_TAGS = frozenset({"str", "int", "float", "bool", "none", "dict", "list"})


def _path(loc: tuple[int | str, ...]) -> str:
    """`prompt`, `messages.0.content`: the field's path without pydantic's union-member tags (`prompt.str`)."""
    return ".".join(str(p) for p in loc if not (isinstance(p, str) and (p in _TYPE_TAGS or "[" in p)))


def overloaded(exc: Overloaded) -> APIError:
    """503 at once for a request that would wait past its deadline, saying when to come back."""
    retry_after = _retry_seconds(exc.retry_after)
    return APIError(f"{exc}; retry in {retry_after}s or on another instance", status=503, code="overloaded",
                    headers={"Retry-After": str(retry_after)})


def unavailable(exc: ModelUnavailable) -> APIError:
    """503 for a model that cannot be reached now (its replicas elsewhere are down), saying when to come back."""
    retry_after = _retry_seconds(exc.retry_after)
    return APIError(str(exc), status=503, code="model_unavailable", headers={"Retry-After": str(retry_after)})


def _retry_seconds(estimate: float) -> int:
    """Retry-After in whole seconds: at least 1, at most a minute."""
    return min(60, max(1, math.ceil(estimate)))


def item_failed(exc: ItemFailed) -> APIError:
    """500 for one input the model fails on, marked so that clients do not send it again."""
    log.error("model failed on one input in request %s: %s", getattr(g, "request_id", "unknown"), exc)
    return APIError(f"{exc}; the request id is {getattr(g, 'request_id', 'unknown')}", status=500,
                    code="model_error", headers={"x-should-retry": "false"})


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(APIError, error_response)
    app.register_error_handler(InvalidInput, lambda e: error_response(APIError(str(e), param=e.param, code=e.code)))
    app.register_error_handler(ValidationError, lambda e: error_response(validation_error(e)))
    app.register_error_handler(
        QueueFull, lambda e: error_response(APIError(f"{e}; retry shortly", status=503, code="queue_full",
                                                     headers={"Retry-After": "1"})))
    app.register_error_handler(Overloaded, lambda e: error_response(overloaded(e)))
    app.register_error_handler(
        QueueTimeout, lambda e: error_response(APIError(f"{e}; retry later", status=503, code="queue_timeout",
                                                        headers={"Retry-After": "5"})))
    app.register_error_handler(ModelUnavailable, lambda e: error_response(unavailable(e)))
    app.register_error_handler(ItemFailed, lambda e: error_response(item_failed(e)))
    app.register_error_handler(StoreUnavailable, _store_unavailable)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)


def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    allowed = getattr(exc, "valid_methods", None)  # MethodNotAllowed's; a bare 405 has none
    messages = {
        404: "no such route; see /openapi.json for the API",
        405: f"method not allowed; allowed: {', '.join(sorted(allowed))}" if allowed else "method not allowed",
        413: "request body too large; see the server's max_body_bytes limit",
    }
    codes = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}
    # Werkzeug's own headers stay: a 405 must carry Allow (RFC 9110), a 416 Content-Range...
    headers = {name: value for name, value in exc.get_headers() if name.lower() != "content-type"}
    return error_response(APIError(messages.get(status, exc.description or exc.name), status=status,
                                   code=codes.get(status), headers=headers))


def _store_unavailable(exc: StoreUnavailable) -> Response:
    # The store logs what is wrong (paths, causes) once; the client only learns to come back. It is
    # looked at again every second, so a short wait is enough.
    return error_response(APIError("the server's account store is unavailable (keys, limits and usage need it); "
                                   "retry shortly", status=503, code="store_unavailable", headers={"Retry-After": "2"}))


def _unexpected_error(exc: Exception) -> Response:
    request_id = getattr(g, "request_id", "unknown")
    log.exception("unhandled error in request %s", request_id)
    return error_response(APIError(f"internal server error (request id {request_id}); the server log has the details",
                                   status=500, code="internal_error"))
