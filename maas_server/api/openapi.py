"""GET /openapi.json, generated from the endpoints' records (api/endpoints.py).

Each record gives an operation its request and response models, the content types it speaks (JSON,
server-sent events, multipart, Prometheus text), its parameters and examples; this module adds what
follows from the record's access and verb: the credentials it needs and the error statuses it can
answer with (always the one error envelope). Schemathesis checks that the answers match.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from .. import __version__
from ._common import MAX_REQUEST_TIMEOUT_S, MIN_REQUEST_TIMEOUT_S, state
from .endpoints import Endpoint, Family
from .hf import schemas as hf
from .models import Readiness
from .wire import ErrorResponse

family = Family("openapi", __name__)

_REF = "#/components/schemas/{model}"

# Which error statuses a route answers with, and what each means there.
_ERRORS = {
    400: "Invalid request: malformed JSON, wrong content type, a body cut short, a key in the URL "
         "(`api_key_in_url`), or a field's value invalid or over a limit (`param` names it)",
    401: "Missing, unknown, revoked or expired API key (the server's auth mode decides when a key is needed)",
    403: "The key may not use this model or task (`model_not_allowed`, `task_not_allowed`), a call that is not "
         "an admin key's to /v1/admin/ (`admin_required`), or, served without a key, sent by a browser from another "
         "origin than the server's own or its `cors_origins` (`cross_origin_refused`)",
    409: "An active key with this name exists (`key_exists`)",
    404: "Unknown model (`model_not_found`)",
    413: "Body, image bytes or image pixels over the server's limits",
    429: "The key's requests or tokens per minute are used up",
    408: "The request's headers or body did not arrive within the server's deadlines (`request_timeout`)",
    421: "Served without a key, and its Host is none of the server's `allowed_hosts`, localhost or an IP address "
         "(`host_not_allowed`)",
    500: "`model_error`: the model failed on this input alone (sent with x-should-retry: false); "
         "`internal_error`: a bug. The message carries the request id, never a stack trace",
    503: "Over capacity or past the request's deadline (`overloaded`, at once), a model still loading, "
         "its queue full or timed out, the account store unavailable, or the server draining",
}
_POST_ERRORS = (400, 401, 403, 404, 408, 413, 421, 429, 500, 503)
_GET_ERRORS = (400, 401, 421, 429, 500, 503)
_ADMIN_ERRORS = (400, 401, 403, 404, 421, 429, 500, 503)
_RETRY_AFTER = (429, 503)


# Every route that queues work for a model takes the caller's deadline (api/_common.py).
_REQUEST_TIMEOUT: dict[str, Any] = {
    "name": "X-Request-Timeout", "in": "header", "required": False,
    "description": "Seconds the caller will wait for the model to start on the request; a request the "
                   "server estimates would wait longer gets 503 `overloaded` at once (default: the "
                   "model's queue_timeout_s; at most the server's max_request_timeout_s, 300 s by default)",
    "schema": {"type": "number", "minimum": MIN_REQUEST_TIMEOUT_S, "maximum": MAX_REQUEST_TIMEOUT_S},
}


_V1: list[dict[str, list[str]]] = [{"bearer": []}]
_SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "public": [], "key": _V1, "admin": _V1, "metrics": [{"metricsToken": []}, {}]}

TAGS = [{"name": "admin", "description": "Managing keys, reading usage and the audit log; admin keys only "
                                         "(`maas-server keys create --admin`), everyone else gets 403 "
                                         "`admin_required`"}]


@family.get("/openapi.json", "This description", access="public")
def openapi() -> Any:
    return build_openapi(state().endpoints.values())


def build_openapi(endpoints: Iterable[Endpoint]) -> dict[str, Any]:
    """The OpenAPI 3.1 document for the endpoints' records."""
    endpoints = list(endpoints)
    paths: dict[str, Any] = {}
    for endpoint in endpoints:
        paths.setdefault(endpoint.path, {})[endpoint.verb] = _operation(endpoint)
    return {
        "openapi": "3.1.0",
        "info": {"title": "maas", "version": __version__,
                 "description": "Model-as-a-Service: OpenAI-compatible completions, chat, embeddings and models; "
                                "classification for text and images; named entities; personal data. Every error "
                                "is the JSON envelope `{\"error\": {\"type\", \"message\", \"param\", \"code\"}}`."},
        "paths": paths,
        "tags": TAGS,
        "components": {"schemas": _component_schemas(endpoints), "headers": _HEADERS,
                       "securitySchemes": _SECURITY_SCHEMES},
    }


def _component_schemas(endpoints: list[Endpoint]) -> dict[str, Any]:
    models = {m for e in endpoints for m in (e.request, e.response, e.events, *e.alternatives, *e.request_alternatives)
              if m is not None}
    models |= {ErrorResponse, hf.TGIStreamError}
    _, schemas = models_json_schema([(m, "validation") for m in sorted(models, key=lambda m: m.__name__)],
                                    ref_template=_REF)
    return schemas.get("$defs", {})  # type: ignore[no-any-return]


def _operation(route: Endpoint) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": route.summary, "responses": _responses(route)}
    if route.tag is not None:
        op["tags"] = [route.tag]
    # Every route that queues work for a model takes the caller's deadline.
    parameters = [*route.parameters, *([_REQUEST_TIMEOUT] if route.serves else [])]
    if parameters:
        op["parameters"] = parameters
    if route.request is not None:
        content = {} if route.multipart_only else _json(route.request, *route.request_alternatives)
        if route.examples:
            content["application/json"]["examples"] = {name: {"value": value} for name, value in route.examples.items()}
        if route.multipart is not None:
            content["multipart/form-data"] = {"schema": route.multipart}
        op["requestBody"] = {"required": True, "content": content}
    if route.raw_body is not None:
        body = op.setdefault("requestBody", {"required": True, "content": {}})
        body["content"]["application/octet-stream"] = {"schema": route.raw_body}
    op["security"] = _SECURITY[route.access]
    return op


def _responses(route: Endpoint) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": "OK", "headers": {"X-Request-ID": {"$ref": "#/components/headers/RequestId"}}}
    if route.response is not None:
        ok["content"] = _json(route.response, *route.alternatives)
        if route.text is not None:
            ok["content"]["text/plain"] = {"schema": {"type": "string", "description": route.text}}
    elif route.text is not None:
        ok["content"] = {"text/plain": {"schema": {"type": "string", "description": route.text}}}
    elif route.events is None:
        ok["content"] = {"application/json": {"schema": {"type": "object"}}}
    if route.events is not None:
        ok.setdefault("content", {})["text/event-stream"] = {"schema": _event(route.events, route.done)}
    responses = {"200": ok}
    if route.response is Readiness:  # /ready answers 503 with the same body, not the error envelope
        responses["503"] = {"description": "Not ready yet, or draining", "content": _json(Readiness)}
    for status in sorted(_errors(route)):
        responses[str(status)] = _error(status)
    return responses


def _errors(route: Endpoint) -> set[int]:
    """The statuses an endpoint answers errors with: its own list, or the usual ones for its access and verb."""
    if route.errors is not None:
        usual: tuple[int, ...] = route.errors
    elif route.access == "admin":
        usual = _ADMIN_ERRORS
    elif route.access == "key":
        usual = _GET_ERRORS if route.verb == "get" else _POST_ERRORS
    else:
        usual = (400, 401) if route.access == "metrics" else (400,)
    return {*usual, *route.more_errors}


def _error(status: int) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": _ERRORS[status], "content": _json(ErrorResponse),
                              "headers": {"X-Request-ID": {"$ref": "#/components/headers/RequestId"}}}
    if status in _RETRY_AFTER:
        answer["headers"]["Retry-After"] = {"$ref": "#/components/headers/RetryAfter"}
    return answer


def _json(model: type[BaseModel], *alternatives: type[BaseModel]) -> dict[str, Any]:
    refs = [{"$ref": _REF.format(model=m.__name__)} for m in (model, *alternatives)]
    return {"application/json": {"schema": {"anyOf": refs} if alternatives else refs[0]}}


def _event(chunk: type[BaseModel], done: bool) -> dict[str, Any]:
    error = ErrorResponse if done else hf.TGIStreamError  # TGI's streams end with its own error shape
    """One server-sent event: a JSON chunk, an error after the stream began, or the final [DONE]."""
    json_data = {"type": "string", "contentMediaType": "application/json",
                 "contentSchema": {"anyOf": [{"$ref": _REF.format(model=chunk.__name__)},
                                             {"$ref": _REF.format(model=error.__name__)}]}}
    last = ", and last `data: [DONE]`" if done else ""
    return {"type": "object", "required": ["data"],
            "description": f"One event: `data: <{chunk.__name__} JSON>` for each piece of text, "
                           f"`data: {{\"error\": ...}}` when generation fails after the stream began{last}.",
            "properties": {"data": {"anyOf": [{"const": "[DONE]"}, json_data] if done else [json_data]}}}


_HEADERS = {
    "RequestId": {"description": "The client's X-Request-ID, echoed, or a new one; it names the request's log line",
                  "required": True, "schema": {"type": "string"}},
    "RetryAfter": {"description": "Seconds to wait before retrying", "required": True,
                   "schema": {"type": "string", "pattern": "^[0-9]+$"}},
}
_SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer",
               "description": "An API key from `maas-server keys create`, as `Authorization: Bearer <key>` (never in "
                              "the URL). Whether a call may omit it is the server's auth mode (MAAS_AUTH)."},
    "metricsToken": {"type": "http", "scheme": "bearer",
                     "description": "$MAAS_METRICS_TOKEN; needed only when the server sets it"},
}
