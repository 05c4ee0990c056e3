"""Per-key rate limits: requests, tokens and compute seconds per minute, over fixed one-minute windows.

A request is admitted when the key's window has used fewer than `rpm` requests and fewer than
`tpm` tokens; admitting it counts one request. Tokens are only known once the response is made,
so they are charged afterwards (``charge``): a request may take a key past its `tpm`, and the
next one is refused until the window ends. Tokens are prompt + completion tokens for generation,
tokens for embeddings, and texts/images for classification: whatever the response's ``usage``
reports. Compute is seconds of the model's time (api/metering.py), charged the same way: it is what
a call costs whatever is inside it (a 40 Mpx image, an hour of audio, a long explanation).

The counters live where every worker sees them: in the SQL store (``SqlLimiter``: all workers of
one server, or several servers sharing a PostgreSQL) or in Redis (``RedisLimiter``, when
``MAAS_REDIS_URL`` is set: several servers behind a load balancer, without a database write per
request). Windows are named by the unix minute of the server's clock, so servers sharing Redis
need synchronized clocks (NTP).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import select

from .store import Store, StoreUnavailable, insert_ignore, rate_windows

WINDOW_SECONDS = 60


@dataclass(frozen=True)
class Limits:
    """A key's limits; None means unlimited."""

    rpm: int | None = None
    tpm: int | None = None
    cpm: float | None = None  # compute seconds

    @property
    def any(self) -> bool:
        return self.rpm is not None or self.tpm is not None or self.cpm is not None


@dataclass(frozen=True)
class Decision:
    """Whether a request may run, and the numbers the x-ratelimit-* headers report."""

    allowed: bool
    limits: Limits
    requests: int  # used in this window, this request included when allowed
    tokens: int
    reset_seconds: float  # until the window ends
    exceeded: str | None = None  # "requests", "tokens" or "compute" when refused
    compute: float = 0.0  # seconds used in this window

    def headers(self) -> dict[str, str]:
        """OpenAI's rate-limit headers (and Retry-After when refused), for the limits this key has."""
        reset = f"{max(1, math.ceil(self.reset_seconds))}s"
        out: dict[str, str] = {}
        for kind, limit, used in (("requests", self.limits.rpm, self.requests),
                                  ("tokens", self.limits.tpm, self.tokens),
                                  ("compute-seconds", self.limits.cpm, self.compute)):
            if limit is not None:
                out[f"x-ratelimit-limit-{kind}"] = f"{limit:g}"
                out[f"x-ratelimit-remaining-{kind}"] = f"{max(0, round(limit - used, 3)):g}"
                out[f"x-ratelimit-reset-{kind}"] = reset
        if not self.allowed:
            out["Retry-After"] = str(max(1, math.ceil(self.reset_seconds)))
        return out


class RateLimiter(Protocol):
    """Both methods raise StoreUnavailable when the counters cannot be reached: limits fail closed."""

    def admit(self, key_id: int, limits: Limits) -> Decision: ...
    def charge(self, key_id: int, tokens: int, compute_s: float = 0.0) -> None: ...


def _window(clock: Callable[[], float]) -> tuple[int, float]:
    now = clock()
    window = int(now // WINDOW_SECONDS)
    return window, (window + 1) * WINDOW_SECONDS - now


def _decide(limits: Limits, requests: int, tokens: int, compute: float) -> str | None:
    if limits.rpm is not None and requests >= limits.rpm:
        return "requests"
    if limits.tpm is not None and tokens >= limits.tpm:
        return "tokens"
    if limits.cpm is not None and compute >= limits.cpm:
        return "compute"
    return None


class SqlLimiter:
    """Counters in the store's ``maas_rate_windows`` table, one row per key and minute."""

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    def admit(self, key_id: int, limits: Limits) -> Decision:
        window, reset = _window(self.clock)
        where = (rate_windows.c.key_id == key_id) & (rate_windows.c.window == window)
        with self.store.begin() as conn:  # SQLite: BEGIN IMMEDIATE; PostgreSQL: the row lock below
            if insert_ignore(conn, rate_windows, dict(key_id=key_id, window=window, requests=0, tokens=0,
                                                      compute_ms=0.0)):
                # A new minute for this key: drop its old rows so the table stays small.
                conn.execute(rate_windows.delete().where((rate_windows.c.key_id == key_id)
                                                         & (rate_windows.c.window < window - 1)))
            row = conn.execute(select(rate_windows.c.requests, rate_windows.c.tokens, rate_windows.c.compute_ms)
                               .where(where).with_for_update()).one()
            compute = row.compute_ms / 1000
            exceeded = _decide(limits, row.requests, row.tokens, compute)
            if exceeded:
                return Decision(False, limits, row.requests, row.tokens, reset, exceeded, compute)
            conn.execute(rate_windows.update().where(where).values(requests=rate_windows.c.requests + 1))
        return Decision(True, limits, row.requests + 1, row.tokens, reset, compute=compute)

    def charge(self, key_id: int, tokens: int, compute_s: float = 0.0) -> None:
        if tokens <= 0 and compute_s <= 0:
            return
        window, _ = _window(self.clock)
        with self.store.begin() as conn:
            insert_ignore(conn, rate_windows, dict(key_id=key_id, window=window, requests=0, tokens=0,
                                                   compute_ms=0.0))
            conn.execute(rate_windows.update()
                         .where((rate_windows.c.key_id == key_id) & (rate_windows.c.window == window))
                         .values(tokens=rate_windows.c.tokens + max(0, tokens),
                                 compute_ms=rate_windows.c.compute_ms + max(0.0, compute_s) * 1000))


# Check both counters and count the request in one step: Redis runs a script atomically.
_ADMIT = """
local r = tonumber(redis.call('HGET', KEYS[1], 'r') or '0')
local t = tonumber(redis.call('HGET', KEYS[1], 't') or '0')
local c = tonumber(redis.call('HGET', KEYS[1], 'c') or '0')
local rpm = tonumber(ARGV[1])
local tpm = tonumber(ARGV[2])
local cpm = tonumber(ARGV[4])
if (rpm > 0 and r >= rpm) or (tpm > 0 and t >= tpm) or (cpm > 0 and c >= cpm) then
  return {0, r, t, c}
end
r = redis.call('HINCRBY', KEYS[1], 'r', 1)
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {1, r, t, c}
"""


class RedisLimiter:
    """Counters in Redis hashes ``{prefix}:{key_id}:{minute}`` that expire after two minutes."""

    def __init__(self, client: Any, *, prefix: str = "maas:rl", clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.prefix = prefix
        self.clock = clock
        self._admit = client.register_script(_ADMIT)

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisLimiter:
        import redis

        return cls(redis.Redis.from_url(url, socket_timeout=5), **kwargs)

    def admit(self, key_id: int, limits: Limits) -> Decision:
        window, reset = _window(self.clock)
        with _redis_errors():
            allowed, requests, tokens, compute_ms = self._admit(
                keys=[f"{self.prefix}:{key_id}:{window}"],
                args=[limits.rpm or 0, limits.tpm or 0, 2 * WINDOW_SECONDS, (limits.cpm or 0) * 1000])
        compute = int(compute_ms) / 1000  # milliseconds, as an integer: Lua numbers reach Python as integers
        exceeded = None if allowed else _decide(limits, int(requests), int(tokens), compute)
        return Decision(bool(allowed), limits, int(requests), int(tokens), reset, exceeded, compute)

    def charge(self, key_id: int, tokens: int, compute_s: float = 0.0) -> None:
        if tokens <= 0 and compute_s <= 0:
            return
        window, _ = _window(self.clock)
        name = f"{self.prefix}:{key_id}:{window}"
        with _redis_errors(), self.client.pipeline() as pipe:
            pipe.hincrby(name, "t", max(0, tokens)).hincrby(name, "c", round(max(0.0, compute_s) * 1000))
            pipe.expire(name, 2 * WINDOW_SECONDS).execute()


@contextmanager
def _redis_errors() -> Iterator[None]:
    """Redis unreachable (or failing) means the counters are unavailable, as a SQL store's would be."""
    import redis

    try:
        yield
    except redis.RedisError as exc:
        raise StoreUnavailable(f"the rate-limit counters in Redis (MAAS_REDIS_URL) cannot be used: {exc}") from exc
