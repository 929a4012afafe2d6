"""`tradewire run` as a user starts it: embedded Redis, real workers, health, SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import redis
import yaml

from service.demo import demo_feeds
from tests.conftest import free_port
from tests.integration.test_pipeline import EXPECTED
from tests.processes import answers_200, child_pids, get_or_none, run_env, wait_until

# The demo pages about US–China trade (service/demo_site/expected.json).
RELEVANT = sum(1 for page in EXPECTED.values() if page["us_china_trade"])


def test_run_on_embedded_redis_serves_health_emits_and_stops_cleanly(
    demo_site: str, tmp_path: Path
) -> None:
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text(yaml.safe_dump({"feeds": demo_feeds(demo_site)}))
    port = free_port()
    env = run_env(tmp_path, feeds, health_port=str(port), workers="1")
    log_path = tmp_path / "run.log"
    log_file = log_path.open("wb")  # a file, not a pipe nobody reads, which would fill and block
    proc = subprocess.Popen(
        [sys.executable, "-m", "service", "run"], env=env, cwd=tmp_path,
        stdout=log_file, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        live = wait_until(lambda: get_or_none(base + "/healthz"), 20)
        assert live is not None and live.status_code == 200
        ready = wait_until(
            lambda: (r := get_or_none(base + "/readyz")) is not None and r.status_code == 200 and r,
            30,
        )
        assert ready, r.text if (r := get_or_none(base + "/readyz")) else "no answer"
        assert json.loads(ready.text)["checks"]["redis"]["ok"] is True

        client = redis.Redis(
            unix_socket_path=str(tmp_path / "redis" / "redis.sock"), decode_responses=True
        )
        assert wait_until(lambda: client.xlen("tradewire:events") >= RELEVANT, 60)
        # Append-only persistence is on (Redis 7 keeps it in appendonlydir/, 6.2 in one file).
        redis_dir = tmp_path / "redis"
        assert (redis_dir / "appendonly.aof").exists() or (redis_dir / "appendonlydir").is_dir()
        assert_run_metrics(base)

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=45) == 0
        client.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log_file.close()
    output = log_path.read_text()
    assert "service.stopped" in output
    assert len(list((tmp_path / "corpus").glob("*.txt"))) == 10
    # The embedded Redis was stopped with the service.
    assert not (tmp_path / "redis" / "redis.sock").exists()


def assert_run_metrics(base: str) -> None:
    """Metrics of the poller and of the worker processes, summed by the run's /metrics."""

    def sample(name: str) -> float:
        metrics = get_or_none(base + "/metrics")
        assert metrics is not None
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in metrics.text.splitlines()
            if line.startswith(name)
        )

    assert wait_until(lambda: sample('tradewire_events_total{outcome="emitted"}') == RELEVANT, 10)
    assert sample('tradewire_articles_total{reason="",status="extracted"}') == 10
    assert sample('tradewire_feed_polls_total{result="200"}') == 2
    assert sample("tradewire_items_discovered_total") == 10
    assert sample('tradewire_event_latency_seconds_count{since="discovered"}') == RELEVANT
    assert sample('tradewire_queue_depth{queue="extract"}') == 0


def test_children_do_not_outlive_a_killed_run(demo_site: str, tmp_path: Path) -> None:
    """`run` killed with SIGKILL: its workers stop by themselves, and the next start stops
    the embedded redis-server it left behind instead of sharing the AOF with it."""
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text(yaml.safe_dump({"feeds": demo_feeds(demo_site)}))
    env = run_env(tmp_path, feeds, workers="1")
    proc = subprocess.Popen([sys.executable, "-m", "service", "run"], env=env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip

    def kids() -> list[int]:
        return child_pids(proc.pid)

    assert wait_until(lambda: len(kids()) >= 3, 30)  # redis-server, extract and tag workers
    children = kids()
    redis_pid = int((tmp_path / "redis" / "redis.pid").read_text())
    proc.kill()
    proc.wait()
    workers = [pid for pid in children if pid != redis_pid]
    assert wait_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers), 45)
    assert Path(f"/proc/{redis_pid}").exists()  # nothing can stop it but the next start
    second = subprocess.Popen([sys.executable, "-m", "service", "run"], env=env, cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        assert wait_until(lambda: not Path(f"/proc/{redis_pid}").exists(), 20)
        health = f"http://127.0.0.1:{env['TRADEWIRE_HEALTH_PORT']}/healthz"
        assert wait_until(lambda: answers_200(health, timeout=1), 30)
        assert wait_until(lambda: (tmp_path / "redis" / "redis.pid").exists()
                        and int((tmp_path / "redis" / "redis.pid").read_text()) != redis_pid, 20)  # fmt: skip
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(60) == 0
