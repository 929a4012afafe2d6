"""Per-host politeness for article downloads, shared by every worker on every machine.

Before a download a worker takes a slot for the page's host: at most ``concurrency``
downloads from one host at once, and starts at least ``min_delay_s`` apart. One Lua script
decides atomically on Redis's own clock (``TIME``), so workers on machines whose clocks
disagree still space their requests. A slot is leased: a worker killed mid-download frees
it when the lease runs out.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

import redis

from core import keys
from core.connection import script_line

# How soon a download that found every slot of its host taken asks again. Waiting until
# the earliest lease ran out (1 s, the cap) left slots idle for most of a second: the soak
# (8 slots, two workers downloading 16 pages each) drained at 24.5 articles/s of 40.
FULL_RETRY_S = 0.1
_ACQUIRE = """
-- The start is kept to the microsecond TIME gives: Lua's tostring keeps 14 digits, a
-- tenth of a millisecond of a Unix time, and the spacing then read longer than it was.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local limit, min_delay, lease = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
if redis.call('ZCARD', KEYS[1]) >= limit then
  -- A slot frees when a download ends, which no lease tells (a lease bounds a crash): ask
  -- again soon, though not before the spacing between starts would allow one anyway.
  return tostring(math.min(1.0, math.max(tonumber(ARGV[5]), min_delay - (now - last))))
end
if now - last < min_delay then
  return tostring(min_delay - (now - last))
end
redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
redis.call('EXPIRE', KEYS[1], math.ceil(lease) + 60)
redis.call('SET', KEYS[2], string.format('%.6f', now), 'EX', math.ceil(min_delay) + 60)
return '0'
"""
_RELEASE = "return redis.call('ZREM', KEYS[1], ARGV[1])"


class HostBusyError(Exception):
    """No slot for the host within the wait limit; the job is retried later."""


class HostGate:
    def __init__(
        self, client: redis.Redis, concurrency: int, min_delay_s: float, max_wait_s: float,
        lease_s: float,
    ) -> None:  # fmt: skip
        self.concurrency = concurrency
        self.min_delay_s = min_delay_s
        self.max_wait_s = max_wait_s
        self.lease_s = lease_s
        # Two calls per download, on the connection the story store keeps too: redis-py's
        # own path costs about 50 µs of CPU more per call (core.connection.ScriptLine).
        line = script_line(client)
        self._acquire = line.register(_ACQUIRE)
        self._release = line.register(_RELEASE)

    def try_acquire(self, host: str, token: str) -> float:
        """0 when the slot is ours, else how long to wait before asking again."""
        wait = self._acquire(
            keys=[keys.host_slots(host), keys.host_last_start(host)],
            args=[token, self.concurrency, self.min_delay_s, self.lease_s, FULL_RETRY_S],
        )
        return float(wait)

    def release(self, host: str, token: str) -> None:
        self._release(keys=[keys.host_slots(host)], args=[token])

    async def run(self, host: str, action: Callable[[], Awaitable[object]]) -> object:
        """Run ``action`` holding a slot for ``host``; HostBusyError after max_wait_s."""
        token = uuid.uuid4().hex
        deadline = time.monotonic() + self.max_wait_s
        while (wait := self.try_acquire(host, token)) > 0:
            if time.monotonic() + wait > deadline:
                raise HostBusyError(f"no download slot for {host} within {self.max_wait_s}s")
            await asyncio.sleep(wait)
        try:
            return await action()
        finally:
            self.release(host, token)
