"""Operator safety: credentials in every URL form stay out of output, recycled workers do
not pile up metric files, and a Redis that may evict our keys is named before it bites."""

from __future__ import annotations

import contextlib
import itertools
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
import yaml
from prometheus_client import generate_latest

from core.metrics import exposition_registry
from service.embedded_redis import EmbeddedRedis
from service.supervisor import Supervisor
from tests.conftest import ROOT, free_port
from tests.processes import get_or_none, run_env, wait_until
from tests.reliability.conftest import Recorder
from tests.reliability.test_hostile_input import _tls_files

PASSWORD = "Op3r-s4fety-pw"
QUERY_USER = "tw-query-user"


@contextlib.contextmanager
def started_polls(tmp_path: Path, urls: dict[str, str]) -> Iterator[dict[str, tuple[Path, int]]]:
    """``tradewire poll`` once per URL, side by side (each its own health port and log);
    SIGTERMed on exit. Yields label → (log file, health port)."""
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text(yaml.safe_dump({"feeds": [{"url": f"http://127.0.0.1:{free_port()}/rss"}]}))
    procs: list[subprocess.Popen[bytes]] = []
    runs: dict[str, tuple[Path, int]] = {}
    try:
        for label, url in urls.items():
            port = free_port()
            env = run_env(tmp_path / label, feeds, health_port=str(port)) | {
                "TRADEWIRE_REDIS_URL": url
            }
            log = tmp_path / f"{label}.log"
            with log.open("wb") as out:
                procs.append(
                    subprocess.Popen([sys.executable, "-m", "service", "poll"], env=env, cwd=ROOT,
                                     stdout=out, stderr=subprocess.STDOUT)
                )  # fmt: skip
            runs[label] = (log, port)
        yield runs
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def readyz(port: int) -> httpx.Response | None:
    return get_or_none(f"http://127.0.0.1:{port}/readyz", timeout=5)


def _credential_forms(plain: int, tls: int, sock: Path, cert: Path, secret: str) -> dict[str, str]:
    tls_query = f"ssl_ca_certs={cert}&ssl_cert_reqs=required"
    return {
        "userinfo": f"redis://default:{secret}@127.0.0.1:{plain}/0",
        "password_only": f"redis://:{secret}@127.0.0.1:{plain}/0",
        "query_password": f"redis://127.0.0.1:{plain}/0?password={secret}",
        "query_username": f"redis://127.0.0.1:{plain}/0?username={QUERY_USER}&password={secret}",
        "rediss_userinfo": f"rediss://:{secret}@127.0.0.1:{tls}/0?{tls_query}",
        "rediss_query": f"rediss://127.0.0.1:{tls}/0?{tls_query}&password={secret}",
        "unix_userinfo": f"unix://:{secret}@{sock}?db=0",
        "unix_query": f"unix://{sock}?db=0&password={secret}",
    }


def _status_runs(
    tmp_path: Path, urls: dict[str, str]
) -> dict[str, subprocess.CompletedProcess[str]]:
    """``tradewire status`` per URL, side by side."""
    feeds = tmp_path / "feeds.yaml"
    procs = {}
    for label, url in urls.items():
        env = run_env(tmp_path / label, feeds) | {"TRADEWIRE_REDIS_URL": url}
        procs[label] = subprocess.Popen(
            [sys.executable, "-m", "service", "status"], env=env, cwd=ROOT, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
    done = {}
    for label, proc in procs.items():
        out, err = proc.communicate(timeout=90)
        done[label] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return done


@pytest.mark.timeout(300)
@pytest.mark.scenario(
    "18.10 Redis credentials in every URL form", "a password-protected Redis reached as "
    "user:pass@, :pass@, ?password=, ?username=&password=, rediss:// and unix:// (userinfo and "
    "query); then each with a wrong password",
    "the service starts over every form; no password (nor a query username) appears in the "
    "service.started line, the connection error or /readyz",
)  # fmt: skip
def test_credentials_masked_in_every_url_form(record: Recorder, tmp_path: Path) -> None:
    key, cert = _tls_files(tmp_path)
    plain, tls = free_port(), free_port()
    sock = Path(tempfile.mkdtemp(prefix="tw-")) / "r.sock"  # unix socket paths are short
    args = ["--requirepass", PASSWORD, "--unixsocket", str(sock), "--unixsocketperm", "700",
            "--tls-port", str(tls), "--tls-cert-file", str(cert), "--tls-key-file", str(key),
            "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no"]  # fmt: skip
    with EmbeddedRedis(tmp_path / "redis", port=plain, appendonly=False, extra_args=args,
                       password=PASSWORD) as server:  # fmt: skip
        admin = redis.Redis(port=server.port, password=PASSWORD)
        admin.acl_setuser(QUERY_USER, enabled=True, passwords=[f"+{PASSWORD}"], keys=["*"],
                          channels=["*"], commands=["+@all"])  # fmt: skip
        good = _credential_forms(plain, tls, sock, cert, PASSWORD)
        bodies: dict[str, str] = {}
        with started_polls(tmp_path, good) as runs:
            for label, (log, port) in runs.items():
                response = wait_until(lambda port=port: readyz(port), 60)
                assert response is not None, f"{label}: {log.read_text()[-2000:]}"
                bodies[label] = response.text
        logs = {label: log.read_text() for label, (log, _) in runs.items()}
        refused = _status_runs(
            tmp_path, _credential_forms(plain, tls, sock, cert, "wr0ng" + PASSWORD)
        )
    started = {label: [ln for ln in text.splitlines() if "service.started" in ln] for label, text in logs.items()}  # fmt: skip
    leaks = {
        label: [where for where, text in (("log", logs[label]), ("readyz", bodies[label]),
                ("error", refused[label].stdout + refused[label].stderr)) if PASSWORD in text]
        for label in good
    }  # fmt: skip
    user_leak = QUERY_USER in logs["query_username"] + refused["query_username"].stderr
    record.observed(
        f"started over {sum(bool(s) for s in started.values())}/{len(good)} forms; wrong password "
        f"exits {sorted({p.returncode for p in refused.values()})}; password found in "
        f"{ {k: v for k, v in leaks.items() if v} or 'nothing' }; query username shown: {user_leak}"
    )
    assert all(started.values()), {k: logs[k][-1500:] for k, v in started.items() if not v}
    assert all("***" in lines[0] for lines in started.values())
    assert all(p.returncode == 2 and "not reachable" in p.stderr for p in refused.values())
    assert not any(leaks.values()), leaks
    assert not user_leak


CHILD = """
from prometheus_client import Counter, Gauge, Histogram
Counter("tw_test_jobs", "jobs").inc()
Histogram("tw_test_seconds", "s", buckets=(0.1, 1.0)).observe(0.5)
Gauge("tw_test_live", "live children", multiprocess_mode="livesum").set(1)
"""


def _sample(text: str, name: str) -> float | None:
    match = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(match.group(1)) if match else None


@pytest.mark.timeout(300)
@pytest.mark.scenario(
    "18.11 recycled workers and metric files", "a supervised child that counts one job, observes "
    "one duration, sets a live gauge and exits, recycled 40 times while /metrics is scraped",
    "the multiprocess directory holds a bounded number of files; the counter and histogram total "
    "every child; the dead children's live gauge is gone; the counter never goes backwards",
)  # fmt: skip
def test_recycled_children_leave_bounded_metric_files(record: Recorder, tmp_path: Path) -> None:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    supervisor = Supervisor(env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "PATH": "/usr/bin"})
    supervisor.add("short", [sys.executable, "-c", CHILD])
    registry = exposition_registry(metrics_dir)
    seen: list[float] = []
    done = threading.Event()

    def scrape() -> None:
        while not done.is_set():
            value = _sample(generate_latest(registry).decode(), "tw_test_jobs_total")
            seen.append(value or 0.0)

    scraper = threading.Thread(target=scrape)
    scraper.start()
    try:
        child = supervisor.children[0]
        while child.restarts < 40:
            supervisor.check()
            time.sleep(0.02)
        assert child.process is not None
        child.process.wait(30)  # the last one finishes on its own (its job counted)
        supervisor.stop(10)
    finally:
        done.set()
        scraper.join()
    text = generate_latest(registry).decode()
    files = sorted(p.name for p in metrics_dir.glob("*.db"))
    children = child.restarts + 1
    jobs, count = _sample(text, "tw_test_jobs_total"), _sample(text, "tw_test_seconds_count")
    live = _sample(text, "tw_test_live")
    backwards = [(a, b) for a, b in itertools.pairwise(seen) if b < a]
    record.observed(
        f"{children} children; {len(files)} files left {files}; jobs_total {jobs}, "
        f"seconds_count {count}, live gauge {live}; {len(seen)} scrapes, {len(backwards)} went back"
    )
    assert len(files) <= 3, files
    assert jobs == children and count == children
    assert _sample(text, 'tw_test_seconds_bucket{le="1.0"}') == children
    assert live in (None, 0.0)
    assert not backwards, backwards[:5]


def _eviction_server(tmp_path: Path) -> EmbeddedRedis:
    return EmbeddedRedis(
        tmp_path / "redis", port=free_port(), appendonly=False,
        extra_args=["--maxmemory-policy", "allkeys-lru"],
    )  # fmt: skip


@pytest.mark.timeout(240)
@pytest.mark.scenario(
    "18.eviction Redis that may evict our keys", "a Redis started with --maxmemory-policy "
    "allkeys-lru; the same Redis reached as a user that may not run CONFIG (a managed service)",
    "a warning at start and /readyz 503 naming maxmemory-policy allkeys-lru; where CONFIG is "
    "refused, a log line saying it could not be checked and readiness not failed on it",
)  # fmt: skip
def test_evicting_redis_is_named_at_start_and_in_readyz(record: Recorder, tmp_path: Path) -> None:
    with _eviction_server(tmp_path) as server:
        admin = redis.Redis(port=server.port)
        admin.acl_setuser("managed", enabled=True, passwords=["+managed-pw"], keys=["*"],
                          channels=["*"], commands=["+@all", "-config"])  # fmt: skip
        urls = {
            "evicting": server.url,
            "managed": f"redis://managed:managed-pw@127.0.0.1:{server.port}/0",
        }
        with started_polls(tmp_path, urls) as runs:
            checks = {}
            for label, (log, port) in runs.items():
                response = wait_until(lambda port=port: readyz(port), 60)
                assert response is not None, f"{label}: {log.read_text()[-2000:]}"
                checks[label] = response.json()["checks"]
            logs = {label: log.read_text() for label, (log, _) in runs.items()}
    evicting = checks["evicting"].get("eviction", {})
    warned = [ln for ln in logs["evicting"].splitlines() if "maxmemory" in ln]
    unchecked = [ln for ln in logs["managed"].splitlines() if "could not" in ln]
    record.observed(
        f"evicting: /readyz eviction check {evicting}; start log {warned[:1]}; managed: "
        f"/readyz eviction check {checks['managed'].get('eviction')}, log {unchecked[:1]}"
    )
    assert evicting.get("ok") is False and "allkeys-lru" in evicting["error"]
    assert warned and '"level": "warning"' in warned[0]
    assert checks["managed"].get("eviction", {"ok": True})["ok"] is True
    assert unchecked and "maxmemory-policy" in unchecked[0]
