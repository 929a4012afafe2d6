"""The newcomer's install: build the wheel, install it with the pip a stock Python 3.11
ships (23.x, not upgraded), and use the tool from a directory far from the checkout.

Both bugs this guards against passed every other test, because those run from the checkout:
the old pip skipped trafilatura's ``lxml[html_clean]`` extra (``extract`` died on import),
and the config files were not in the wheel (``tag`` and ``run`` could not find them).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTICLE = ROOT / "service" / "demo_site" / "articles" / "tariff-truce-extended.html"

# A cold pip cache downloads every dependency once; later runs take well under a minute.
pytestmark = pytest.mark.timeout(300)


def _stock_python() -> str:
    """python3.11 as installed, not this test run's virtual environment."""
    return shutil.which("python3.11") or getattr(sys, "_base_executable", sys.executable)


def _clean_env() -> dict[str, str]:
    """No PYTHONPATH (it would import the checkout) and no TRADEWIRE_* settings."""
    return {
        key: value
        for key, value in os.environ.items()
        if key != "PYTHONPATH" and not key.startswith("TRADEWIRE_")
    }


def _run(argv: list[str], cwd: Path, stdin: str = "", timeout: float = 120) -> str:
    done = subprocess.run(
        argv, cwd=cwd, env=_clean_env(), input=stdin, capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the fresh venv's bin/, an empty working directory outside the checkout)."""
    base = tmp_path_factory.mktemp("install")
    wheels, venv, work = base / "wheels", base / "venv", base / "work"
    work.mkdir()
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT)],
        base,
    )
    _run([_stock_python(), "-m", "venv", str(venv)], base)
    pip = [str(venv / "bin" / "python"), "-m", "pip"]
    assert _run([*pip, "--version"], base).startswith("pip 23."), "not the stock pip"
    # Resolved by that pip from pyproject's requirements, as `pip install .` would.
    _run([*pip, "install", "-q", "--find-links", str(wheels), "tradewire"], base, timeout=240)
    _run([*pip, "check"], base)
    return venv / "bin", work


def test_extract_prints_a_saved_pages_article(installed: tuple[Path, Path]) -> None:
    bin_dir, work = installed
    text = _run([str(bin_dir / "tradewire"), "extract", str(ARTICLE)], work)
    assert len(text.split()) > 80


def test_tag_finds_the_packaged_taxonomy(installed: tuple[Path, Path]) -> None:
    bin_dir, work = installed
    line = json.dumps(
        {
            "id": "a1",
            "title": "US and China extend tariff truce",
            "text": "Washington and Beijing agreed to extend their tariff truce for 90 days, "
            "keeping duties on Chinese goods at 30% while trade talks continue.",
        }
    )
    verdict = json.loads(_run([str(bin_dir / "tradewire"), "tag"], work, stdin=line + "\n"))
    assert verdict["id"] == "a1"
    assert verdict["us_china_trade"] is True
    assert not (work / "config").exists()


def test_demo_runs_the_whole_pipeline(installed: tuple[Path, Path]) -> None:
    bin_dir, work = installed
    out = _run([str(bin_dir / "tradewire"), "demo"], work, timeout=150)
    # The bundled site's lead story, tagged relevant, reached the stream.
    assert "US and China extend tariff truce" in out, out
