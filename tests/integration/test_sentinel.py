"""Redis Sentinel with real servers: clients built by core/connection follow a failover, the
operator commands find the primary through the sentinels, and the emitter waits for the
replica before an event counts as safe (tests/reliability/sentinel_rig.py starts them)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from structlog.testing import capture_logs

from core.connection import REPLICA_ACK_TIMEOUT_MS, ScriptLine, connect, describe
from core.settings import Settings
from tests.conftest import ROOT
from tests.processes import wait_until
from tests.reliability.sentinel_rig import MASTER, SentinelRig
from workers.events import ARTICLE_CREATED
from workers.stream import Emitter

PASSWORD = "pw-data-4Tq"
SENTINEL_PASSWORD = "pw-sentinel-8Rm"


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[SentinelRig]:
    deployment = SentinelRig(tmp_path / "rig", PASSWORD, SENTINEL_PASSWORD).start()
    yield deployment
    deployment.stop()


def sentinel_settings(rig: SentinelRig) -> Settings:
    return Settings(
        redis_url=f"redis://:{PASSWORD}@unused.invalid:1/0",
        redis_sentinels=rig.addresses,
        redis_sentinel_master=MASTER,
        redis_sentinel_password=SENTINEL_PASSWORD,
    )


def event(article_id: str) -> dict[str, str]:
    return {"event_type": ARTICLE_CREATED, "article_id": article_id, "title": "t"}


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWIRE_")}
    env |= {
        "TRADEWIRE_REDIS_URL": str(settings.redis_url),
        "TRADEWIRE_REDIS_SENTINELS": str(settings.redis_sentinels),
        "TRADEWIRE_REDIS_SENTINEL_MASTER": MASTER,
        "TRADEWIRE_REDIS_SENTINEL_PASSWORD": SENTINEL_PASSWORD,
        "TRADEWIRE_CONFIG": str(ROOT / "config" / "settings.yaml"),
        "TRADEWIRE_LOG_FORMAT": "json",
    }
    return subprocess.run(
        [sys.executable, "-m", "service", *args], env=env, cwd=ROOT, capture_output=True,
        text=True, timeout=60, check=False,
    )  # fmt: skip


def test_clients_and_commands_follow_a_failover(rig: SentinelRig) -> None:
    """Events written before the primary is killed are read after it, from the promoted
    replica, by the same client object and by `tradewire tail` and `status`; no password
    appears in what the commands print or in the description of the deployment."""
    settings = sentinel_settings(rig)
    client = connect(settings)
    emitter = Emitter(client, settings)
    for n in range(3):
        assert emitter.emit(event(f"{n:016x}")).created
    # A script on a kept connection (the story store's kind) follows the failover too.
    count = ScriptLine(client).register(
        "redis.call('SET', KEYS[2], ARGV[1]) return redis.call('XLEN', KEYS[1])"
    )
    assert count(keys=[settings.stream_name, "line-write"], args=["before"]) == 3
    old = rig.primary_port()
    rig.kill(int(old or 0))
    assert wait_until(lambda: rig.primary_port() not in (None, old), 60, every=0.1)
    # The same client, with its pooled connection to the dead server: it reconnects
    # through the sentinels, and the events (acknowledged by the replica) are there.
    assert wait_until(lambda: client.xlen(settings.stream_name) == 3, 10)
    assert not emitter.emit(event(f"{0:016x}")).created  # its "emitted" key came along too
    client.set("written-after", "1")  # the promoted replica takes writes
    assert count(keys=[settings.stream_name, "line-write"], args=["after"]) == 3
    assert client.get("line-write") == "after"
    tail = cli(settings, "tail", "--from-start", "--count", "3")
    assert tail.returncode == 0, tail.stderr
    assert [json.loads(line)["article_id"] for line in tail.stdout.splitlines()] == [
        f"{n:016x}" for n in range(3)
    ]
    status = cli(settings, "status")
    assert status.returncode == 0, status.stderr
    shown = tail.stdout + tail.stderr + status.stdout + status.stderr + describe(settings)
    assert PASSWORD not in shown and SENTINEL_PASSWORD not in shown
    client.close()


def test_emitter_waits_for_the_replica_and_goes_on_without_it(rig: SentinelRig) -> None:
    """An event is acknowledged by the replica before emit returns; with the replica
    frozen, emit waits its bound, says so, and the next events do not wait again."""
    settings = sentinel_settings(rig)
    client = connect(settings)
    emitter = Emitter(client, settings)
    with capture_logs() as logs:
        assert emitter.emit(event("a" * 16)).created
    assert not [e for e in logs if e["event"] == "stream.replica_ack_missing"]
    replica = next(s for s in rig.servers if s.port != rig.primary_port())
    assert replica.process is not None
    os.kill(replica.process.pid, signal.SIGSTOP)
    try:
        with capture_logs() as logs:
            started = time.monotonic()
            assert emitter.emit(event("b" * 16)).created
            waited = time.monotonic() - started
            started = time.monotonic()
            assert emitter.emit(event("c" * 16)).created
            alone = time.monotonic() - started
    finally:
        os.kill(replica.process.pid, signal.SIGCONT)
    assert waited >= REPLICA_ACK_TIMEOUT_MS / 1000 * 0.9
    assert alone < REPLICA_ACK_TIMEOUT_MS / 1000 / 2
    missing = [e for e in logs if e["event"] == "stream.replica_ack_missing"]
    assert [(e["article_id"], e["replicas"]) for e in missing] == [("b" * 16, 0)]
    assert client.xlen(settings.stream_name) == 3
    client.close()


def test_probe_client_fails_fast_while_no_primary_answers(rig: SentinelRig) -> None:
    """/readyz's client: one try, one-second timeouts, through the sentinels too."""
    settings = sentinel_settings(rig)
    probe = connect(settings, probe=True)
    assert probe.ping()
    rig.kill(int(rig.primary_port() or 0))
    started = time.monotonic()
    with pytest.raises(redis.RedisError):
        probe.ping()
    assert time.monotonic() - started < 3
    probe.close()


def test_idle_worker_stops_at_once_on_sigterm(rig: SentinelRig, tmp_path: Path) -> None:
    """SIGTERM interrupts RQ's blocking dequeue; the interrupted connection must be closed,
    not handed back with the BLPOP's reply still owed (redis-py's Sentinel connection keeps
    it), or the worker's last command waits behind it and the supervisor has to kill it."""
    settings = sentinel_settings(rig)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWIRE_")} | {
        "TRADEWIRE_REDIS_URL": str(settings.redis_url),
        "TRADEWIRE_REDIS_SENTINELS": rig.addresses,
        "TRADEWIRE_REDIS_SENTINEL_MASTER": MASTER,
        "TRADEWIRE_REDIS_SENTINEL_PASSWORD": SENTINEL_PASSWORD,
        "TRADEWIRE_CORPUS_DIR": str(tmp_path / "corpus"),
        "TRADEWIRE_CONFIG": str(ROOT / "config" / "settings.yaml"),
        "TRADEWIRE_TAXONOMY_FILE": str(ROOT / "config" / "taxonomy.yaml"),
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "service", "work-one", "--queue", "extract", "--name", "w1"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    client = connect(settings)
    try:
        assert wait_until(lambda: client.exists("rq:worker:w1"), 60)
        time.sleep(1)  # in its blocking dequeue
        stopping = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(20) == 0
        assert time.monotonic() - stopping < 10
        assert client.hget("rq:worker:w1", "death")  # it said goodbye to Redis
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        client.close()
