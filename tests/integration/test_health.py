"""Health endpoints over real HTTP against a real Redis that the test stops and restarts."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import redis

from core import keys
from core.metrics import REGISTRY
from service.app import poller_heartbeat_check, redis_check, workers_check
from service.embedded_redis import EmbeddedRedis
from service.health import HealthServer, HealthState
from tests.conftest import free_port


def test_ready_redis_down_poller_stalled_and_back(tmp_path: Path) -> None:
    port = free_port()
    server = EmbeddedRedis(tmp_path / "redis", port=port).start()
    client = redis.Redis.from_url(
        server.url, decode_responses=True, socket_timeout=1, socket_connect_timeout=1
    )
    state = HealthState()
    state.liveness["loop"] = lambda: None
    state.readiness["redis"] = redis_check(client)
    state.readiness["poller"] = poller_heartbeat_check(client, max_age_s=5)
    health = HealthServer("127.0.0.1", 0, state, REGISTRY).start()
    base = f"http://127.0.0.1:{health.port}"
    try:
        not_yet = httpx.get(base + "/readyz")
        assert not_yet.status_code == 503
        assert not_yet.json()["checks"]["poller"]["error"] == "no poller has completed a cycle yet"

        client.set(keys.POLLER_HEARTBEAT, str(time.time()))
        ready = httpx.get(base + "/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"

        client.set(keys.POLLER_HEARTBEAT, str(time.time() - 60))  # poller stalled
        stalled = httpx.get(base + "/readyz").json()["checks"]["poller"]
        assert not stalled["ok"] and "last poller cycle 60s ago" in stalled["error"]
        client.set(keys.POLLER_HEARTBEAT, str(time.time()))

        server.stop()  # Redis gone: not ready, but alive
        down = httpx.get(base + "/readyz", timeout=10)
        assert down.status_code == 503
        assert down.json()["checks"]["redis"]["ok"] is False
        assert "failing_since" in down.json()["checks"]["redis"]
        assert httpx.get(base + "/healthz").status_code == 200

        server = EmbeddedRedis(tmp_path / "redis", port=port).start()  # back, from its AOF
        client.set(keys.POLLER_HEARTBEAT, str(time.time()))
        assert httpx.get(base + "/readyz").status_code == 200

        state.shutting_down = True  # first thing a SIGTERM does
        assert httpx.get(base + "/readyz").json()["checks"] == {
            "shutdown": {"ok": False, "error": "shutting down"}
        }
        assert httpx.get(base + "/nope").status_code == 404
    finally:
        health.stop()
        client.close()
        server.stop()


def test_worker_check_names_the_queue_without_workers(rq_redis: redis.Redis) -> None:
    from rq import Queue, SimpleWorker

    check = workers_check(rq_redis)
    assert check() == "no live worker on queue(s) extract, tag"
    worker = SimpleWorker([Queue(keys.EXTRACT_QUEUE, connection=rq_redis)], connection=rq_redis)
    worker.register_birth()
    try:
        assert check() == "no live worker on queue(s) tag"
    finally:
        worker.register_death()
