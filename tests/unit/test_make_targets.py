"""The Makefile's bench and report targets, by ``make -n`` (print the commands, run none)."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def dry_run(target: str, venv: Path) -> str:
    proc = subprocess.run(
        ["make", "-n", "-C", str(ROOT), target, f"VENV={venv}"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return proc.stdout


def test_the_makefile_pins_the_peers_of_the_bench_extra() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    pinned = re.search(r"^PEERS := (.*)$", makefile, re.MULTILINE)
    assert pinned is not None
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert pinned.group(1).split() == extra["project"]["optional-dependencies"]["bench"]


def test_bench_installs_the_pinned_peers_once(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    first = dry_run("bench", venv)
    assert "--target " + str(venv / "bench-peers") + " newspaper4k==0.9.6" in first
    assert first.index("--target") < first.index("benchmarks/run_all.py")
    # As if installed: the project stamp and the peers stamp both present.
    venv.mkdir()
    project = re.search(r"touch (\S*\.installed-\d+)\n", first)
    peers = re.search(r"touch (\S*bench-peers/\.installed-\d+)\n", first)
    assert project is not None and peers is not None
    (venv / "bench-peers").mkdir()
    Path(project.group(1)).touch()
    Path(peers.group(1)).touch()
    again = dry_run("bench", venv)
    assert "pip install" not in again and "benchmarks/run_all.py" in again


def test_only_the_report_target_asks_for_the_reliability_report(tmp_path: Path) -> None:
    assert "TRADEWIRE_RELIABILITY_REPORT" not in dry_run("test", tmp_path / "venv")
    assert "TRADEWIRE_RELIABILITY_REPORT=1" in dry_run("reliability-report", tmp_path / "venv")
