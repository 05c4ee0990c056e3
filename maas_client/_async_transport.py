"""The one module that touches ``httpx``: how :class:`~maas_client.AsyncClient` executes a request.

It mirrors ``_transport.py`` (requests) line for line; everything else is shared. Imported only
when an AsyncClient is made, so ``import maas_client`` never loads httpx (the ``async`` extra).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TypeVar

import httpx

from ._base_client import (
    APIRequest,
    ClientOptions,
    Prepared,
    StreamRequest,
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
from ._retry import async_retrying, retries_taken
from ._streaming import AsyncStream
from .errors import APIConnectionError

__all__ = ["AsyncTransport", "new_http_client"]

T = TypeVar("T")


POOL_CONNECTIONS = 64
# Whole-answer calls a client's own pool carries at once; the rest wait on the client's gate. httpcore
# rescans its connections for every waiting request on each change, so the pool's cost grows with the
# square of what is in it: 200 concurrent embeddings took 7.2 ms of client CPU each with every call in
# the pool, 2.2 ms with 32 at a time, for 114 -> 231 requests/s (benchmarks/async_client.py).
IN_FLIGHT = 32


def new_http_client() -> httpx.AsyncClient:
    """A client whose pool keeps enough connections for many concurrent tasks (as new_session does)."""
    return httpx.AsyncClient(limits=httpx.Limits(max_connections=POOL_CONNECTIONS,
                                                 max_keepalive_connections=POOL_CONNECTIONS))


@dataclass(frozen=True)
class AsyncTransport:
    """Sends calls on an ``httpx.AsyncClient``; holds no options, so clients share it.

    ``gate`` (given with the client's own pool) lets at most IN_FLIGHT whole-answer calls into the
    pool at once; streams are not gated (they hold their connection for as long as they are read).
    """

    http: httpx.AsyncClient = field(repr=False)
    gate: asyncio.Semaphore | None = field(default=None, repr=False)

    async def request(self, options: ClientOptions, call: APIRequest[T]) -> RawResponse[T]:
        """Send one call (retrying per policy) and read its answer's body."""
        prepared = prepare(options, call)
        controller = async_retrying(options.max_retries, prepared.what)
        async with self.gate if self.gate is not None else contextlib.nullcontext():
            response: httpx.Response = await controller(self._send, prepared, call)
            try:
                content = await response.aread()
            except httpx.HTTPError as exc:
                raise _connection_error(exc, prepared) from exc
            finally:
                await response.aclose()
        return whole_response(prepared, call, response, response.status_code, response.headers, content,
                              retries_taken(controller))

    async def stream(self, options: ClientOptions, call: StreamRequest[T]) -> RawResponse[AsyncStream[T]]:
        """Send one call and open its event stream; retried up to the first event, as the sync one."""
        prepared = prepare(options, call)
        controller = async_retrying(options.max_retries, prepared.what)
        opened: tuple[httpx.Response, AsyncStream[T]] = await controller(self._open_stream, prepared, call)
        response, stream = opened
        return stream_response(prepared, stream, response, response.status_code, response.headers,
                               retries_taken(controller))

    async def close(self) -> None:
        await self.http.aclose()

    async def _send(self, prepared: Prepared, call: _Call) -> httpx.Response:
        # Every answer is opened as a stream: the body is read by the caller, so a cancelled task
        # or an abandoned stream closes the connection rather than leaving it half read.
        request = self.http.build_request(
            prepared.method, prepared.url, headers=prepared.headers, params=call.params, json=call.json,
            data=_form(call), files=call.files, timeout=_timeout(prepared),
        )
        started = time.monotonic()
        try:
            response = await self.http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise _connection_error(exc, prepared) from exc
        log_response(prepared, response.status_code, started, request_id_of(response.headers, prepared))
        if response.status_code >= 400:
            raise status_error(prepared, response.status_code, response.reason_phrase, response.headers,
                               await _error_text(response), response)
        return response

    async def _open_stream(self, prepared: Prepared, call: StreamRequest[T]) -> tuple[httpx.Response, AsyncStream[T]]:
        response = await self._send(prepared, call)
        request_id = request_id_of(response.headers, prepared)
        stream: AsyncStream[T] = AsyncStream(
            _aiter_bytes(response, prepared),
            parse=lambda payload: call.parse(payload, request_id),
            close=response.aclose,
            request_id=request_id,
        )
        try:
            check_event_stream(prepared, response.headers)
            await stream.prefetch()
        except BaseException:
            await stream.close()
            raise
        return response, stream


def _form(call: _Call) -> dict[str, list[str]] | None:
    # httpx takes form fields as a mapping; a list value repeats the field (timestamp_granularities[]).
    if call.form is None:
        return None
    fields: dict[str, list[str]] = {}
    for key, value in call.form:
        fields.setdefault(key, []).append(value)
    return fields


def _timeout(prepared: Prepared) -> httpx.Timeout:
    connect, read = prepared.timeout.connect, prepared.timeout.read
    # requests has no write or pool timeout: sending a body is bounded as reading is, and waiting
    # for a pooled connection as connecting is.
    return httpx.Timeout(connect=connect, read=read, write=read, pool=connect)


async def _aiter_bytes(response: httpx.Response, prepared: Prepared) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.aiter_bytes():
            yield chunk
    except httpx.HTTPError as exc:
        raise _connection_error(exc, prepared, mid_stream=True) from exc


async def _error_text(response: httpx.Response) -> str | None:
    try:
        await response.aread()
        return response.text
    except httpx.HTTPError:  # the error body itself could not be read
        return None
    finally:
        await response.aclose()


def _connection_error(exc: httpx.HTTPError, prepared: Prepared, *, mid_stream: bool = False) -> APIConnectionError:
    reason = str(exc) or type(exc).__name__
    return connection_error(prepared, reason, timed_out=isinstance(exc, httpx.TimeoutException),
                            mid_stream=mid_stream)
