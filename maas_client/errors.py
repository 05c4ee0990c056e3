"""The exceptions ``maas_client`` raises: one tree, rooted at :class:`MaasError`.

::

    MaasError                           anything this package raises (e.g. no default model)
     ├── StructuredOutputError          chat_parse: the reply is not valid JSON of the model asked for
     └── APIError                       a call to the server failed: message, request_id, type, param, code
          ├── APIConnectionError        no usable response: refused, reset, DNS, cut mid-stream
          │    └── APITimeoutError      the connect or read timeout expired
          ├── APIStreamError            the server reported an error inside a 200 event stream
          └── APIStatusError            the server answered 4xx/5xx: status_code, response, body
               ├── BadRequestError            400
               ├── AuthenticationError        401
               ├── PermissionDeniedError      403
               ├── NotFoundError              404
               ├── RequestTooLargeError       413
               ├── UnprocessableEntityError   422 (other servers: maas answers 400)
               ├── RateLimitError             429
               └── InternalServerError        5xx
                    └── ServiceUnavailableError   503

:func:`status_error_class` is the one place that maps a status code to its class; other
4xx codes (405, 408, 409, ...) are plain :class:`APIStatusError`.

Every message says what happened and, where there is one, what to change; it carries the
server's own message, the status and the request id to quote when reporting a problem.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import httpx
    import requests

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APIStreamError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "InternalServerError",
    "MaasError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestTooLargeError",
    "ServiceUnavailableError",
    "StructuredOutputError",
    "UnprocessableEntityError",
    "status_error_class",
]


class MaasError(Exception):
    """Base class of every exception raised by ``maas_client``."""


class StructuredOutputError(MaasError):
    """The call succeeded but its reply does not validate as the pydantic model asked for.

    Attributes:
        text: the reply as the model wrote it.
        finish_reason: why generation stopped (``"length"``: cut at ``max_tokens``).
        completion: the whole :class:`~maas_client.ChatCompletion`.
        errors: pydantic's list of what failed to validate.
        request_id: the call's ``X-Request-ID``.
    """

    def __init__(self, message: str, *, text: str, finish_reason: str | None, completion: Any,
                 errors: list[Any], request_id: str | None) -> None:
        self.text = text
        self.finish_reason = finish_reason
        self.completion = completion
        self.errors = errors
        self.request_id = request_id
        super().__init__(message)


class APIError(MaasError):
    """A call to the server failed.

    Attributes:
        message: what went wrong, as reported by the server when it said anything.
        request_id: the ``X-Request-ID`` of the call (quote it when reporting a problem).
        type, param, code: the server's ``error`` object fields, ``None`` when absent.
    """

    def __init__(
        self,
        message: str,
        *,
        request_id: str | None = None,
        type: str | None = None,
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        self.message = message
        self.request_id = request_id
        self.type = type
        self.param = param
        self.code = code
        super().__init__(self._describe())

    def _describe(self) -> str:
        details = [f"{name}: {value}" for name, value in self._details() if value is not None]
        return f"{self.message} ({'; '.join(details)})" if details else self.message

    def _details(self) -> list[tuple[str, object]]:
        return [
            ("type", self.type),
            ("code", self.code),
            ("param", self.param),
            ("request id", self.request_id),
        ]


class APIConnectionError(APIError):
    """No usable response: the server could not be reached or the connection broke."""


class APITimeoutError(APIConnectionError):
    """The connect or read timeout expired (raise it with ``timeout=``)."""


class APIStreamError(APIError):
    """The server reported an error in a ``data: {"error": ...}`` event after the stream began."""


class APIStatusError(APIError):
    """The server answered with an error status (4xx or 5xx).

    Attributes:
        status_code: the HTTP status.
        response: the ``requests.Response`` (:class:`~maas_client.Client`) or ``httpx.Response``
            (:class:`~maas_client.AsyncClient`), already closed; headers and body are readable.
        body: the decoded JSON body, or the raw text when it was not JSON.
    """

    #: What to change, appended to the message; subclasses say something specific.
    hint: ClassVar[str] = ""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        response: requests.Response | httpx.Response | None = None,
        body: Any = None,
        request_id: str | None = None,
        type: str | None = None,
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        self.status_code = status_code
        self.response = response
        self.body = body
        super().__init__(message, request_id=request_id, type=type, param=param, code=code)

    def _describe(self) -> str:
        text = f"HTTP {self.status_code}: {super()._describe()}"
        return f"{text}. {self.hint}" if self.hint else text


class BadRequestError(APIStatusError):
    """400: the request was malformed, or an input was unreadable or too long."""

    hint = "Fix the request as the message says."


class AuthenticationError(APIStatusError):
    """401: the API key is missing or wrong."""

    hint = "Check the API key (api_key= or MAAS_API_KEY)."


class PermissionDeniedError(APIStatusError):
    """403: the API key may not do this."""

    hint = "Use an API key that is allowed to call this endpoint."


class NotFoundError(APIStatusError):
    """404: unknown route or model."""

    hint = "Check the model id (client.models() lists them) and the base URL."


class RequestTooLargeError(APIStatusError):
    """413: the body, an image or its pixel count is over the server's limit."""

    hint = "Send smaller inputs, or fewer per call."


class UnprocessableEntityError(APIStatusError):
    """422: a field's value is invalid (``param`` names it); from other servers, since maas answers 400."""

    hint = "Change the parameter named by `param`."


class RateLimitError(APIStatusError):
    """429: too many requests; retried automatically, raised when retries run out."""

    hint = "Slow down, or raise max_retries."


class InternalServerError(APIStatusError):
    """5xx: the server failed; retried automatically, raised when retries run out."""

    hint = "Retry later; if it persists, report the request id to the server's operator."


class ServiceUnavailableError(InternalServerError):
    """503: a model is still loading or its queue is full; retried, honouring ``Retry-After``."""

    hint = "The server is loading or busy: retry later, or raise max_retries."


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    413: RequestTooLargeError,
    422: UnprocessableEntityError,
    429: RateLimitError,
    503: ServiceUnavailableError,
}


def status_error_class(status_code: int) -> type[APIStatusError]:
    """The exception class for an HTTP error status (the one status -> class mapping)."""
    if status_code in _BY_STATUS:
        return _BY_STATUS[status_code]
    if status_code >= 500:
        return InternalServerError
    return APIStatusError
