"""Server-sent events -> typed chunks, for both clients.

The decoder is push-style (:class:`EventDecoder`: feed it each byte chunk as it arrives, never
the whole body), so the same code serves a blocking iterator (:class:`Stream`) and an async one
(:class:`AsyncStream`). It follows the WHATWG event-stream rules: lines end in ``\\r\\n``,
``\\n`` or ``\\r`` (also when a ``\\r\\n`` is split across two chunks), ``:`` starts a comment,
several ``data:`` lines join with ``\\n``, a blank line ends an event and an event with no data
is ignored (keep-alives). ``data: [DONE]`` ends the stream; a body that ends before it was cut off.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, TypeVar

from .errors import APIConnectionError, APIError, APIStreamError
from .types import StreamSummary

T = TypeVar("T")

_DONE = "[DONE]"


@dataclass(frozen=True)
class ServerSentEvent:
    """One dispatched event."""

    data: str
    event: str = "message"
    id: str | None = None


class LineDecoder:
    """Splits byte chunks into lines (without their terminator), as the chunks arrive."""

    def __init__(self) -> None:
        self._pending = b""
        self._skip_lf = False  # the previous chunk ended in \r: a leading \n completes that \r\n

    def feed(self, chunk: bytes) -> list[bytes]:
        if not chunk:
            return []
        if self._skip_lf and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        self._skip_lf = chunk.endswith(b"\r")
        if not chunk:
            return []
        lines = (self._pending + chunk).splitlines(keepends=True)  # bytes split on \r\n, \n, \r only
        self._pending = b"" if lines[-1].endswith((b"\n", b"\r")) else lines.pop()
        return [line.rstrip(b"\r\n") for line in lines]

    def flush(self) -> list[bytes]:
        pending, self._pending = self._pending, b""
        return [pending] if pending else []


class EventDecoder:
    """Turns byte chunks into events; an unterminated last event is dropped, per spec."""

    def __init__(self) -> None:
        self._lines = LineDecoder()
        self._data: list[str] = []
        self._event = ""
        self._last_id: str | None = None
        self._first_line = True

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        return [event for line in self._lines.feed(chunk) if (event := self._line(line)) is not None]

    def flush(self) -> list[ServerSentEvent]:
        return [event for line in self._lines.flush() if (event := self._line(line)) is not None]

    def _line(self, raw: bytes) -> ServerSentEvent | None:
        line = raw.decode("utf-8", errors="replace")
        if self._first_line:
            self._first_line = False
            line = line.removeprefix("\ufeff")
        if not line:
            event = None
            if self._data:
                event = ServerSentEvent(data="\n".join(self._data), event=self._event or "message", id=self._last_id)
            self._data, self._event = [], ""
            return event
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "id" and "\0" not in value:
            self._last_id = value
        return None


def iter_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The lines of a body given as byte chunks."""
    decoder = LineDecoder()
    for chunk in chunks:
        yield from decoder.feed(chunk)
    yield from decoder.flush()


def iter_events(chunks: Iterable[bytes]) -> Iterator[ServerSentEvent]:
    """The events of a body given as byte chunks."""
    decoder = EventDecoder()
    for chunk in chunks:
        yield from decoder.feed(chunk)
    yield from decoder.flush()


async def aiter_events(chunks: AsyncIterable[bytes]) -> AsyncIterator[ServerSentEvent]:
    """The events of a body given as async byte chunks."""
    decoder = EventDecoder()
    async for chunk in chunks:
        for event in decoder.feed(chunk):
            yield event
    for event in decoder.flush():
        yield event


class _StreamBase(Generic[T]):
    """What both streams share: turning an event into a chunk, or into the error it reports."""

    def __init__(self, parse: Callable[[Any], T], request_id: str | None) -> None:
        self.request_id = request_id
        self._parse = parse
        self._closed = False
        self._first: list[T] = []
        self._text: list[str] = []
        self._summary = StreamSummary()

    def _taken(self, item: T) -> T:
        """``item`` on its way to the caller, added to the stream's summary."""
        summary = self._summary
        part = item._stream_part() if hasattr(item, "_stream_part") else None
        if part is not None:
            self._text.append(part.text)
            summary.finish_reason = part.finish_reason or summary.finish_reason
            summary.usage = part.usage or summary.usage
        summary.chunks += 1
        return item

    def _summarized(self) -> StreamSummary:
        summary = self._summary.model_copy(update={"text": "".join(self._text)})
        summary._stamp(self.request_id)
        return summary

    def _chunk(self, event: ServerSentEvent) -> T | None:
        """The event's chunk; ``None`` for ``[DONE]``. Raises for an error event."""
        if event.data == _DONE:
            return None
        try:
            payload = json.loads(event.data)
        except json.JSONDecodeError as exc:
            raise APIError(
                f"The server sent an event that is not JSON: {event.data[:200]!r}",
                request_id=self.request_id,
            ) from exc
        if event.event == "error" or (isinstance(payload, dict) and "error" in payload):
            raise _stream_error(payload, self.request_id)
        return self._parse(payload)

    def _cut_off(self) -> APIConnectionError:
        return APIConnectionError(
            "The stream ended before [DONE]: the connection was cut or the server stopped.",
            request_id=self.request_id,
        )


class Stream(_StreamBase[T]):
    """An iterator of typed chunks over one streamed response.

    Use it in a ``with`` block, or call :meth:`close`, to stop early: the response is closed
    at once, which also tells the server to stop generating. It closes itself when the
    stream ends or fails. Iterating raises :class:`~maas_client.APIStreamError` for an error
    event and :class:`~maas_client.APIConnectionError` when the body ends before ``[DONE]``.
    """

    def __init__(
        self,
        chunks: Iterable[bytes],
        *,
        parse: Callable[[Any], T],
        close: Callable[[], None],
        request_id: str | None = None,
    ) -> None:
        super().__init__(parse, request_id)
        self._close = close
        self._items = self._iterate(chunks)

    def _iterate(self, chunks: Iterable[bytes]) -> Iterator[T]:
        try:
            for event in iter_events(chunks):
                item = self._chunk(event)
                if item is None:
                    return
                yield item
            raise self._cut_off()
        finally:
            self.close()

    def prefetch(self) -> None:
        """Read up to the first chunk, so that a failure before it can be retried."""
        for item in self._items:
            self._first.append(item)
            break

    def iter_text(self) -> Iterator[str]:
        """The new text of each chunk (``chunk.text``), skipping chunks that add none (a chat
        stream's first chunk carries only the role; its last, the finish reason)."""
        for chunk in self:
            text = getattr(chunk, "text", "")
            if text:
                yield text

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        if self._closed:
            raise StopIteration
        if self._first:
            return self._taken(self._first.pop())
        return self._taken(next(self._items))

    def final(self) -> StreamSummary:
        """Read what is left of the stream and return its :class:`StreamSummary` (text, finish reason,
        usage), gathered as the chunks went by: after a loop over the stream nothing is read again. A
        stream closed early sums up what was read."""
        for _ in self:
            pass
        return self._summarized()

    def close(self) -> None:
        """Close the response now; further iteration stops. Safe to call twice."""
        if not self._closed:
            self._closed = True
            self._close()

    def __enter__(self) -> Stream[T]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncStream(_StreamBase[T]):
    """An async iterator of typed chunks over one streamed response (:class:`AsyncClient`).

    As :class:`Stream`: use it in an ``async with`` block, or ``await stream.close()``, to stop
    early; the response is closed at once, which tells the server to stop generating. It closes
    itself when the stream ends or fails, and when the task iterating it is cancelled.
    """

    def __init__(
        self,
        chunks: AsyncIterable[bytes],
        *,
        parse: Callable[[Any], T],
        close: Callable[[], Awaitable[None]],
        request_id: str | None = None,
    ) -> None:
        super().__init__(parse, request_id)
        self._close = close
        self._items = self._iterate(chunks)

    async def _iterate(self, chunks: AsyncIterable[bytes]) -> AsyncIterator[T]:
        try:
            async for event in aiter_events(chunks):
                item = self._chunk(event)
                if item is None:
                    return
                yield item
            raise self._cut_off()
        finally:
            # Also on asyncio.CancelledError: the awaits below still run for the task being cancelled.
            await self.close()

    async def prefetch(self) -> None:
        """Read up to the first chunk, so that a failure before it can be retried."""
        async for item in self._items:
            self._first.append(item)
            break

    async def iter_text(self) -> AsyncIterator[str]:
        """The new text of each chunk, skipping chunks that add none (as :meth:`Stream.iter_text`)."""
        async for chunk in self:
            text = getattr(chunk, "text", "")
            if text:
                yield text

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        if self._closed:
            raise StopAsyncIteration
        if self._first:
            return self._taken(self._first.pop())
        return self._taken(await self._items.__anext__())

    async def final(self) -> StreamSummary:
        """Read what is left of the stream and return its :class:`StreamSummary` (as :meth:`Stream.final`)."""
        async for _ in self:
            pass
        return self._summarized()

    async def close(self) -> None:
        """Close the response now; further iteration stops. Safe to call twice."""
        if not self._closed:
            self._closed = True
            await self._close()

    async def __aenter__(self) -> AsyncStream[T]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def _stream_error(payload: Any, request_id: str | None) -> APIStreamError:
    error = payload.get("error", payload) if isinstance(payload, dict) else payload
    if not isinstance(error, dict):
        return APIStreamError(f"The stream failed: {error}", request_id=request_id)
    return APIStreamError(
        f"The stream failed: {error.get('message') or 'no message'}",
        request_id=request_id,
        type=error.get("type"),
        param=error.get("param"),
        code=error.get("code"),
    )
