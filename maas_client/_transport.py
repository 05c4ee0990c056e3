"""The one module that touches ``requests``.

Every call goes through :meth:`Transport.request` or :meth:`Transport.stream`, which add the
headers (User-Agent, X-Request-ID, Authorization), apply the timeouts, run the retry policy,
turn ``requests`` exceptions and error statuses into :mod:`maas_client.errors`, and log each
attempt to the ``maas`` logger (method, URL, status, latency; never the key or a body).
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import requests
import urllib3
from pydantic import BaseModel, ValidationError
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from ._retry import retrying
from ._streaming import Stream
from ._version import __version__
from .errors import APIConnectionError, APIError, APIStatusError, APITimeoutError, status_error_class

M = TypeVar("M", bound=BaseModel)

USER_AGENT = f"maas-python/{__version__}"
logger = logging.getLogger("maas")


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


def configure_logging() -> None:
    """``MAAS_LOG=debug`` turns on the ``maas`` logger, printing to stderr."""
    if os.environ.get("MAAS_LOG", "").strip().lower() != "debug":
        return
    logger.setLevel(logging.DEBUG)
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("[%(asctime)s] %(name)s %(levelname)s %(message)s"))
        logger.addHandler(handler)


def new_session() -> requests.Session:
    """A session whose pool keeps enough connections for a client shared by many threads."""
    session = requests.Session()
    # requests keeps 10 connections per host by default; a client shared by dozens of threads
    # would open and drop connections beyond that (with a warning each time).
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=64)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def normalize_base_url(base_url: str) -> str:
    """``http://host:8000``, ``http://host:8000/`` and ``http://host:8000/v1`` are one server:
    paths carry ``/v1`` themselves, and OpenAI-style base URLs end in it."""
    base_url = base_url.rstrip("/")
    return base_url.removesuffix("/v1")


@dataclass(frozen=True)
class _Call:
    method: str
    path: str
    url: str
    headers: CaseInsensitiveDict[str]
    timeout: tuple[float | None, float | None]
    stream: bool

    @property
    def request_id(self) -> str:
        return self.headers["X-Request-ID"]


@dataclass(frozen=True)
class Transport:
    """Connection settings plus the request path; immutable, so safe to share across threads."""

    base_url: str
    api_key: str | None = field(repr=False)  # never in reprs, logs or tracebacks
    timeout: Timeout
    max_retries: int
    session: requests.Session = field(repr=False)

    def request(
        self,
        method: str,
        path: str,
        result: type[M],
        *,
        json: Any = None,
        files: Any = None,
        data: Any = None,
        timeout: TimeoutTypes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> M:
        """Send one call (retrying per policy) and parse its JSON body as ``result``."""
        call = self._prepare(method, path, timeout, headers, stream=False)
        response = retrying(self.max_retries, f"{method} {call.url}")(
            self._send, call, json=json, files=files, data=data
        )
        try:
            payload = response.json()
        except ValueError as exc:
            raise APIError(
                f"{method} {path}: the server answered {response.status_code} with a body that "
                f"is not JSON ({response.headers.get('Content-Type', 'no content type')}); "
                "is the base URL right?",
                request_id=_request_id(response, call),
            ) from exc
        return validate(result, payload, _request_id(response, call))

    def stream(
        self,
        path: str,
        chunk: type[M],
        *,
        json: Any,
        timeout: TimeoutTypes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Stream[M]:
        """POST and return the event stream of ``chunk`` objects.

        The retry covers everything up to the first event: once a chunk may have reached the
        caller, repeating the call would duplicate output, so later failures are raised.
        """
        call = self._prepare("POST", path, timeout, headers, stream=True)
        return retrying(self.max_retries, f"POST {call.url}")(self._open_stream, call, chunk, json)

    def _prepare(
        self,
        method: str,
        path: str,
        timeout: TimeoutTypes | None,
        headers: Mapping[str, str] | None,
        *,
        stream: bool,
    ) -> _Call:
        merged: CaseInsensitiveDict[str] = CaseInsensitiveDict()
        merged["User-Agent"] = USER_AGENT
        merged["Accept"] = "text/event-stream" if stream else "application/json"
        # One id per call, kept across its retries, so server logs group the attempts.
        merged["X-Request-ID"] = str(uuid.uuid4())
        if self.api_key:
            merged["Authorization"] = f"Bearer {self.api_key}"
        merged.update(headers or {})
        limits = Timeout.of(timeout) if timeout is not None else self.timeout
        return _Call(
            method, path, self.base_url + path, merged, (limits.connect, limits.read), stream
        )

    def _send(self, call: _Call, **body: Any) -> requests.Response:
        started = time.monotonic()
        try:
            response = self.session.request(
                call.method, call.url, headers=call.headers, timeout=call.timeout,
                stream=call.stream, **body,
            )
        except requests.RequestException as exc:
            logger.debug("%s %s failed: %s", call.method, call.url, type(exc).__name__)
            raise connection_error(exc, call) from exc
        logger.debug(
            "%s %s -> %d in %.0f ms (request id %s)", call.method, call.url,
            response.status_code, (time.monotonic() - started) * 1000, _request_id(response, call),
        )
        if response.status_code >= 400:
            raise status_error(response, call)
        return response

    def _open_stream(self, call: _Call, chunk: type[M], body: Any) -> Stream[M]:
        response = self._send(call, json=body)
        request_id = _request_id(response, call)
        stream: Stream[M] = Stream(
            _iter_bytes(response, call),
            parse=lambda payload: validate(chunk, payload, request_id),
            close=response.close,
            request_id=request_id,
        )
        try:
            _require_event_stream(response, call)
            stream.prefetch()
        except BaseException:
            stream.close()
            raise
        return stream


def _iter_bytes(response: requests.Response, call: _Call) -> Iterator[bytes]:
    # chunk_size=None yields each chunk as it arrives (chunked transfer), so events are
    # decoded as soon as the server sends them rather than after a fixed-size buffer fills.
    try:
        yield from response.iter_content(chunk_size=None)
    except requests.RequestException as exc:
        raise connection_error(exc, call, mid_stream=True) from exc


def _require_event_stream(response: requests.Response, call: _Call) -> None:
    content_type = response.headers.get("Content-Type", "")
    if content_type and not content_type.startswith("text/event-stream"):
        raise APIError(
            f"POST {call.path}: asked for a stream but the server answered {content_type}; "
            "does this server support stream=True?",
            request_id=_request_id(response, call),
        )


def connection_error(
    exc: requests.RequestException, call: _Call, *, mid_stream: bool = False
) -> APIConnectionError:
    """The maas exception for a ``requests`` failure that left no usable response."""
    where = f"{call.method} {call.url}"
    if _is_timeout(exc):
        connect, read = call.timeout
        return APITimeoutError(
            f"{where} timed out (connect {connect} s, read {read} s); pass a larger timeout=, "
            "e.g. client.with_options(timeout=...)",
            request_id=call.request_id,
        )
    what = "The connection broke mid-stream" if mid_stream else "Could not reach the server"
    return APIConnectionError(
        f"{what} ({where}): {_reason(exc)}. Check that the server is running and that base_url "
        "(or MAAS_BASE_URL) points at it.",
        request_id=call.request_id,
    )


def _reason(exc: requests.RequestException) -> str:
    # requests nests urllib3's errors ("HTTPConnectionPool(...): Max retries exceeded ...
    # (Caused by ...)"); the OS error at the bottom is the part a person can act on.
    cause = exc.args[0] if exc.args else exc
    text = str(getattr(cause, "reason", None) or cause)
    return text[text.index("[Errno"):].rstrip("')\"") if "[Errno" in text else text


def _is_timeout(exc: requests.RequestException) -> bool:
    # While a body is read, requests reports a read timeout as a ConnectionError that wraps
    # urllib3's ReadTimeoutError rather than as requests.Timeout.
    cause = exc.args[0] if exc.args else None
    return isinstance(exc, requests.Timeout) or isinstance(cause, urllib3.exceptions.ReadTimeoutError)


def status_error(response: requests.Response, call: _Call) -> APIStatusError:
    """The maas exception for a 4xx/5xx response (reads the body, then closes it)."""
    body = _error_body(response)
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        error = {"message": error if isinstance(error, str) else _fallback_message(body)}
    message = error.get("message") or response.reason or "no message"
    return status_error_class(response.status_code)(
        f"{call.method} {call.path}: {message}",
        status_code=response.status_code,
        response=response,
        body=body,
        request_id=_request_id(response, call),
        type=_str_or_none(error.get("type")),
        param=_str_or_none(error.get("param")),
        code=_str_or_none(error.get("code")),
    )


def _error_body(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text
    except requests.RequestException:  # the error body itself could not be read
        return None
    finally:
        response.close()


def _fallback_message(body: Any) -> str | None:
    # Not the maas/OpenAI envelope: e.g. a proxy's HTML page or a framework's {"detail": ...}.
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])
    text = "" if body is None else str(body).strip()
    return text[:300] or None


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _request_id(response: requests.Response, call: _Call) -> str:
    return response.headers.get("X-Request-ID") or call.request_id


def validate(model: type[M], payload: Any, request_id: str | None) -> M:
    """Parse a decoded JSON payload as ``model``; a mismatch is the server's fault."""
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise APIError(
            f"The server's response is not a valid {model.__name__}: {exc}",
            request_id=request_id,
        ) from exc
