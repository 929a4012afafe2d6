"""``tradewire demo`` as a newcomer runs it: fails loudly, keeps its data when asked, and
uses the Redis of ``TRADEWIRE_REDIS_URL`` when one is named."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import redis

from tests.conftest import free_port
from tests.integration.test_cli import tradewire
from tests.integration.test_pipeline import EXPECTED
from tests.processes import wait_until

# The demo pages about US–China trade (service/demo_site/expected.json).
RELEVANT = sum(1 for page in EXPECTED.values() if page["us_china_trade"])


def test_demo_whose_jobs_fail_exits_1_with_the_workers_error(tmp_path: Path) -> None:
    (tmp_path / "corpus").write_text("a file where the corpus folder should be")
    done = tradewire("demo", "--keep", str(tmp_path), timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr[-2000:]
    assert "10 new articles queued" in done.stdout
    assert "0 events" in done.stdout
    failures = [line for line in done.stderr.splitlines() if line.startswith("tradewire demo:")]
    assert failures[-1] == "tradewire demo: FAILED"
    assert any("failed: NotADirectoryError" in line for line in failures), done.stderr[-2000:]


def test_demo_without_keep_names_no_folder_it_deletes() -> None:
    done = tradewire("demo", timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{RELEVANT} events on stream tradewire:events" in done.stdout
    assert "10 cleaned articles\n" in done.stdout
    assert "/tmp" not in done.stdout and "tradewire-demo-" not in done.stdout
    assert "tradewire demo:" not in done.stderr


def test_demo_keep_leaves_corpus_and_redis_that_tail_reads(tmp_path: Path) -> None:
    kept = tmp_path / "kept"
    done = tradewire("demo", "--keep", str(kept), timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"10 cleaned articles in {kept / 'corpus'}" in done.stdout
    assert len(list((kept / "corpus").glob("*.txt"))) == 10
    assert f"Kept in {kept}" in done.stdout
    # Follow the printed instructions (on a free port rather than the suggested one).
    lines = done.stdout.splitlines()
    start = next(line for line in lines if "--appendonly yes" in line).strip().rstrip(" &")
    tail = next(line for line in lines if "tradewire tail" in line).strip()
    port = str(free_port())
    server = subprocess.Popen(shlex.split(start.replace("6390", port)), stdout=subprocess.DEVNULL)
    try:
        client = redis.Redis(port=int(port), decode_responses=True)
        assert wait_until(lambda: client.ping() and client.xlen("tradewire:events") == RELEVANT, 20)
        url = tail.split()[0].split("=", 1)[1].replace("6390", port)
        read = tradewire(
            "tail", "--from-start", "--count", str(RELEVANT), env={"TRADEWIRE_REDIS_URL": url}
        )
        assert read.returncode == 0, read.stderr[-2000:]
        assert len(read.stdout.splitlines()) == RELEVANT
    finally:
        server.terminate()
        server.wait(10)


def test_demo_uses_the_redis_of_tradewire_redis_url(
    redis_url: str, text_redis: redis.Redis, tmp_path: Path
) -> None:
    done = tradewire("demo", env={"TRADEWIRE_REDIS_URL": redis_url}, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Using the Redis at redis://127.0.0.1:" in done.stdout
    assert text_redis.xlen("tradewire:events") == RELEVANT  # the events stayed in that Redis
