"""Redis clients, built in one place with timeouts above every blocking call we make."""

from __future__ import annotations

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from core.settings import Settings

# The longest blocking read we issue (tail's XREADGROUP BLOCK, RQ's dequeue) must stay
# under the socket timeout, or redis-py reports a TimeoutError instead of an empty read.
MAX_BLOCK_S = 5


def connect(settings: Settings, *, decode: bool = True, probe: bool = False) -> redis.Redis:
    """A client for ``settings.redis_url``. RQ needs ``decode=False``; our own keys use str.

    ``probe`` is for health checks: one-second timeouts and no retries, so /readyz answers
    at once that Redis is gone instead of after the retries a worker's client makes."""
    if settings.redis_url is None:
        raise ValueError("redis_url is not set: start the embedded Redis first")
    return redis.Redis.from_url(
        settings.redis_url,
        decode_responses=decode,
        socket_timeout=1.0 if probe else settings.redis_socket_timeout_s,
        socket_connect_timeout=1.0 if probe else 5.0,
        health_check_interval=0 if probe else 30,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.1), retries=0 if probe else 3),
        protocol=2,
    )


def eviction_policy(client: redis.Redis) -> str | None:
    """Redis's ``maxmemory-policy`` (``client`` decodes responses), or None where CONFIG is
    refused (managed services rename it or deny it to application users)."""
    try:
        reply = client.config_get("maxmemory-policy")
    except redis.ResponseError:  # unknown command, NOPERM
        return None
    return reply.get("maxmemory-policy")
