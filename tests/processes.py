"""Helpers for tests that run `tradewire` as a separate process, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import redis

from tests.conftest import ROOT, free_port


def wait_until(predicate: Callable[[], Any], timeout: float, every: float = 0.2) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned) or time runs out
    (its last value is returned). A Redis that is down for the moment counts as not yet."""
    deadline = time.monotonic() + timeout
    value: Any = None
    while True:
        try:
            value = predicate()
        except redis.RedisError:
            value = None
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(every)


def get_or_none(url: str, timeout: float = 2.0) -> httpx.Response | None:
    """GET ``url``; None while nothing answers (not started yet, restarting, gone)."""
    try:
        return httpx.get(url, timeout=timeout)
    except httpx.HTTPError:
        return None


def answers_200(url: str, timeout: float = 2.0) -> bool:
    answer = get_or_none(url, timeout)
    return answer is not None and answer.status_code == 200


def run_env(tmp_path: Path, feeds_file: Path, **overrides: str) -> dict[str, str]:
    """The environment of a `tradewire run` against a local site: no TRADEWIRE_* from the
    caller's shell, everything under ``tmp_path``, private hosts allowed, no politeness
    delay (every local site is one host)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWIRE_")}
    env |= {
        "TRADEWIRE_FEEDS_FILE": str(feeds_file),
        "TRADEWIRE_CORPUS_DIR": str(tmp_path / "corpus"),
        "TRADEWIRE_REDIS_EMBEDDED_DIR": str(tmp_path / "redis"),
        "TRADEWIRE_HEALTH_PORT": str(free_port()),
        "TRADEWIRE_ALLOW_PRIVATE_HOSTS": "1",
        "TRADEWIRE_HOST_MIN_DELAY_S": "0",
        "TRADEWIRE_CONFIG": str(ROOT / "config" / "settings.yaml"),
        "TRADEWIRE_TAXONOMY_FILE": str(ROOT / "config" / "taxonomy.yaml"),
    }
    return env | {f"TRADEWIRE_{k.upper()}": v for k, v in overrides.items()}


def start_run(env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    """`tradewire run`, its output appended to ``log`` (a file: a pipe nobody reads fills
    up and blocks the service)."""
    with log.open("ab") as out:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "service", "run"], env=env, cwd=cwd, stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip


def child_pids(pid: int, needle: str = "") -> list[int]:
    """Processes whose parent is ``pid`` and whose command line contains ``needle``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid and needle in cmdline:
            found.append(int(entry.name))
    return found
