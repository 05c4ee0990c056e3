"""The one module that touches ``requests``: how :class:`~maas_client.Client` executes a request.

Everything that is not I/O (headers, error mapping, logging, validation, the retry policy) is
shared with the async client in ``_base_client.py`` and ``_retry.py``; this module sends, reads
and turns ``requests`` exceptions into :mod:`maas_client.errors`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TypeVar

import requests
import urllib3
from requests.adapters import HTTPAdapter

from ._base_client import (
    APIRequest,
    ClientOptions,
    Prepared,
    StreamRequest,
    Timeout,
    TimeoutTypes,
    _Call,
    check_event_stream,
    connection_error,
    log_response,
    prepare,
    request_id_of,
    status_error,
    stream_response,
    whole_response,
)
from ._response import RawResponse
from ._retry import retries_taken, retrying
from ._streaming import Stream
from .errors import APIConnectionError

__all__ = ["SyncTransport", "Timeout", "TimeoutTypes", "new_session"]

T = TypeVar("T")


def new_session() -> requests.Session:
    """A session whose pool keeps enough connections for a client shared by many threads."""
    session = requests.Session()
    # requests keeps 10 connections per host by default; a client shared by dozens of threads
    # would open and drop connections beyond that (with a warning each time).
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=64)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


@dataclass(frozen=True)
class SyncTransport:
    """Sends calls on a ``requests.Session``; holds no options, so clients share it."""

    session: requests.Session = field(repr=False)

    def request(self, options: ClientOptions, call: APIRequest[T]) -> RawResponse[T]:
        """Send one call (retrying per policy) and read its answer's body."""
        prepared = prepare(options, call)
        controller = retrying(options.max_retries, prepared.what)
        response = controller(self._send, prepared, call)
        return whole_response(prepared, call, response, response.status_code, response.headers, response.content,
                              retries_taken(controller))

    def stream(self, options: ClientOptions, call: StreamRequest[T]) -> RawResponse[Stream[T]]:
        """Send one call and open its event stream.

        The retry covers everything up to the first event: once a chunk may have reached the
        caller, repeating the call would duplicate output, so later failures are raised.
        """
        prepared = prepare(options, call)
        controller = retrying(options.max_retries, prepared.what)
        response, stream = controller(self._open_stream, prepared, call)
        return stream_response(prepared, stream, response, response.status_code, response.headers,
                               retries_taken(controller))

    def close(self) -> None:
        self.session.close()

    def _send(self, prepared: Prepared, call: _Call) -> requests.Response:
        started = time.monotonic()
        try:
            response = self.session.request(
                prepared.method, prepared.url, headers=prepared.headers, params=call.params,
                timeout=(prepared.timeout.connect, prepared.timeout.read), stream=prepared.stream,
                json=call.json, data=call.form, files=call.files,
            )
        except requests.RequestException as exc:
            raise _connection_error(exc, prepared) from exc
        log_response(prepared, response.status_code, started, request_id_of(response.headers, prepared))
        if response.status_code >= 400:
            raise status_error(prepared, response.status_code, response.reason, response.headers,
                               _error_text(response), response)
        return response

    def _open_stream(self, prepared: Prepared, call: StreamRequest[T]) -> tuple[requests.Response, Stream[T]]:
        response = self._send(prepared, call)
        request_id = request_id_of(response.headers, prepared)
        stream: Stream[T] = Stream(
            _iter_bytes(response, prepared),
            parse=lambda payload: call.parse(payload, request_id),
            close=response.close,
            request_id=request_id,
        )
        try:
            check_event_stream(prepared, response.headers)
            stream.prefetch()
        except BaseException:
            stream.close()
            raise
        return response, stream


def _iter_bytes(response: requests.Response, prepared: Prepared) -> Iterator[bytes]:
    # chunk_size=None yields each chunk as it arrives (chunked transfer), so events are
    # decoded as soon as the server sends them rather than after a fixed-size buffer fills.
    try:
        yield from response.iter_content(chunk_size=None)
    except requests.RequestException as exc:
        raise _connection_error(exc, prepared, mid_stream=True) from exc


def _error_text(response: requests.Response) -> str | None:
    try:
        return response.text
    except requests.RequestException:  # the error body itself could not be read
        return None
    finally:
        response.close()


def _connection_error(exc: requests.RequestException, prepared: Prepared, *, mid_stream: bool = False
                      ) -> APIConnectionError:
    return connection_error(prepared, _reason(exc), timed_out=_is_timeout(exc), mid_stream=mid_stream)


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
