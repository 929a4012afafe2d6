"""The gauges /metrics reads from Redis at each scrape, against the private redis-server:
what the alerts and the dashboard rely on when Redis is up, down, or refuses INFO."""

from __future__ import annotations

import io
import math
import time
from collections.abc import Iterator

import pytest
import redis
from prometheus_client import CollectorRegistry
from rich.console import Console

from core import keys
from core.metrics import RedisStateCollector
from service.watch import render, take_snapshot
from tests.conftest import free_port

STREAM = "tradewire:events"


def _samples(client: redis.Redis) -> dict[str, float]:
    registry = CollectorRegistry()
    registry.register(RedisStateCollector(client, STREAM))
    return {
        sample.name + str(sorted(sample.labels.values())): sample.value
        for family in registry.collect()
        for sample in family.samples
    }


def test_up_ages_and_memory(rq_redis: redis.Redis) -> None:
    rq_redis.set(keys.POLLER_HEARTBEAT, f"{time.time() - 12:.3f}")
    rq_redis.xadd(STREAM, {"data": "{}"})
    samples = _samples(rq_redis)
    assert samples["tradewire_redis_up[]"] == 1
    assert 12 <= samples["tradewire_poller_heartbeat_age_seconds[]"] < 20
    # Never succeeded (or the key expired): +Inf, which `> 900` catches.
    assert math.isinf(samples["tradewire_feeds_last_success_age_seconds[]"])
    assert samples["tradewire_redis_used_memory_bytes[]"] > 100_000
    assert samples["tradewire_redis_maxmemory_bytes[]"] >= 0
    assert samples["tradewire_stream_length[]"] == 1
    assert samples["tradewire_queue_depth['extract']"] == 0


def test_redis_down_leaves_only_up_at_zero() -> None:
    closed = redis.Redis(port=free_port(), socket_connect_timeout=0.5)
    started = time.monotonic()
    assert _samples(closed) == {"tradewire_redis_up[]": 0}
    assert time.monotonic() - started < 5  # a scrape still answers within its timeout


@pytest.fixture
def user_without_info(redis_url: str, rq_redis: redis.Redis) -> Iterator[redis.Redis]:
    """An ACL user that may run everything but INFO (as a least-privilege user might)."""
    name = "tw-metrics-test"
    rq_redis.acl_setuser(name, enabled=True, passwords=["+secret"], keys=["*"],
                         commands=["+@all", "-info"], channels=["*"])  # fmt: skip
    client = redis.Redis.from_url(redis_url, username=name, password="secret")
    try:
        yield client
    finally:
        client.close()
        rq_redis.acl_deluser(name)


def test_info_refused_leaves_out_only_memory(user_without_info: redis.Redis) -> None:
    with pytest.raises(redis.exceptions.NoPermissionError):
        user_without_info.info("memory")
    samples = _samples(user_without_info)
    assert samples["tradewire_redis_up[]"] == 1
    assert "tradewire_queue_depth['tag']" in samples
    assert not any(name.startswith("tradewire_redis_used_memory") for name in samples)
    # `status --watch` says so too, and shows the rest.
    snapshot = take_snapshot(user_without_info, user_without_info, STREAM, 900.0, None)
    assert snapshot.report is not None and snapshot.memory is None
    out = io.StringIO()
    Console(file=out, width=120).print(render(snapshot, None, None))
    assert "up, memory not readable (INFO refused)" in out.getvalue()
    assert "events on stream" in out.getvalue()
