"""Raw responses: ``client.with_raw_response.<method>(...)``, for both clients.

A method called through ``with_raw_response`` returns a :class:`RawResponse` (awaited, on
:class:`~maas_client.AsyncClient`): the status code, the headers and the HTTP library's own
response object, with :meth:`RawResponse.parse` giving what the method returns otherwise. The
views list each client method once (:class:`RawMethod`, :class:`RawStreamingMethod`); a method
runs exactly as it does without the view, on a copy of the client that hands back the
transport's :class:`RawResponse` instead of parsing it (``BaseClient._finish``).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Concatenate, Generic, Literal, ParamSpec, Protocol, TypeVar, overload

from .errors import MaasError

if TYPE_CHECKING:
    from ._streaming import AsyncStream, Stream

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
R = TypeVar("R")
W = TypeVar("W")  # what a streaming method returns without stream=True
C = TypeVar("C")  # the chunk type of its stream
W_co = TypeVar("W_co", covariant=True)
P = ParamSpec("P")

_UNPARSED: Any = object()


class RawResponse(Generic[T_co]):
    """One call's HTTP response, before the client reads it into its usual result.

    ``status_code``, ``headers`` (case-insensitive), ``request_id``, ``method``, ``url`` and
    ``retries_taken`` describe the final attempt; ``http_response`` is the HTTP library's object
    (a ``requests.Response`` for :class:`~maas_client.Client`, an ``httpx.Response`` for
    :class:`~maas_client.AsyncClient`). :meth:`parse` returns what the method returns without
    ``with_raw_response`` (validated once, then cached), raising the same errors it would.

    A whole answer has been read when the call returns: ``content``, ``text`` and :meth:`json`
    give its body. A stream (``stream=True``) has been opened and its headers read, but its body
    has not: :meth:`parse` returns the :class:`~maas_client.Stream` (or
    :class:`~maas_client.AsyncStream`) to iterate and close as usual, and ``content`` raises.
    """

    def __init__(
        self,
        *,
        http_response: Any,
        status_code: int,
        headers: Mapping[str, str],
        request_id: str,
        method: str,
        url: str,
        parse: Callable[[], T_co],
        content: bytes | None,
        retries_taken: int = 0,
    ) -> None:
        self.http_response = http_response
        self.status_code = status_code
        self.headers = headers
        self.request_id = request_id
        self.method = method
        self.url = url
        self.retries_taken = retries_taken
        self._content = content
        self._parse = parse
        self._parsed: T_co = _UNPARSED

    @property
    def is_stream(self) -> bool:
        """Whether the body is an event stream, read by iterating :meth:`parse`'s result."""
        return self._content is None

    @property
    def content(self) -> bytes:
        """The body's bytes (a whole answer only)."""
        if self._content is None:
            raise MaasError("a streamed response's body is read by iterating .parse(), not through .content")
        return self._content

    @property
    def text(self) -> str:
        """The body as text (a whole answer only)."""
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body's JSON, as the server sent it (a whole answer only)."""
        return json.loads(self.content)

    def parse(self) -> T_co:
        """The method's usual result: a typed model, or the stream to iterate."""
        if self._parsed is _UNPARSED:
            self._parsed = self._parse()
        return self._parsed

    def __repr__(self) -> str:
        return f"<RawResponse [{self.status_code}] {self.method} {self.url} request_id={self.request_id!r}>"


# ---------------------------------------------------------------------- the views' typed methods


class _RawView:
    """What ``client.with_raw_response`` returns: the client's methods, answering :class:`RawResponse`."""

    def __init__(self, client: Any) -> None:
        self._client = client._raw_copy()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._client!r})"


class _ViewMethod:
    """A view's method: the method of the same name on the view's copy of the client."""

    def __init__(self, name: str) -> None:
        self._name = name
        self.__doc__ = f"As the client's ``{name}``, returning a RawResponse whose parse() gives its result."

    def _bound(self, view: _RawView | None) -> Any:
        # Looked up on the class (help(), inspect), the descriptor shows itself.
        return self if view is None else getattr(view._client, self._name)


class RawMethod(_ViewMethod, Generic[P, R]):
    """The client method ``func`` with its arguments, returning ``RawResponse[R]``."""

    def __init__(self, func: Callable[Concatenate[Any, P], R]) -> None:
        super().__init__(func.__name__)

    def __get__(self, view: _RawView | None, owner: type | None = None) -> Callable[P, RawResponse[R]]:
        return self._bound(view)  # type: ignore[no-any-return]  # the copy's method answers RawResponse[R]


class AsyncRawMethod(_ViewMethod, Generic[P, R]):
    """As :class:`RawMethod`, for a coroutine method: awaiting it gives ``RawResponse[R]``."""

    def __init__(self, func: Callable[Concatenate[Any, P], Awaitable[R]]) -> None:
        super().__init__(func.__name__)

    def __get__(self, view: _RawView | None, owner: type | None = None) -> Callable[P, Awaitable[RawResponse[R]]]:
        return self._bound(view)  # type: ignore[no-any-return]  # the copy's method answers RawResponse[R]


# A method with stream=True/False overloads: a type checker keeps one signature of an overloaded function when
# it is passed on, so a view states the stream case apart (its arguments unchecked) and takes the rest from the
# whole-answer signature.


class _StreamingCall(Protocol[P, W_co, C]):
    @overload
    def __call__(self, *args: Any, stream: Literal[True], **kwargs: Any) -> RawResponse[Stream[C]]: ...

    @overload
    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> RawResponse[W_co]: ...


class _AsyncStreamingCall(Protocol[P, W_co, C]):
    @overload
    def __call__(self, *args: Any, stream: Literal[True], **kwargs: Any
                 ) -> Awaitable[RawResponse[AsyncStream[C]]]: ...

    @overload
    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Awaitable[RawResponse[W_co]]: ...


class RawStreamingMethod(_ViewMethod, Generic[P, W, C]):
    """A method that may stream: ``RawResponse[W]``, or ``RawResponse[Stream[chunk]]`` with ``stream=True``
    (``chunk``, the stream's chunk type, is there for type checkers)."""

    def __init__(self, func: Callable[Concatenate[Any, P], W], chunk: type[C]) -> None:
        super().__init__(func.__name__)

    def __get__(self, view: _RawView | None, owner: type | None = None) -> _StreamingCall[P, W, C]:
        return self._bound(view)  # type: ignore[no-any-return]  # the copy's method answers RawResponse


class AsyncRawStreamingMethod(_ViewMethod, Generic[P, W, C]):
    """As :class:`RawStreamingMethod`, for a coroutine method (``AsyncStream`` with ``stream=True``)."""

    def __init__(self, func: Callable[Concatenate[Any, P], Awaitable[W]], chunk: type[C]) -> None:
        super().__init__(func.__name__)

    def __get__(self, view: _RawView | None, owner: type | None = None) -> _AsyncStreamingCall[P, W, C]:
        return self._bound(view)  # type: ignore[no-any-return]  # the copy's method answers RawResponse
