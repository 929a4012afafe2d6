"""Fault: the Redis primary of a Sentinel deployment killed (SIGKILL) mid-run.

What asynchronous replication can lose, and how the design gets it back
------------------------------------------------------------------------
Redis acknowledges a write before its replica has it, so the writes of the last moments
before the kill (up to the replication lag, usually under a millisecond here, at most what
``down-after-milliseconds`` + the promotion let through) may be missing on the promoted
replica. The replica always holds a *prefix* of the primary's history (one ordered
replication stream for all clients), so what is lost is the newest suffix:

- seen-marks of the last poll and the jobs it queued. A poll claims its new items (a
  10-minute claim), queues them, then makes the claims durable; so a lost job has lost its
  durable marks too, and the next poll of the feed queues the items again, at once if the
  claim went as well, else once the claim expires (late, not lost);
- claims, corpus numbers, RQ's bookkeeping of finished or started jobs: a job that ran may
  run again. The corpus number of an article already written is read back from its
  ``.meta`` file on disk when Redis has none, so the re-run rewrites the same file; the tag
  step finds the corpus's ``.announced`` memory and does not emit a second time;
- the newest stream entries and their "emitted" keys (one Lua script, so both or neither):
  this is the one loss the disk could make permanent, since ``.announced`` is written after
  the event and would then stop the retry from emitting it again. So under Sentinel the
  emitter sends ``WAIT 1`` on the same connection as the script and returns only when the
  replica holds the event; a primary lost in between fails the call, the job is retried on
  the promoted replica and emits there (workers/stream.py).

A consumer that read an entry from the old primary in its last instant may see that
article's event again from the new one (a different entry id): consumers deduplicate by
``article_id``, as they must after any redelivery. The stream itself ends with exactly one
``article.created`` per relevant article, which is what this test checks.
"""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml

from core.connection import connect
from core.settings import Settings
from tests.conftest import free_port
from tests.processes import get_or_none, run_env, start_run, wait_until
from tests.reliability.conftest import Recorder
from tests.reliability.sentinel_rig import MASTER, SentinelRig
from tests.reliability.site import Site, serve
from tests.reliability.test_process_faults import outcome, stop_at_end  # noqa: F401

# Test-only secrets, asserted absent from the service's log.
PASSWORD = "data-pw-7Qx"
SENTINEL_PASSWORD = "sentinel-pw-9Zk"
ARTICLES = 200


class Readiness:
    """Samples /readyz four times a second in a thread: (monotonic time, status)."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/readyz"
        self.samples: list[tuple[float, int]] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.done.is_set():
            answer = get_or_none(self.url)
            status = -1 if answer is None else answer.status_code
            self.samples.append((time.monotonic(), status))
            self.done.wait(0.25)

    def first_ok_after(self, moment: float) -> float | None:
        return next((t for t, s in self.samples if t > moment and s == 200), None)

    def statuses(self, start: float, end: float) -> set[int]:
        return {s for t, s in self.samples if start <= t < end}


def _start(tmp_path: Path, site: Site, rig: SentinelRig, health: int) -> subprocess.Popen[bytes]:
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text(
        yaml.safe_dump({"feeds": [{"url": u, "interval_s": 60} for u in site.feed_urls()]})
    )
    env = run_env(
        tmp_path, feeds, health_port=str(health), host_concurrency="8", workers="2",
        # The host part is never used: the sentinels say where the primary is.
        redis_url=f"redis://:{PASSWORD}@nowhere.invalid/0", redis_sentinels=rig.addresses,
        redis_sentinel_master=MASTER, redis_sentinel_password=SENTINEL_PASSWORD,
    )  # fmt: skip
    return start_run(env, tmp_path, tmp_path / "run.log")


@pytest.mark.timeout(420)
@pytest.mark.scenario(
    "20.1 Redis primary killed under Sentinel", "SIGKILL of the Redis primary (one replica, three "
    "sentinels, down-after 1 s) mid-run of 200 articles", "the service follows the promoted "
    "replica within the failover, /readyz 503 only meanwhile, every article in the corpus, "
    "exactly one event per relevant article",
)  # fmt: skip
def test_primary_killed_under_sentinel(
    record: Recorder,
    tmp_path: Path,
    stop_at_end: list[subprocess.Popen[bytes]],  # noqa: F811
) -> None:
    rig = SentinelRig(tmp_path / "rig", PASSWORD, SENTINEL_PASSWORD).start()
    try:
        _scenario(record, tmp_path, rig, stop_at_end)
    finally:
        for proc in stop_at_end:  # before the servers, so the service stops cleanly
            if proc.poll() is None:
                proc.terminate()
                proc.wait(60)
        rig.stop()


def _scenario(
    record: Recorder, tmp_path: Path, rig: SentinelRig, procs: list[subprocess.Popen[bytes]]
) -> None:
    settings = Settings(
        redis_url=f"redis://:{PASSWORD}@/0", redis_sentinels=rig.addresses,
        redis_sentinel_master=MASTER, redis_sentinel_password=SENTINEL_PASSWORD,
    )  # fmt: skip
    client = connect(settings)
    health = free_port()
    log = tmp_path / "run.log"
    with serve(Site(copies=ARTICLES // 10, feeds=4, delay_s=0.05)) as site:
        proc = _start(tmp_path, site, rig, health)
        procs.append(proc)
        readiness = Readiness(health)
        readiness.thread.start()
        # Ready first, whatever the machine's speed; then the kill comes mid-run.
        assert wait_until(lambda: readiness.first_ok_after(0.0) is not None, 90), (
            f"{readiness.statuses(0.0, time.monotonic())}\n{log.read_text()[-3000:]}"
        )
        assert wait_until(lambda: outcome(client)[0] >= 60, 150), log.read_text()[-3000:]
        ready_before = readiness.first_ok_after(0.0)
        killed_at, promoted_at, back_at = _kill_primary(rig, readiness)
        done = wait_until(lambda: outcome(client)[0] == ARTICLES, 240, every=1)
        time.sleep(2)  # a few more samples of readiness after the work is done
        readiness.done.set()
        end = time.monotonic()
        verdicts, relevant, entries, ids = outcome(client)
        files = {p.name.split("_", 1)[1] for p in (tmp_path / "corpus").glob("*.txt")}
        served = len(set(site.article_paths))
        record.observed(
            f"{_timeline(killed_at, promoted_at, back_at)}; readiness after the kill: "
            f"{sorted(readiness.statuses(killed_at, back_at))} then "
            f"{sorted(readiness.statuses(back_at, end))}; {verdicts}/{served} articles "
            f"tagged, {len(files)} in the corpus, {entries} events for {relevant} relevant "
            f"({len(ids)} distinct); service alive: {proc.poll() is None}"
        )
        assert done, log.read_text()[-3000:]
        assert ready_before is not None and ready_before < killed_at
        assert readiness.statuses(ready_before, killed_at) == {200}
        assert readiness.statuses(back_at, end) == {200}, readiness.samples
        # Followed within the failover: readiness is back within a few probe periods
        # of the promotion (the probe reconnects through the sentinels on its next call).
        assert back_at - promoted_at < 5.0
        assert len(files) == served == verdicts
        assert entries == relevant == len(ids)
        assert proc.poll() is None
        text = log.read_text()
        assert PASSWORD not in text and SENTINEL_PASSWORD not in text
        assert "redis_sentinels" in text  # the settings were logged, masked
        proc.terminate()  # and it stops cleanly on the new primary: no worker left to kill
        assert proc.wait(60) == 0
        assert "supervisor.child_killed" not in log.read_text()
    client.close()


def _kill_primary(rig: SentinelRig, readiness: Readiness) -> tuple[float, float, float]:
    """Kill the primary; when it was killed, when the sentinels promoted the replica, and
    when /readyz first answered 200 after the kill (monotonic seconds)."""
    old = rig.primary_port()
    assert old is not None
    killed_at = time.monotonic()
    rig.kill(old)
    promoted = wait_until(lambda: rig.primary_port() not in (None, old), 60, every=0.05)
    promoted_at = time.monotonic()
    assert promoted, "the sentinels did not promote the replica"
    assert wait_until(lambda: readiness.first_ok_after(killed_at), 60, every=0.1)
    return killed_at, promoted_at, readiness.first_ok_after(killed_at) or 0.0


def _timeline(killed_at: float, promoted_at: float, back_at: float) -> str:
    timeline = (
        f"kill -> promoted {promoted_at - killed_at:.1f} s -> /readyz 200 "
        f"{back_at - killed_at:.1f} s"
    )
    print(f"failover timeline: {timeline}")
    return timeline
