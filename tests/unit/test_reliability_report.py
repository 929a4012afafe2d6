"""docs/reliability.md is tracked: the test suite writes it only when asked to
(``make reliability-report``), never as a side effect of ``make test``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.reliability import conftest as reliability

SCENARIO = """
import pytest

@pytest.mark.scenario("1. tiny", "nothing", "a row")
def test_tiny(record):
    record.observed("a row")
"""


def _run_copy(tmp_path: Path, env_value: str | None) -> Path:
    """A copy of the reliability conftest beside one scenario module, as its own pytest run;
    the path its report would go to."""
    suite = tmp_path / "tests" / "reliability"
    suite.mkdir(parents=True)
    shutil.copy(Path(reliability.__file__), suite / "conftest.py")
    (suite / "test_tiny.py").write_text(SCENARIO, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != reliability.REPORT_ENV}
    if env_value is not None:
        env[reliability.REPORT_ENV] = env_value
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path), "-c", os.devnull, str(suite)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return tmp_path / "docs" / "reliability.md"


def test_a_plain_run_leaves_the_report_alone(tmp_path: Path) -> None:
    doc = _run_copy(tmp_path, None)
    assert not doc.exists()


def test_a_requested_run_writes_the_report(tmp_path: Path) -> None:
    doc = _run_copy(tmp_path, "1")
    text = doc.read_text(encoding="utf-8")
    assert "| 1. tiny | nothing | a row | a row | pass |" in text
    assert "make reliability-report" in text


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", True), ("true", True), ("yes", True), ("", False), ("0", False), (None, False)],
)
def test_report_requested(value: str | None, expected: bool) -> None:
    environ = {} if value is None else {reliability.REPORT_ENV: value}
    assert reliability.report_requested(environ) is expected


def test_a_partial_run_never_writes() -> None:
    every = {p.name for p in Path(reliability.__file__).parent.glob("test_*.py")}
    assert reliability.should_write(True, 3, 3, every)
    assert not reliability.should_write(False, 3, 3, every)  # not asked
    assert not reliability.should_write(True, 2, 3, every)  # a scenario did not record
    assert not reliability.should_write(True, 3, 3, every - {min(every)})  # a module missing
