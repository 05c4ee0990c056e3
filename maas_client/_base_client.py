"""What :class:`~maas_client.Client` and :class:`~maas_client.AsyncClient` share: everything but I/O.

A client method only builds an :class:`APIRequest` (a whole JSON answer) or a
:class:`StreamRequest` (an event stream): path, body, and how to read the answer. The two
transports (``_transport.py`` on requests, ``_async_transport.py`` on httpx) execute it with the
helpers below, so headers, the default model, error mapping, logging, validation and the retry
policy (``_retry.py``) exist once, for both.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Generic, Self, TypeVar, cast

from pydantic import BaseModel, ValidationError

from ._response import RawResponse
from ._version import __version__
from .errors import APIConnectionError, APIError, APIStatusError, APITimeoutError, MaasError, status_error_class
from .types import ModelInfo, _Response

T = TypeVar("T")
S = TypeVar("S")  # a Stream or an AsyncStream
R = TypeVar("R")
M = TypeVar("M", bound=BaseModel)

USER_AGENT = f"maas-python/{__version__}"
DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_MAX_RETRIES = 2
MODELS = "/v1/models"

logger = logging.getLogger("maas")


# ---------------------------------------------------------------------- options


@dataclass(frozen=True)
class Timeout:
    """Connect and read timeouts in seconds (``None``: wait forever).

    ``read`` bounds each wait for data, not the whole call: for a stream it is the longest
    pause between two chunks. The default matches openai-python: 5 s to connect, 600 s to read.
    """

    connect: float | None = 5.0
    read: float | None = 600.0

    @classmethod
    def of(cls, value: TimeoutTypes) -> Timeout:
        """A float (both timeouts), a ``(connect, read)`` tuple, or a Timeout."""
        if isinstance(value, Timeout):
            return value
        if isinstance(value, tuple):
            connect, read = value
            return cls(connect=_seconds(connect), read=_seconds(read))
        return cls(connect=float(value), read=float(value))


def _seconds(value: float | None) -> float | None:
    return None if value is None else float(value)


TimeoutTypes = float | tuple[float | None, float | None] | Timeout


@dataclass(frozen=True)
class ClientOptions:
    """A client's connection settings; immutable, so one client is safe to share."""

    base_url: str
    api_key: str | None = field(repr=False)  # never in reprs, logs or tracebacks
    timeout: Timeout
    max_retries: int

    @classmethod
    def resolve(
        cls, base_url: str | None, api_key: str | None, timeout: TimeoutTypes | None, max_retries: int | None
    ) -> ClientOptions:
        """Arguments, else ``MAAS_*`` variables, else the defaults."""
        return cls(
            base_url=check_base_url(base_url or os.environ.get("MAAS_BASE_URL") or DEFAULT_BASE_URL),
            api_key=api_key if api_key is not None else os.environ.get("MAAS_API_KEY") or None,
            timeout=Timeout.of(timeout) if timeout is not None else Timeout(),
            max_retries=check_retries(DEFAULT_MAX_RETRIES if max_retries is None else max_retries),
        )

    def changed(
        self, base_url: str | None, api_key: str | None, timeout: TimeoutTypes | None, max_retries: int | None
    ) -> ClientOptions:
        changes: dict[str, Any] = {}
        if base_url is not None:
            changes["base_url"] = check_base_url(base_url)
        if api_key is not None:
            changes["api_key"] = api_key
        if timeout is not None:
            changes["timeout"] = Timeout.of(timeout)
        if max_retries is not None:
            changes["max_retries"] = check_retries(max_retries)
        return replace(self, **changes)


def check_base_url(base_url: str) -> str:
    if not base_url.startswith(("http://", "https://")):
        raise MaasError(
            f"base_url must start with http:// or https://, got {base_url!r} "
            "(set it with base_url= or MAAS_BASE_URL)."
        )
    return normalize_base_url(base_url)


def normalize_base_url(base_url: str) -> str:
    """``http://host:8000``, ``http://host:8000/`` and ``http://host:8000/v1`` are one server:
    paths carry ``/v1`` themselves, and OpenAI-style base URLs end in it."""
    return base_url.rstrip("/").removesuffix("/v1")


def check_retries(max_retries: int) -> int:
    if max_retries < 0:
        raise ValueError(f"max_retries must be 0 or more, got {max_retries}")
    return max_retries


def configure_logging() -> None:
    """``MAAS_LOG=debug`` turns on the ``maas`` logger, printing to stderr."""
    if os.environ.get("MAAS_LOG", "").strip().lower() != "debug":
        return
    logger.setLevel(logging.DEBUG)
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("[%(asctime)s] %(name)s %(levelname)s %(message)s"))
        logger.addHandler(handler)


# ---------------------------------------------------------------------- what a method asks for


@dataclass(frozen=True)
class RequestOptions:
    """The per-call options every method takes."""

    timeout: TimeoutTypes | None = None
    extra_headers: Mapping[str, str] | None = None
    extra_body: Mapping[str, Any] | None = None  # merged into the JSON body or the form, over the method's fields
    extra_query: Mapping[str, str] | None = None


FilePart = tuple[str, tuple[str, bytes, str]]  # (field, (filename, content, content type))


@dataclass(frozen=True, kw_only=True)
class _Call:
    method: str
    path: str
    json: dict[str, Any] | None = None
    form: list[tuple[str, str]] | None = None  # multipart text fields (with files) in order
    files: list[FilePart] | None = None
    params: dict[str, str] | None = None
    #: The route whose default model fills a missing ``model`` (one ``GET /v1/models`` per client).
    model_route: str | None = None
    options: RequestOptions = RequestOptions()

    def __post_init__(self) -> None:
        extra = self.options.extra_body
        if extra and self.json is not None:
            object.__setattr__(self, "json", {**self.json, **extra})
        elif extra and self.form is not None:
            object.__setattr__(self, "form", [(k, v) for k, v in self.form if k not in extra] + _form_fields(extra))
        if self.options.extra_query:
            object.__setattr__(self, "params", {**(self.params or {}), **self.options.extra_query})

    def needs_model(self) -> bool:
        if self.model_route is None:
            return False
        if self.json is not None:
            return self.json.get("model") is None
        return not any(key == "model" for key, _ in self.form or [])

    def with_model(self, model: str) -> Self:
        # replace() runs __post_init__ again: merging extra_body twice changes nothing.
        if self.json is not None:
            return replace(self, json={"model": model, **{k: v for k, v in self.json.items() if k != "model"}})
        return replace(self, form=[("model", model), *(self.form or [])])


def _form_fields(extra: Mapping[str, Any]) -> list[tuple[str, str]]:
    fields: list[tuple[str, str]] = []
    for key, value in extra.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        fields += [(key, _form_text(v)) for v in values if v is not None]
    return fields


def _form_text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


@dataclass(frozen=True, kw_only=True)
class APIRequest(_Call, Generic[T]):
    """A call whose answer is one JSON body, read by ``parse(payload, request_id)``."""

    parse: Callable[[Any, str], T]


@dataclass(frozen=True, kw_only=True)
class StreamRequest(_Call, Generic[T]):
    """A call answered by an event stream; ``parse(payload, request_id)`` reads each event."""

    method: str = "POST"
    parse: Callable[[Any, str], T]


def returning(model: type[M]) -> Callable[[Any, str], M]:
    """Read the answer as ``model``."""
    return lambda payload, request_id: validate(model, payload, request_id)


def returning_then(model: type[M], then: Callable[[M], T]) -> Callable[[Any, str], T]:
    """Read the answer as ``model``, then finish it with ``then`` (e.g. keep the texts sent)."""
    return lambda payload, request_id: then(validate(model, payload, request_id))


def validate(model: type[M], payload: Any, request_id: str | None) -> M:
    """Parse a decoded JSON payload as ``model``; a mismatch is the server's fault."""
    try:
        result = model.model_validate(payload)
    except ValidationError as exc:
        raise APIError(
            f"The server's response is not a valid {model.__name__}: {exc}",
            request_id=request_id,
        ) from exc
    if isinstance(result, _Response):
        result._stamp(request_id)
    return result


# ---------------------------------------------------------------------- one attempt on the wire


@dataclass(frozen=True)
class Prepared:
    """A call ready to send: URL, headers (one request id kept across retries), timeouts."""

    method: str
    path: str
    url: str
    headers: dict[str, str]
    timeout: Timeout
    stream: bool

    @property
    def request_id(self) -> str:
        return _header(self.headers, "X-Request-ID") or ""

    @property
    def what(self) -> str:
        return f"{self.method} {self.url}"


def prepare(options: ClientOptions, call: _Call) -> Prepared:
    stream = isinstance(call, StreamRequest)
    headers = {
        "User-Agent": USER_AGENT,
        "Accept": "text/event-stream" if stream else "application/json",
        # One id per call, kept across its retries, so server logs group the attempts.
        "X-Request-ID": str(uuid.uuid4()),
    }
    if options.api_key:
        headers["Authorization"] = f"Bearer {options.api_key}"
    for name, value in (call.options.extra_headers or {}).items():
        headers = {k: v for k, v in headers.items() if k.lower() != name.lower()}
        headers[name] = value
    limits = Timeout.of(call.options.timeout) if call.options.timeout is not None else options.timeout
    return Prepared(call.method, call.path, options.base_url + call.path, headers, limits, stream)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    return None


def request_id_of(headers: Mapping[str, str], prepared: Prepared) -> str:
    """The server's request id (it may assign its own), else the one we sent."""
    return headers.get("X-Request-ID") or prepared.request_id


def log_response(prepared: Prepared, status: int, started: float, request_id: str) -> None:
    logger.debug("%s -> %d in %.0f ms (request id %s)", prepared.what, status,
                 (time.monotonic() - started) * 1000, request_id)


def decode_json(prepared: Prepared, status: int, headers: Mapping[str, str], content: bytes) -> Any:
    """A successful answer's JSON body."""
    try:
        return json.loads(content)
    except ValueError as exc:
        raise APIError(
            f"{prepared.method} {prepared.path}: the server answered {status} with a body that "
            f"is not JSON ({headers.get('Content-Type', 'no content type')}); is the base URL right?",
            request_id=request_id_of(headers, prepared),
        ) from exc


def check_event_stream(prepared: Prepared, headers: Mapping[str, str]) -> None:
    content_type = headers.get("Content-Type", "")
    if content_type and not content_type.startswith("text/event-stream"):
        raise APIError(
            f"{prepared.method} {prepared.path}: asked for a stream but the server answered {content_type}; "
            "does this server support stream=True?",
            request_id=request_id_of(headers, prepared),
        )


def whole_response(
    prepared: Prepared, call: APIRequest[T], http_response: Any, status: int, headers: Mapping[str, str],
    content: bytes, retries_taken: int,
) -> RawResponse[T]:
    """A whole answer, read: parsed (JSON, then the call's result type) only when asked."""
    request_id = request_id_of(headers, prepared)
    return RawResponse(
        http_response=http_response, status_code=status, headers=headers, request_id=request_id,
        method=prepared.method, url=prepared.url, content=content, retries_taken=retries_taken,
        parse=lambda: call.parse(decode_json(prepared, status, headers, content), request_id),
    )


def stream_response(
    prepared: Prepared, stream: S, http_response: Any, status: int, headers: Mapping[str, str], retries_taken: int,
) -> RawResponse[S]:
    """An opened event stream: its headers are read, its body is read by iterating ``stream``."""
    return RawResponse(
        http_response=http_response, status_code=status, headers=headers,
        request_id=request_id_of(headers, prepared), method=prepared.method, url=prepared.url, content=None,
        retries_taken=retries_taken, parse=lambda: stream,
    )


def status_error(
    prepared: Prepared, status: int, reason: str | None, headers: Mapping[str, str], text: str | None, response: Any
) -> APIStatusError:
    """The maas exception for a 4xx/5xx answer, from its (already read) body."""
    body: Any = text
    if text is not None:
        try:
            body = json.loads(text)
        except ValueError:
            pass
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        error = {"message": error if isinstance(error, str) else _fallback_message(body)}
    message = error.get("message") or reason or "no message"
    return status_error_class(status)(
        f"{prepared.method} {prepared.path}: {message}",
        status_code=status,
        response=response,
        body=body,
        request_id=request_id_of(headers, prepared),
        type=_str_or_none(error.get("type")),
        param=_str_or_none(error.get("param")),
        code=_str_or_none(error.get("code")),
    )


def _fallback_message(body: Any) -> str | None:
    # Not the maas/OpenAI envelope: e.g. a proxy's HTML page or a framework's {"detail": ...}.
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])
    text = "" if body is None else str(body).strip()
    return text[:300] or None


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def connection_error(prepared: Prepared, reason: str, *, timed_out: bool, mid_stream: bool = False
                     ) -> APIConnectionError:
    """The maas exception for a failure that left no usable response."""
    logger.debug("%s failed: %s", prepared.what, reason)
    if timed_out:
        timeout = prepared.timeout
        return APITimeoutError(
            f"{prepared.what} timed out (connect {timeout.connect} s, read {timeout.read} s); pass a larger "
            "timeout=, e.g. client.with_options(timeout=...)",
            request_id=prepared.request_id,
        )
    what = "The connection broke mid-stream" if mid_stream else "Could not reach the server"
    return APIConnectionError(
        f"{what} ({prepared.what}): {reason}. Check that the server is running and that base_url "
        "(or MAAS_BASE_URL) points at it.",
        request_id=prepared.request_id,
    )


# ---------------------------------------------------------------------- the default model


def default_model(route: str, base_url: str, models: list[ModelInfo]) -> str:
    """The first listed model that serves ``route``."""
    for info in models:
        if info.endpoints is not None and route in info.endpoints:
            return info.id
    if not models:
        raise MaasError(f"The server at {base_url} lists no models; pass model= explicitly.")
    if all(info.endpoints is None for info in models):
        raise MaasError(
            f"The server at {base_url} does not say which of its models serves {route} (its "
            "/v1/models entries carry no `endpoints`, as on OpenAI-compatible servers): pass "
            f"model= explicitly, e.g. model={models[0].id!r}."
        )
    served = ", ".join(f"{info.id} ({info.task or 'unknown task'})" for info in models)
    raise MaasError(f"No model on {base_url} serves {route}; it serves: {served}.")


# ---------------------------------------------------------------------- the clients' common part


class BaseClient(Generic[T]):
    """Options and their accessors; ``T`` is the transport (requests or httpx based)."""

    _options: ClientOptions
    _transport: T
    _owns_transport: bool
    _directory: Any  # the answer of GET /v1/models, fetched once per client for default models
    _raw = False  # a with_raw_response copy: methods answer the transport's RawResponse, unparsed

    @property
    def base_url(self) -> str:
        """The server's URL, without a trailing ``/`` or ``/v1``."""
        return self._options.base_url

    @property
    def timeout(self) -> Timeout:
        """The default timeouts of this client's calls."""
        return self._options.timeout

    @property
    def max_retries(self) -> int:
        """How many times a transient failure is retried."""
        return self._options.max_retries

    def with_options(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: TimeoutTypes | None = None,
        max_retries: int | None = None,
    ) -> Self:
        """A copy with some options changed that shares this client's connections.

        ``client.with_options(max_retries=5, timeout=10).generate(...)`` changes them for one
        call. Closing the copy does not close the shared connections; close the original.
        """
        clone = copy.copy(self)
        clone._options = self._options.changed(base_url, api_key, timeout, max_retries)
        clone._owns_transport = False
        if clone.base_url != self.base_url:
            clone._directory = type(self._directory)()
        return clone

    def _raw_copy(self) -> Self:
        """The copy behind ``with_raw_response``: the same options and connections."""
        clone = copy.copy(self)
        clone._owns_transport = False
        clone._raw = True
        return clone

    def _finish(self, response: RawResponse[R]) -> R:
        """What a method returns: the parsed result, or on a raw copy the response itself (the view's
        RawMethod descriptors give that its type)."""
        return cast(R, response) if self._raw else response.parse()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"
