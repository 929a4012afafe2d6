"""The hashed locks (what `make` and the Dockerfile install) agree with pyproject.toml's pins
(what library users install): a pin bumped in one place only fails here, not in production."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _name(text: str) -> str:
    """PEP 503 normalisation: lxml_html_clean, lxml-html-clean and Lxml.Html.Clean agree."""
    return re.sub(r"[-_.]+", "-", text).lower()


def _pins(requirements: list[str]) -> dict[str, str]:
    pins = {}
    for requirement in requirements:
        match = re.fullmatch(r"([A-Za-z0-9._-]+)(?:\[[^]]*\])?==([^;\s]+)", requirement.strip())
        if match:
            pins[_name(match[1])] = match[2]
    return pins


def _locked(lock: str) -> dict[str, str]:
    text = (ROOT / lock).read_text(encoding="utf-8")
    return _pins(re.findall(r"^([A-Za-z0-9._-]+==\S+)", text, flags=re.MULTILINE))


@pytest.mark.parametrize(
    ("lock", "groups"),
    [("requirements.lock", ["service"]), ("requirements-dev.lock", ["service", "dev"])],
)
def test_lock_has_every_pin_of_pyproject(lock: str, groups: list[str]) -> None:
    project = PYPROJECT["project"]
    wanted: dict[str, str] = {}
    for group in groups:
        extra = (
            project["dependencies"]
            if group == "service"
            else project["optional-dependencies"][group]
        )
        wanted.update(_pins(extra))
    locked = _locked(lock)
    stale = {
        name: (version, locked.get(name))
        for name, version in wanted.items()
        if locked.get(name) != version
    }
    assert not stale, f"{lock} disagrees with pyproject.toml (pin, lock): {stale}; regenerate it"


def test_locks_carry_hashes() -> None:
    """pip then refuses any file whose hash differs (--require-hashes is implied)."""
    for lock in ("requirements.lock", "requirements-dev.lock"):
        text = (ROOT / lock).read_text(encoding="utf-8")
        assert len(_locked(lock)) > 10
        assert text.count("--hash=sha256:") >= len(_locked(lock))
