"""Faults 1–3: a worker killed mid-job, Redis stopped and restarted, a misbehaving site."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import yaml
from pytest_httpserver import HTTPServer
from rq.registry import FailedJobRegistry, StartedJobRegistry

from core import keys, queues
from core.models import Feed
from core.settings import Settings
from service.embedded_redis import EmbeddedRedis
from tests.conftest import free_port
from tests.integration.test_poller import Clock, poll
from tests.processes import child_pids, get_or_none, run_env, start_run, wait_until
from tests.reliability.conftest import Recorder
from tests.reliability.site import Site, serve


def start_site_run(
    tmp_path: Path, site: Site, redis_url: str | None, health_port: int, log: Path
) -> subprocess.Popen[bytes]:
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text(
        yaml.safe_dump({"feeds": [{"url": u, "interval_s": 60} for u in site.feed_urls()]})
    )
    # A download slot of a worker killed mid-download is freed when its lease (the total
    # HTTP timeout + 5 s) runs out: 10 s here rather than production's 35 s, so a kill that
    # lands in a download holds the run up briefly. The local pages come in 0.15 s.
    env = run_env(
        tmp_path, feeds, health_port=str(health_port), host_concurrency="8", workers="2",
        http_total_timeout_s="5",
    )  # fmt: skip
    if redis_url:
        env["TRADEWIRE_REDIS_URL"] = redis_url
    return start_run(env, tmp_path, log)


def outcome(
    client: redis.Redis, stream: str = "tradewire:events"
) -> tuple[int, int, int, set[str]]:
    """(articles with a verdict, relevant ones, stream entries, distinct ids on the stream)."""
    verdicts = [
        json.loads(client.get(k) or "{}") for k in client.scan_iter(keys.verdict("*"), count=1000)
    ]
    relevant = sum(1 for v in verdicts if v.get("us_china_trade"))
    entries = client.xrange(stream)
    return len(verdicts), relevant, len(entries), {f["article_id"] for _, f in entries}


@pytest.fixture
def stop_at_end() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.mark.timeout(300)
@pytest.mark.scenario(
    "1. worker killed mid-extraction", "kill -9 of an extract worker process three times while it "
    "holds a job, 200 articles queued", "every article ends with exactly one verdict and at most one "
    "event; the killed jobs are retried, not lost",
)  # fmt: skip
def test_worker_killed_mid_extraction(
    record: Recorder, tmp_path: Path, stop_at_end: list[subprocess.Popen[bytes]]
) -> None:
    with serve(Site(copies=20, feeds=4, delay_s=0.15)) as site:
        log = tmp_path / "run.log"
        proc = start_site_run(tmp_path, site, None, free_port(), log)
        stop_at_end.append(proc)
        sock = str(tmp_path / "redis" / "redis.sock")
        assert wait_until(lambda: Path(sock).exists(), 20)
        client = redis.Redis(unix_socket_path=sock, decode_responses=True)
        rq_client = redis.Redis(unix_socket_path=sock)
        started = StartedJobRegistry(queue=queues.queue(rq_client, keys.EXTRACT_QUEUE))
        kills = 0
        for _ in range(3):
            assert wait_until(lambda: started.count > 0, 30), log.read_text()[-2000:]
            victims = child_pids(proc.pid, "--queue extract")
            assert victims
            os.kill(victims[0], signal.SIGKILL)
            kills += 1
            time.sleep(1.5)
        done = wait_until(lambda: outcome(client)[0] == 200, 150, every=0.5)
        verdicts, relevant, entries, ids = outcome(client)
        failed = FailedJobRegistry(queue=queues.queue(rq_client, keys.EXTRACT_QUEUE)).count
        files = len(list((tmp_path / "corpus").glob("*.txt")))
        record.observed(f"{kills} kills; {verdicts}/200 articles tagged, {files} files, {entries} events "
                        f"for {relevant} relevant ({len(ids)} distinct), {failed} failed jobs")  # fmt: skip
        assert done, log.read_text()[-3000:]
        assert files == 200 and failed == 0
        assert entries == relevant == len(ids)
        assert proc.poll() is None


@pytest.mark.timeout(420)
@pytest.mark.scenario(
    "2. Redis stopped for 10 s", "Redis (AOF, appendfsync everysec) stopped mid-run of 500 "
    "articles, restarted 10 s later from its AOF", "all 500 articles, no duplicate event, "
    "readiness 503 then 200, the service process never exits",
)  # fmt: skip
def test_redis_stopped_and_restarted(
    record: Recorder, tmp_path: Path, stop_at_end: list[subprocess.Popen[bytes]]
) -> None:
    port, health = free_port(), free_port()
    server = EmbeddedRedis(tmp_path / "own-redis", port=port).start()
    try:
        with serve(Site(copies=50, feeds=5, delay_s=0.02)) as site:
            log = tmp_path / "run.log"
            proc = start_site_run(tmp_path, site, server.url, health, log)
            stop_at_end.append(proc)
            client = redis.Redis.from_url(server.url, decode_responses=True, socket_timeout=2)
            assert wait_until(lambda: outcome(client)[0] >= 100, 90), log.read_text()[-2000:]

            def ready() -> int:
                answer = get_or_none(f"http://127.0.0.1:{health}/readyz", timeout=3)
                return -1 if answer is None else answer.status_code

            server.stop()
            down_at = time.monotonic()
            readiness_down = []
            while time.monotonic() - down_at < 10:
                readiness_down.append(ready())
                time.sleep(1)
            server = EmbeddedRedis(tmp_path / "own-redis", port=port).start()
            assert proc.poll() is None
            finished = wait_until(lambda: outcome(client)[0] == 500, 240, every=1)
            wait_until(lambda: ready() == 200, 60)
            readiness_after = ready()
            verdicts, relevant, entries, ids = outcome(client)
            record.observed(
                f"readiness while down: {sorted(set(readiness_down))}, after: {readiness_after}; "
                f"{verdicts}/500 articles tagged, {entries} events for {relevant} relevant "
                f"({len(ids)} distinct); service process alive: {proc.poll() is None}"
            )
            assert finished, log.read_text()[-3000:]
            assert 503 in readiness_down and readiness_after == 200
            assert entries == relevant == len(ids)
            assert proc.poll() is None
            client.close()
    finally:
        server.stop()


class MisbehavingServer:
    """Raw sockets: /reset closes the connection at once, /drip sends a byte every 0.5 s."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(50)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            request = conn.recv(4096)
            if b"/reset" in request:
                conn.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
            elif b"/drip" in request:
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nContent-Length: 9999\r\n\r\n"
                )
                for _ in range(60):
                    if self.stop.is_set():
                        break
                    conn.sendall(b" ")
                    time.sleep(0.5)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


@pytest.mark.scenario(
    "3. misbehaving news site", "connection resets, a feed dripping one byte per 0.5 s, 500, and "
    "429 with Retry-After: 900, beside 6 healthy feeds",
    "the bad feeds fail within the deadline and back off (429 >= 900 s); the healthy ones flow",
)  # fmt: skip
def test_misbehaving_site(
    record: Recorder,
    httpserver: HTTPServer,
    settings: Settings,
    text_redis: redis.Redis,
    rq_redis: redis.Redis,
) -> None:
    bad = MisbehavingServer()
    try:
        httpserver.expect_request("/500").respond_with_data("oops", status=500)
        httpserver.expect_request("/429").respond_with_data(
            "slow down", status=429, headers={"Retry-After": "900"}
        )
        for i in range(6):
            httpserver.expect_request(f"/good{i}").respond_with_data(
                f"<rss version='2.0'><channel><title>g</title><item><title>x</title><link>https://g.example/{i}</link></item></channel></rss>",
                content_type="application/rss+xml",
            )
        feeds = {
            "reset": Feed(url=f"{bad.base}/reset"), "drip": Feed(url=f"{bad.base}/drip"),
            "500": Feed(url=httpserver.url_for("/500")), "429": Feed(url=httpserver.url_for("/429")),
            **{f"good{i}": Feed(url=httpserver.url_for(f"/good{i}")) for i in range(6)},
        }  # fmt: skip
        clock = Clock()
        quick = settings.with_overrides(http_total_timeout_s=3.0, http_read_timeout_s=2.0)
        started = time.monotonic()
        report = poll(quick, text_redis, rq_redis, list(feeds.values()), clock)
        took = time.monotonic() - started
    finally:
        bad.close()
    states = {n: text_redis.hgetall(keys.feed_state(f.feed_id)) for n, f in feeds.items()}
    statuses = {n: s["last_status"] for n, s in states.items()}
    delay_429 = float(states["429"]["next_poll_at"]) - clock.now
    record.observed(f"cycle took {took:.1f}s; statuses {statuses}; 429 retried in {delay_429:.0f}s; "
                    f"{report.new_items} items from the healthy feeds")  # fmt: skip
    assert statuses["reset"] == "reset" and statuses["drip"] == "timeout"
    assert statuses["500"] == "http_500" and statuses["429"] == "http_429" and delay_429 >= 900
    assert all(statuses[f"good{i}"] == "200" for i in range(6)) and report.new_items == 6
    assert took < 10
