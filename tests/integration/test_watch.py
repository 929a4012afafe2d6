"""`tradewire status --watch`: the dashboard's key figures from the private Redis and a real
/metrics endpoint, refreshed in a rich Live table; bounded by --count for the tests."""

from __future__ import annotations

import io
import json
import math
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from rich.console import Console

from core import keys, queues
from service.health import HealthServer, HealthState
from service.watch import Snapshot, bucket_quantile, metric_figures, take_snapshot, watch
from tests.conftest import ROOT, free_port

STREAM = "tradewire:events"


@pytest.fixture
def metrics_url() -> Iterator[str]:
    """A real /metrics (the service's health server) with the series the watch reads."""
    registry = CollectorRegistry()
    polls = Counter("tradewire_feed_polls", "", ["result"], registry=registry)
    polls.labels(result="200").inc(3)
    polls.labels(result="timeout").inc()
    Counter("tradewire_articles", "", ["status", "reason"], registry=registry).labels(
        status="extracted", reason=""
    ).inc(5)
    Counter("tradewire_events", "", ["outcome"], registry=registry).labels(outcome="emitted").inc(4)
    restarts = Counter("tradewire_worker_restarts", "", ["child", "reason"], registry=registry)
    restarts.labels(child="extract-0", reason="crashed").inc(2)
    latency = Histogram(
        "tradewire_event_latency_seconds", "", ["since"], buckets=(1, 5, 15, 60),
        registry=registry,
    )  # fmt: skip
    for seconds in (2, 3, 4, 30):
        latency.labels(since="discovered").observe(seconds)
    latency.labels(since="published").observe(86400)  # not the discovery latency
    Gauge("tradewire_feeds_listed", "", registry=registry).set(20)
    Gauge("tradewire_feeds_stale", "", registry=registry).set(1)
    server = HealthServer("127.0.0.1", 0, HealthState(), registry).start()
    yield f"http://127.0.0.1:{server.port}/metrics"
    server.stop()


def _event(n: int) -> dict[Any, Any]:  # what redis-py's xadd accepts, loosely
    return {"event_type": "article.created", "article_id": f"{n:016x}",
            "data": json.dumps({"title": f"Tariffs {n}"})}  # fmt: skip


def test_live_table_shows_the_figures_and_follows_changes(
    text_redis: redis.Redis, rq_redis: redis.Redis, metrics_url: str
) -> None:
    queue = queues.queue(rq_redis, keys.EXTRACT_QUEUE)  # JSON jobs, as the service queues them
    for n in range(2):
        queue.enqueue("workers.jobs.extract_job", {"article_id": str(n)}, job_id=f"extract-{n}")
    text_redis.set(keys.POLLER_HEARTBEAT, f"{time.time() - 12:.3f}")
    text_redis.set(keys.FEEDS_LAST_SUCCESS, f"{time.time() - 30:.3f}")
    text_redis.xadd(STREAM, _event(0))
    calls: list[Snapshot] = []

    def take() -> Snapshot:
        if calls:  # the stream grows between refreshes: 3 events a refresh
            for n in range(3):
                text_redis.xadd(STREAM, _event(len(calls) * 10 + n))
        calls.append(take_snapshot(text_redis, rq_redis, STREAM, 900.0, metrics_url))
        return calls[-1]

    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120, color_system=None)
    assert watch(take, console, metrics_url, interval_s=0.05, count=3) == 0
    assert len(calls) == 3
    frames = out.getvalue().split("tradewire —")[1:]
    assert len(frames) == 4  # drawn at start, at each of 2 refreshes, and left on screen at exit
    assert _cell(frames[0], "events on stream") == "1"
    assert re.fullmatch(r"4  \(\d+\.\d/s\)", _cell(frames[1], "events on stream"))
    assert _cell(frames[2], "events on stream").startswith("7  (")
    last = frames[3]
    assert 12 <= _seconds_ago(_cell(last, "poller cycle")) < 20
    assert 30 <= _seconds_ago(_cell(last, "last feed poll ok")) < 40
    assert _cell(last, "stale feeds") == "1 of 20 this poller polls"
    assert "200 3, timeout 1" in last
    assert "extracted 5" in last and "emitted 4" in last
    assert "crashed 2" in last
    # 2, 3, 4 and 30 s: p50 = 1 + 4 * 2/3 in (1, 5], p99 = 15 + 45 * 0.96 in (15, 60]
    assert "p50 3.7 s, p99 58.2 s" in last
    assert "MiB of no maxmemory" in last
    assert _cell(last, "extract") == "2"  # waiting
    assert _cell(last, "tag") == "0"


def _seconds_ago(cell: str) -> int:
    found = re.fullmatch(r"(\d+) s ago", cell)
    assert found, cell
    return int(found.group(1))


def _cell(frame: str, name: str) -> str:
    """The second cell of the table row that starts with ``name``."""
    for line in frame.splitlines():
        cells = [cell.strip() for cell in re.split("[│┃]", line)]
        if len(cells) > 2 and cells[1] == name:
            return cells[2]
    raise AssertionError(f"no row {name!r} in {frame}")


def test_redis_down_and_no_metrics_are_said_not_crashed() -> None:
    closed = redis.Redis(port=free_port(), socket_connect_timeout=0.5)
    url = f"http://127.0.0.1:{free_port()}/metrics"
    snapshot = take_snapshot(closed, closed, STREAM, 900.0, url)
    assert snapshot.report is None and snapshot.metrics is None
    out = io.StringIO()
    watch(lambda: snapshot, Console(file=out, width=200), url, interval_s=0.01, count=2)
    assert "Redis unreachable" in out.getvalue()


def test_quantiles_as_prometheus_computes_them() -> None:
    # The history of alerts_test.yml's latency case: promtool says 888 s.
    buckets = [(60.0, 10.0), (300.0, 10.0), (900.0, 20.0), (math.inf, 20.0)]
    assert bucket_quantile(0.99, buckets) == pytest.approx(888.0)
    assert bucket_quantile(0.5, [(1.0, 0.0), (math.inf, 4.0)]) == 1.0  # open-ended: its floor
    assert bucket_quantile(0.99, [(1.0, 0.0), (math.inf, 0.0)]) is None
    figures = metric_figures('tradewire_events_total{outcome="emitted"} 2.0\n')
    assert figures["tradewire_events_total"] == {"emitted": 2.0}
    assert figures["latency_p99_s"] is None


def test_cli_watch_stops_after_count(redis_url: str, text_redis: redis.Redis) -> None:
    text_redis.xadd(STREAM, _event(1))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWIRE_")}
    env |= {
        "TRADEWIRE_REDIS_URL": redis_url,
        "TRADEWIRE_CONFIG": str(ROOT / "config" / "settings.yaml"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "service", "status", "--watch", "--count", "2", "--interval", "0.1",
         "--metrics-url", f"http://127.0.0.1:{free_port()}/metrics"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "events on stream" in done.stdout and "not reachable at http://127.0.0.1:" in done.stdout
    assert "extract" in done.stdout and "tag" in done.stdout
