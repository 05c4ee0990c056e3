"""The one JSON error envelope, and the handlers that turn every failure into it.

``{"error": {"type", "message", "param", "code"}}`` with the right status, whatever went wrong:
our own APIError, a model-level InvalidInput, a full queue, pydantic validation, Werkzeug's HTTP
errors (404, 405, 413...) and, for genuine bugs, a 500 that names the request id and never
carries a stack trace.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, g, jsonify
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from .models.base import InvalidInput
from .runtime.runner import QueueFull, QueueTimeout

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
    """422 naming the first invalid field, e.g. `temperature: Input should be <= 2`."""
    first = exc.errors()[0]
    param = ".".join(str(p) for p in first["loc"]) or None
    message = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()[:5])
    return APIError(message, status=422, param=param, code="invalid_value")


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(APIError, error_response)
    app.register_error_handler(InvalidInput, lambda e: error_response(APIError(str(e), param=e.param, code=e.code)))
    app.register_error_handler(ValidationError, lambda e: error_response(validation_error(e)))
    app.register_error_handler(
        QueueFull, lambda e: error_response(APIError(f"{e}; retry shortly", status=503, code="queue_full",
                                                     headers={"Retry-After": "1"})))
    app.register_error_handler(
        QueueTimeout, lambda e: error_response(APIError(f"{e}; retry later", status=503, code="queue_timeout",
                                                        headers={"Retry-After": "5"})))
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)


def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    messages = {
        404: "no such route; see /openapi.json for the API",
        405: f"method not allowed; allowed: {', '.join(sorted(exc.valid_methods or []))}"
        if getattr(exc, "valid_methods", None) else "method not allowed",
        413: "request body too large; see the server's max_body_bytes limit",
    }
    codes = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}
    # Werkzeug's own headers stay: a 405 must carry Allow (RFC 9110), a 416 Content-Range...
    headers = {name: value for name, value in exc.get_headers() if name.lower() != "content-type"}
    return error_response(APIError(messages.get(status, exc.description or exc.name), status=status,
                                   code=codes.get(status), headers=headers))


def _unexpected_error(exc: Exception) -> Response:
    request_id = getattr(g, "request_id", "unknown")
    log.exception("unhandled error in request %s", request_id)
    return error_response(APIError(f"internal server error (request id {request_id}); the server log has the details",
                                   status=500, code="internal_error"))
