"""Counters in Redis, shared by every ingress process: one budget or rate limit, one answer, however many instances.

A reservation is one Lua script run by Redis atomically (no other command interleaves): it checks every counter's
``used + amount <= limit`` and only then adds every amount and sets each counter to expire when its window ends
(``PEXPIREAT``; never for a window end of 0). Settling and releasing run a second script that adds each counter's
difference and sets its expiry again (a counter that expired meanwhile is not brought back without one); it never
refuses. Scripts are sent by digest (``EVALSHA``) and loaded again when the server does not know them (a restart,
``SCRIPT FLUSH``), which redis-py's ``Script`` does.

Every call is bounded by one timeout (``WARDEN_REDIS_TIMEOUT_MS``, 50 ms by default), waiting for a connection
included, and nothing is retried: a Redis that is away or slow raises :class:`CountersUnavailable` and the caller's
fail-open or fail-closed mode decides. After such a failure every call raises at once for ``WARDEN_REDIS_PAUSE_MS``
(1 s), so while Redis is away no request waits for a timeout; then the next call tries again. A reservation that timed
out after Redis ran it stays charged until its window ends: the error is on the side of spending less.

Redis Cluster is not supported: one script touches every counter of a reservation, which Cluster allows only within
one hash slot.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from plumbing.counters.base import Charge, CountersUnavailable, Refusal, Reservation, reserved_by_counter
from plumbing.counters.settings import CounterSettings

log = logging.getLogger(__name__)

KEY_NAMESPACE = "warden:"

# KEYS: the counters. ARGV: amount, limit, window end in ms (0: none) for each, in order.
# Returns {0, 0} when every amount was added, else {i, used}: the 1-based index of the first charge that does not fit
# and what its counter holds (with what earlier charges of this reservation put on the same counter).
_RESERVE = """
local pending = {}
for i = 1, #KEYS do
  local key = KEYS[i]
  local used = tonumber(redis.call('GET', key) or '0') + (pending[key] or 0)
  local amount = tonumber(ARGV[3 * i - 2])
  if used + amount > tonumber(ARGV[3 * i - 1]) then
    return {i, used}
  end
  pending[key] = (pending[key] or 0) + amount
end
for i = 1, #KEYS do
  redis.call('INCRBY', KEYS[i], ARGV[3 * i - 2])
  if ARGV[3 * i] ~= '0' then
    redis.call('PEXPIREAT', KEYS[i], ARGV[3 * i])
  end
end
return {0, 0}
"""

# KEYS: the counters. ARGV: delta, window end in ms (0: none) for each. Never below 0: a counter that Redis lost
# (restarted without persistence) must not turn a release into credit.
_ADJUST = """
for i = 1, #KEYS do
  local key = KEYS[i]
  local used = redis.call('INCRBY', key, ARGV[2 * i - 1])
  if used < 0 then
    redis.call('SET', key, 0, 'KEEPTTL')
  end
  if ARGV[2 * i] ~= '0' then
    redis.call('PEXPIREAT', key, ARGV[2 * i])
  end
end
return 0
"""

# KEYS: the counters. ARGV: amount, window end in ms (0: none) for each. A counter below its amount is set to it (and
# to expire at its window's end); one at or above it is left alone.
_RAISE = """
for i = 1, #KEYS do
  local key = KEYS[i]
  local amount = tonumber(ARGV[2 * i - 1])
  if tonumber(redis.call('GET', key) or '0') < amount then
    redis.call('SET', key, amount)
    if ARGV[2 * i] ~= '0' then
      redis.call('PEXPIREAT', key, ARGV[2 * i])
    end
  end
end
return #KEYS
"""


def redacted(url: str) -> str:
    """The URL with its password (and user name) replaced, for logs and messages."""
    parts = urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _window_ms(window_end: float) -> str:
    return str(int(window_end * 1000)) if window_end else "0"


class RedisCounters:
    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 0.05,
        key_prefix: str = "",
        max_connections: int = 64,
        pause_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._timeout = timeout_s
        self._pause = pause_s
        self._clock = clock
        self._paused_until = 0.0
        self._last_failure = ""
        self._namespace = f"{KEY_NAMESPACE}{key_prefix}:" if key_prefix else KEY_NAMESPACE
        self.display_url = redacted(url)
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout_s,  # waiting for a free connection
            # No socket timeouts of redis-py's own: the one around each call bounds connecting, sending and reading
            # together (a connection cut off mid-command is dropped by redis-py), and a second timer per read costs
            # about a quarter of the client's CPU per call (measured with bench/counters_cost.py).
            socket_timeout=None,
            socket_connect_timeout=None,
            # No retries: a second try would spend a second timeout on the request's path; the caller decides.
            retry=Retry(NoBackoff(), 0),
        )
        self._redis = Redis(connection_pool=pool)
        self._reserve = self._redis.register_script(_RESERVE)
        self._adjust = self._redis.register_script(_ADJUST)
        self._raise = self._redis.register_script(_RAISE)

    @classmethod
    def from_settings(cls, settings: CounterSettings) -> RedisCounters:
        if settings.redis_url is None:
            raise ValueError("WARDEN_REDIS_URL is not set")
        return cls(
            settings.redis_url.get_secret_value(),
            timeout_s=settings.redis_timeout_ms / 1000,
            key_prefix=settings.redis_key_prefix,
            max_connections=settings.redis_max_connections,
            pause_s=settings.redis_pause_ms / 1000,
        )

    def __repr__(self) -> str:
        return f"RedisCounters({self.display_url})"

    def key(self, counter: str) -> str:
        return self._namespace + counter

    async def _call(self, what: str, operation: Callable[[], Awaitable[Any]]) -> Any:
        if self._clock() < self._paused_until:
            raise CountersUnavailable(f"Redis at {self.display_url}: not asked again yet after: {self._last_failure}")
        try:
            async with asyncio.timeout(self._timeout):
                return await operation()
        except (RedisError, OSError, TimeoutError) as exc:
            # The message names the operation and the host, never the password (redis-py's own messages carry
            # only host and port).
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            self._last_failure = f"{what} failed: {reason}"
            self._paused_until = self._clock() + self._pause
            raise CountersUnavailable(f"Redis at {self.display_url}: {self._last_failure}") from exc

    async def reserve(self, charges: Sequence[Charge]) -> Reservation | Refusal:
        if not charges:
            return Reservation(())
        args: list[str | int] = []
        for charge in charges:
            args += [charge.amount, charge.limit, _window_ms(charge.window_end)]
        keys = [self.key(c.counter) for c in charges]
        index, used = await self._call("reserve", lambda: self._reserve(keys=keys, args=args))
        if index:
            return Refusal(charges[int(index) - 1], int(used))
        return Reservation(tuple(charges))

    async def _apply(self, what: str, deltas: dict[str, tuple[int, float]]) -> None:
        keys: list[str] = []
        args: list[str | int] = []
        for counter, (delta, window_end) in deltas.items():
            if delta:
                keys.append(self.key(counter))
                args += [delta, _window_ms(window_end)]
        if keys:
            await self._call(what, lambda: self._adjust(keys=keys, args=args))

    async def settle(self, reservation: Reservation, actual: dict[str, int]) -> None:
        reserved = reserved_by_counter(reservation)
        await self._apply(
            "settle",
            {c: (actual[c] - amount, end) for c, (amount, end) in reserved.items() if c in actual},
        )

    async def release(self, reservation: Reservation) -> None:
        reserved = reserved_by_counter(reservation)
        await self._apply("release", {c: (-amount, end) for c, (amount, end) in reserved.items()})

    async def raise_to(self, counts: dict[str, tuple[int, float]]) -> int:
        if not counts:
            return 0
        keys = [self.key(counter) for counter in counts]
        args: list[str | int] = []
        for amount, window_end in counts.values():
            args += [amount, _window_ms(window_end)]
        return int(await self._call("raise", lambda: self._raise(keys=keys, args=args)))

    async def used(self, counter: str) -> int:
        value = await self._call("read", lambda: self._redis.get(self.key(counter)))
        return int(value) if value is not None else 0

    async def close(self) -> None:
        await self._redis.aclose()
        await self._redis.connection_pool.disconnect()
