"""The retry policy: one "should retry?" check and one wait function, run by tenacity.

Retried: connection errors and timeouts, 408, 409, 429 and 5xx, which are transient or mean
"not now". Never retried: other 4xx (400, 401, 403, 404, 413, 422), since sending the same
request again cannot succeed. The wait honours ``Retry-After`` (seconds or an HTTP date),
capped at :data:`MAX_RETRY_AFTER`, and otherwise backs off exponentially with jitter so that
many clients do not retry in lockstep.

Both clients run this policy: :func:`retrying` for :class:`~maas_client.Client` and
:func:`async_retrying` (tenacity's asyncio support) for :class:`~maas_client.AsyncClient`.
"""

from __future__ import annotations

import email.utils
import logging
import math
import random
import time
from datetime import UTC
from typing import Any

from tenacity import AsyncRetrying, RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from .errors import APIConnectionError, APIStatusError

logger = logging.getLogger("maas")

RETRY_STATUSES = frozenset({408, 409, 429})
INITIAL_BACKOFF = 0.5  # seconds before the first retry, doubled for each further one
MAX_BACKOFF = 8.0
MAX_RETRY_AFTER = 60.0  # a server asking for longer is not waited for longer than this


def should_retry(error: BaseException) -> bool:
    """Whether the failed attempt that raised ``error`` is worth repeating."""
    if isinstance(error, APIConnectionError):  # includes APITimeoutError
        return True
    if isinstance(error, APIStatusError):
        # The server's word wins, as in openai-python: maas says `false` for a failure that the same
        # request would meet again (one input that fails the model), and for nothing transient.
        verdict = error.response.headers.get("x-should-retry", "").lower() if error.response is not None else ""
        if verdict in ("true", "false"):
            return verdict == "true"
        return error.status_code in RETRY_STATUSES or error.status_code >= 500
    return False


def retry_wait(state: RetryCallState) -> float:
    """Seconds to wait before the next attempt: ``Retry-After`` if given, else backoff."""
    error = state.outcome.exception() if state.outcome is not None else None
    retry_after = _retry_after(error)
    if retry_after is not None:
        return retry_after
    backoff = min(INITIAL_BACKOFF * 2.0 ** (state.attempt_number - 1), MAX_BACKOFF)
    return backoff * (1.0 - 0.25 * random.random())


def _retry_after(error: BaseException | None) -> float | None:
    response = getattr(error, "response", None)
    value = response.headers.get("Retry-After") if response is not None else None
    if not value:
        return None
    seconds: float | None
    try:
        seconds = float(value)
    except ValueError:
        seconds = _seconds_until(value)
    if seconds is None or math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _seconds_until(http_date: str) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(http_date)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # HTTP dates are GMT; "-0000" parses as naive
        when = when.replace(tzinfo=UTC)
    return when.timestamp() - time.time()


def _sleep(seconds: float) -> None:
    # Module-level seams: tests replace them to record the waits instead of sleeping.
    time.sleep(seconds)


async def _async_sleep(seconds: float) -> None:
    import asyncio  # here: importing asyncio would add 20 ms to `import maas_client`

    await asyncio.sleep(seconds)


def retrying(max_retries: int, what: str) -> Retrying:
    """A tenacity controller for one call; ``what`` (e.g. "POST <url>") names it in logs."""
    return Retrying(sleep=_sleep, **_policy(max_retries, what))


def async_retrying(max_retries: int, what: str) -> AsyncRetrying:
    """The same policy for a coroutine; the waits are ``asyncio.sleep``, so they can be cancelled."""
    return AsyncRetrying(sleep=_async_sleep, **_policy(max_retries, what))


def retries_taken(controller: Retrying | AsyncRetrying) -> int:
    """How many retries a finished call took (its attempts but the first)."""
    return int(controller.statistics.get("attempt_number", 1)) - 1


def _policy(max_retries: int, what: str) -> dict[str, Any]:
    def log_retry(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        reason = getattr(error, "status_code", None) or type(error).__name__
        logger.debug(
            "retrying %s in %.2f s (retry %d of %d) after %s",
            what, wait, state.attempt_number, max_retries, reason,
        )

    return {
        "stop": stop_after_attempt(max_retries + 1),
        "retry": retry_if_exception(should_retry),
        "wait": retry_wait,
        "before_sleep": log_retry,
        "reraise": True,
    }
