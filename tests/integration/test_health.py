"""Health endpoints over real HTTP against a real Redis that the test stops and restarts."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import redis
import yaml

from core import keys
from core.metrics import REGISTRY
from core.models import Feed
from core.settings import Settings
from service.app import poller_heartbeat_check, redis_check, workers_check
from service.demo import demo_feeds
from service.embedded_redis import EmbeddedRedis
from service.health import HealthServer, HealthState
from service.poller import LAST_SUCCESS_TTL_S, poll_feeds_once
from service.state import FeedStore
from service.status import feeds_check
from tests.conftest import free_port
from tests.processes import get_or_none, run_env, start_run, wait_until


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


def _offline_run(
    tmp_path: Path, redis_url: str, **overrides: str
) -> tuple[subprocess.Popen[bytes], str, Path]:
    """`tradewire run` whose every feed is on a host that does not resolve (as offline)."""
    feeds = tmp_path / "feeds.yaml"
    urls = [f"http://{name}.nonexistent.invalid/feed.xml" for name in ("a", "b", "c")]
    feeds.write_text(yaml.safe_dump({"feeds": [{"url": url} for url in urls]}))
    port = free_port()
    env = run_env(
        tmp_path, feeds, health_port=str(port), workers="1", redis_url=redis_url,
        feeds_degraded_after_s="2", backoff_base_s="1", **overrides,
    )  # fmt: skip
    log = tmp_path / "run.log"
    return start_run(env, tmp_path, log), f"http://127.0.0.1:{port}/readyz", log


def _feeds_degraded(url: str) -> httpx.Response | None:
    answer = get_or_none(url)
    if answer is None or "feeds" not in answer.json()["checks"]:
        return None
    return None if answer.json()["checks"]["feeds"]["ok"] else answer


def test_offline_run_reports_feeds_degraded_but_stays_ready(
    tmp_path: Path, redis_url: str, text_redis: redis.Redis
) -> None:
    proc, readyz, log = _offline_run(tmp_path, redis_url)
    try:
        answer = wait_until(lambda: _feeds_degraded(readyz), 40)
        assert answer is not None, log.read_text()[-3000:]
        # Everything else is fine: still ready (a publisher or network outage is no reason
        # to restart the pod), with the feeds named in the body.
        ready = wait_until(
            lambda: (r := _feeds_degraded(readyz)) and r.status_code == 200 and r, 20
        )
        assert ready, r.text if (r := get_or_none(readyz)) else "no answer"
        body = ready.json()
        assert body["status"] == "degraded" and body["checks"]["feeds"]["degraded"] is True
        assert "no feed poll has succeeded" in body["checks"]["feeds"]["error"]

        status = subprocess.run(
            [sys.executable, "-m", "service", "status"], capture_output=True, text=True,
            env=run_env(tmp_path, tmp_path / "feeds.yaml", redis_url=redis_url), check=False,
        )  # fmt: skip
        assert status.returncode == 0, status.stderr[-2000:]
        assert "feeds check: DEGRADED: no feed poll has succeeded" in status.stdout

        # Several passes over the feeds fail; the hint is logged once.
        feeds = FeedStore(text_redis)
        assert wait_until(
            lambda: all(s.consecutive_errors >= 3 for _f, s in feeds.all_states()), 40
        ), feeds.all_states()
        lines = [line for line in log.read_text().splitlines() if "no feed reachable" in line]
        assert len(lines) == 1, lines
        assert "try `tradewire demo`" in lines[0]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def test_offline_run_is_not_ready_when_told_feeds_are_required(
    tmp_path: Path, redis_url: str
) -> None:
    proc, readyz, log = _offline_run(tmp_path, redis_url, ready_requires_feeds="true")
    try:
        answer = wait_until(lambda: _feeds_degraded(readyz), 40)
        assert answer is not None, log.read_text()[-3000:]
        assert answer.status_code == 503
        assert answer.json()["status"] == "not_ready"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def test_a_successful_poll_clears_the_feeds_check(
    demo_site: str, settings: Settings, text_redis: redis.Redis, rq_redis: redis.Redis
) -> None:
    check = feeds_check(text_redis, degraded_after_s=60)
    assert check() is None  # a process just started is given the time to try
    text_redis.set(keys.FEEDS_LAST_SUCCESS, str(time.time() - 120))
    assert "no feed poll has succeeded for 2 min (limit 60s)" in str(check())
    poll_feeds_once(settings, text_redis, rq_redis, [Feed(url=demo_feeds(demo_site)[0]["url"])])
    assert time.time() - float(text_redis.get(keys.FEEDS_LAST_SUCCESS) or 0) < 10
    assert check() is None
    assert 0 < text_redis.ttl(keys.FEEDS_LAST_SUCCESS) <= LAST_SUCCESS_TTL_S
