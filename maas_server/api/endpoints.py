"""One record per endpoint: the single place a route's facts are written.

An endpoint family (one wire module, or a small package) declares each of its endpoints with
``@family.post(path, ...)`` (or ``.get``, ``.patch``, ``.delete``) on its view. The record holds the
path, the verb, the request and response models with examples, the model methods the endpoint serves,
whether its bodies carry personal data and who may call it. Everything else derives from the records:
the Flask rules, /openapi.json (api/openapi.py), the model lookup of a request (`resolve_model`), the
endpoints /v1/models lists per model, the log's personal-data rule, the admin check and the API-path
check of the admission layer. tests/server/test_endpoints.py holds every Flask route to a record.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from flask import Blueprint
from pydantic import BaseModel

from ..models.contract import Method, ModelDescription

Verb = Literal["get", "post", "patch", "delete"]
# Who may call an endpoint: anyone (probes, this description), a caller with a key where the server asks for
# one, an admin key only, or the metrics scraper (its own token).
Access = Literal["public", "key", "admin", "metrics"]

F = TypeVar("F", bound=Callable[..., Any])

_PARAMETER = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Endpoint:
    """One operation of the API: how to reach it, what it takes and answers, and what it serves."""

    verb: Verb
    path: str  # OpenAPI's template: /v1/models/{model}
    summary: str
    request: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    events: type[BaseModel] | None = None  # with `stream: true` the answer is server-sent events of these
    multipart: dict[str, Any] | None = None  # a multipart/form-data body besides the JSON one
    text: str | None = None  # a text/plain answer instead of JSON (its description)
    parameters: tuple[dict[str, Any], ...] = ()  # path and query parameters, as OpenAPI writes them
    examples: dict[str, dict[str, Any]] = field(default_factory=dict)  # JSON request bodies, by name
    errors: tuple[int, ...] | None = None  # None: the usual ones for the verb and access (api/openapi.py)
    more_errors: tuple[int, ...] = ()  # besides the usual ones
    multipart_only: bool = False  # the request is only the multipart form (no JSON body)
    raw_body: dict[str, Any] | None = None  # a request body that is a file itself (any content type)
    alternatives: tuple[type[BaseModel], ...] = ()  # other JSON answers than `response` (by a request field)
    request_alternatives: tuple[type[BaseModel], ...] = ()  # other JSON bodies than `request` (by the model's task)
    done: bool = True  # an event stream ends with `data: [DONE]` (OpenAI's; TGI's streams just end)
    tag: str | None = None  # the group /openapi.json lists the operation under
    serves: tuple[Method[Any, Any], ...] = ()  # the model methods it calls, the usual one first
    personal_data: bool = False  # faces, voices: bodies never logged, whatever log_content says
    polled: bool = False  # probes and scrapes, called every few seconds: their log lines are at debug level
    # Whether a loaded model that offers `serves` can serve it (a speech model translates only if multilingual).
    offered: Callable[[ModelDescription], bool] | None = None
    access: Access = "key"
    view: str = ""  # the Flask endpoint name ("family.function"), set when the family registers the view

    @property
    def rule(self) -> str:
        """The Flask rule: {model} matches a name with slashes (hub ids), an integer parameter an int."""
        return _PARAMETER.sub(lambda match: f"<{self._converter(match.group(1))}:{match.group(1)}>", self.path)

    @property
    def takes_model_in_path(self) -> bool:
        return "{model}" in self.path

    @property
    def authenticated(self) -> bool:
        return self.access in ("key", "admin")

    def _converter(self, name: str) -> str:
        if name == "model":
            return "path"
        schema: dict[str, Any] = next((p.get("schema", {}) for p in self.parameters if p.get("name") == name), {})
        return "int" if schema.get("type") == "integer" else "string"


class Family:
    """An endpoint family: its blueprint and the records of the endpoints its views serve."""

    def __init__(self, name: str, import_name: str) -> None:
        self.blueprint = Blueprint(name, import_name)
        self.endpoints: list[Endpoint] = []

    def get(self, path: str, summary: str, **facts: Any) -> Callable[[F], F]:
        return self.route("get", path, summary, **facts)

    def post(self, path: str, summary: str, **facts: Any) -> Callable[[F], F]:
        return self.route("post", path, summary, **facts)

    def patch(self, path: str, summary: str, **facts: Any) -> Callable[[F], F]:
        return self.route("patch", path, summary, **facts)

    def delete(self, path: str, summary: str, **facts: Any) -> Callable[[F], F]:
        return self.route("delete", path, summary, **facts)

    def route(self, verb: Verb, path: str, summary: str, **facts: Any) -> Callable[[F], F]:
        """Declare an endpoint and register the decorated function as its view."""
        def register(view: F) -> F:
            endpoint = Endpoint(verb, path, summary, view=f"{self.blueprint.name}.{view.__name__}", **facts)
            self.blueprint.add_url_rule(endpoint.rule, view.__name__, view, methods=[verb.upper()])
            self.endpoints.append(endpoint)
            return view
        return register


def api_prefixes(endpoints: Iterable[Endpoint]) -> tuple[str, ...]:
    """The first path segments of the authenticated endpoints ("/v1/", "/models/"): the paths the admission
    layer counts, accounting authenticates and meters, and draining refuses, matched or not."""
    return tuple(sorted({"/" + e.path.split("/")[1] + "/" for e in endpoints if e.authenticated}))
