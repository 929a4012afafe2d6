"""Lifecycle: SIGTERM with jobs in flight loses nothing; status and failed-job tools."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
import redis
import yaml
from rq.registry import FailedJobRegistry, StartedJobRegistry

from core import keys, queues
from core.queues import failed_jobs, retry_failed
from service.demo import SITE_DIR, _SiteHandler, demo_feeds
from service.status import render_status, status_report
from tests.httpd import serve_handler
from tests.processes import run_env, start_run, wait_until
from workers import corpus


class _SlowHandler(_SiteHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/articles/"):
            time.sleep(1.0)  # a slow publisher: jobs are in flight for a while
        super().do_GET()


@pytest.fixture
def slow_site() -> Iterator[str]:
    with serve_handler(partial(_SlowHandler, directory=str(SITE_DIR))) as base:
        yield base


def _start(tmp_path: Path, log: Path) -> subprocess.Popen[bytes]:
    # Jobs of two articles: the two workers' jobs in hand when SIGTERM comes hold four of
    # the ten, so work is still queued when the service stops.
    env = run_env(tmp_path, tmp_path / "feeds.yaml", workers="2", job_batch_size="2")
    return start_run(env, tmp_path, log)


def test_sigterm_with_jobs_in_flight_loses_nothing(slow_site: str, tmp_path: Path) -> None:
    """SIGTERM mid-run: exit 0, no half-written file; a restart finishes every article once."""
    (tmp_path / "feeds.yaml").write_text(yaml.safe_dump({"feeds": demo_feeds(slow_site)}))
    log = tmp_path / "run.log"
    proc = _start(tmp_path, log)
    sock = str(tmp_path / "redis" / "redis.sock")
    try:
        client = redis.Redis(unix_socket_path=sock, decode_responses=True)
        rq_client = redis.Redis(unix_socket_path=sock)
        started = StartedJobRegistry(queue=queues.queue(rq_client, keys.EXTRACT_QUEUE))
        assert wait_until(lambda: started.count > 0, 30), log.read_text()[-2000:]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        client.close()
        rq_client.close()
        # Stopped before the work was done...
        assert len(list((tmp_path / "corpus").glob("*.txt"))) < 10
        # ...and left no half-written temporary file (dot-named) behind; the directory's id stays.
        assert not [
            p
            for p in (tmp_path / "corpus").iterdir()
            if p.name.startswith(".") and p.is_file() and p.name != corpus.ID_FILE
        ]

        proc = _start(tmp_path, log)  # ...and the restart, from the AOF, finishes it.
        client = redis.Redis(unix_socket_path=sock, decode_responses=True)
        # Every article was tagged exactly once more or less, none lost: all 10 have a
        # verdict, and the stream holds one event per relevant one.
        assert wait_until(lambda: len(list(client.scan_iter(keys.verdict("*")))) == 10, 90), (
            log.read_text()[-3000:]
        )
        time.sleep(1)
        relevant = {
            k.rsplit(":", 1)[1]
            for k in client.scan_iter(keys.verdict("*"))
            if json.loads(client.get(k) or "{}")["us_china_trade"]
        }
        entries = client.xrange("tradewire:events")
        assert len(entries) == len(relevant) >= 5
        assert {f["article_id"] for _, f in entries} == relevant
        assert len(list((tmp_path / "corpus").glob("*.txt"))) == 10
        client.close()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    assert proc.returncode == 0


def test_status_and_failed_tools(text_redis: redis.Redis, rq_redis: redis.Redis) -> None:
    """A failed job shows in status and `failed list`; `failed retry` requeues it."""
    queue = queues.queue(rq_redis, keys.EXTRACT_QUEUE)
    job = queue.enqueue(
        "workers.jobs.extract_job", {"article_id": "x"}, job_id="extract-0000000000000001"
    )
    FailedJobRegistry(queue=queue).add(
        job, exc_string="Traceback...\nTransientFetchError: timeout fetching https://x/"
    )
    queue.remove(job)
    text_redis.xadd("tradewire:events", {"event_type": "article.created", "article_id": "a" * 16,
                                         "data": '{"title": "Hello"}'})  # fmt: skip
    report = status_report(text_redis, rq_redis, "tradewire:events", time.time())
    assert report["queues"]["extract"]["failed"] == 1
    assert report["last_events"][0]["title"] == "Hello"
    text = render_status(report)
    assert "extract" in text and "no heartbeat" in text and "Hello" in text
    jobs = failed_jobs(rq_redis)
    assert [j["job_id"] for j in jobs] == ["extract-0000000000000001"]
    assert retry_failed(rq_redis) == 1
    assert queue.count == 1 and FailedJobRegistry(queue=queue).count == 0
