"""Server-sent events -> typed chunks.

The decoder works incrementally on the body's byte chunks as they arrive (never the whole
body), following the WHATWG event-stream rules: lines end in ``\\r\\n``, ``\\n`` or ``\\r``
(also when a ``\\r\\n`` is split across two chunks), ``:`` starts a comment, several ``data:``
lines join with ``\\n``, a blank line ends an event and an event with no data is ignored
(keep-alives). ``data: [DONE]`` ends the stream; a body that ends before it was cut off.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, TypeVar

from .errors import APIConnectionError, APIError, APIStreamError

T = TypeVar("T")

_DONE = "[DONE]"


@dataclass(frozen=True)
class ServerSentEvent:
    """One dispatched event."""

    data: str
    event: str = "message"
    id: str | None = None


def iter_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Split byte chunks into lines (without their terminator), as the chunks arrive."""
    pending = b""
    skip_lf = False  # the previous chunk ended in \r: a leading \n completes that \r\n
    for chunk in chunks:
        if not chunk:
            continue
        if skip_lf and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        skip_lf = chunk.endswith(b"\r")
        if not chunk:
            continue
        lines = (pending + chunk).splitlines(keepends=True)  # bytes split on \r\n, \n, \r only
        pending = b"" if lines[-1].endswith((b"\n", b"\r")) else lines.pop()
        for line in lines:
            yield line.rstrip(b"\r\n")
    if pending:
        yield pending


def iter_events(chunks: Iterable[bytes]) -> Iterator[ServerSentEvent]:
    """Decode an event stream into events; an unterminated last event is dropped, per spec."""
    data: list[str] = []
    event = ""
    last_id: str | None = None
    for number, raw in enumerate(iter_lines(chunks)):
        line = raw.decode("utf-8", errors="replace")
        if number == 0:
            line = line.removeprefix("\ufeff")
        if not line:
            if data:
                yield ServerSentEvent(data="\n".join(data), event=event or "message", id=last_id)
            data, event = [], ""
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            data.append(value)
        elif field == "event":
            event = value
        elif field == "id" and "\0" not in value:
            last_id = value


class Stream(Generic[T]):
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
        self.request_id = request_id
        self._parse = parse
        self._close = close
        self._closed = False
        self._items = self._iterate(chunks)
        self._first: list[T] = []

    def _iterate(self, chunks: Iterable[bytes]) -> Iterator[T]:
        try:
            for event in iter_events(chunks):
                if event.data == _DONE:
                    return
                yield self._parse(self._decode(event))
            raise APIConnectionError(
                "The stream ended before [DONE]: the connection was cut or the server stopped.",
                request_id=self.request_id,
            )
        finally:
            self.close()

    def _decode(self, event: ServerSentEvent) -> Any:
        try:
            payload = json.loads(event.data)
        except json.JSONDecodeError as exc:
            raise APIError(
                f"The server sent an event that is not JSON: {event.data[:200]!r}",
                request_id=self.request_id,
            ) from exc
        if event.event == "error" or (isinstance(payload, dict) and "error" in payload):
            raise _stream_error(payload, self.request_id)
        return payload

    def prefetch(self) -> None:
        """Read up to the first chunk, so that a failure before it can be retried."""
        for item in self._items:
            self._first.append(item)
            break

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        if self._closed:
            raise StopIteration
        if self._first:
            return self._first.pop()
        return next(self._items)

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
