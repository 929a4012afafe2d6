"""Where the settings, feed list and taxonomy come from: an environment variable's file,
then ./config/, then the defaults shipped in the package; and an error naming every place
looked when none exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import core.yamlfile
from core.errors import ConfigError
from core.settings import load_settings
from core.yamlfile import packaged_config_dir

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with no config/ in it, as for an installed tool."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def _local_config(work: Path, **files: str) -> None:
    (work / "config").mkdir()
    for name, text in files.items():
        (work / "config" / f"{name}.yaml").write_text(text, encoding="utf-8")


def test_from_source_the_packaged_defaults_are_the_checkouts_config() -> None:
    """One copy of the defaults: a checkout has no core/defaults/, so config/ is used."""
    assert packaged_config_dir() == ROOT / "config"
    assert not (ROOT / "core" / "defaults").exists()


def test_without_local_config_the_packaged_defaults_apply(elsewhere: Path) -> None:
    settings = load_settings({})
    assert settings.feeds_file == packaged_config_dir() / "feeds.yaml"
    assert settings.taxonomy_file == packaged_config_dir() / "taxonomy.yaml"
    assert settings.workers == 2


def test_local_config_overrides_the_packaged_defaults(elsewhere: Path) -> None:
    _local_config(elsewhere, settings="workers: 7\n", feeds="feeds: []\n", taxonomy="{}\n")
    settings = load_settings({})
    assert settings.workers == 7
    assert settings.feeds_file == Path("config/feeds.yaml")
    assert settings.taxonomy_file == Path("config/taxonomy.yaml")


def test_a_local_file_overrides_only_itself(elsewhere: Path) -> None:
    """A config/ holding just a feed list still gets the packaged taxonomy."""
    _local_config(elsewhere, feeds="feeds: []\n")
    settings = load_settings({})
    assert settings.feeds_file == Path("config/feeds.yaml")
    assert settings.taxonomy_file == packaged_config_dir() / "taxonomy.yaml"


def test_environment_variables_override_local_config(elsewhere: Path, tmp_path: Path) -> None:
    _local_config(elsewhere, settings="workers: 7\n", feeds="feeds: []\n", taxonomy="{}\n")
    mine = tmp_path / "mine.yaml"
    mine.write_text("workers: 9\n", encoding="utf-8")
    settings = load_settings(
        {
            "TRADEWIRE_CONFIG": str(mine),
            "TRADEWIRE_FEEDS_FILE": str(tmp_path / "feeds.yaml"),
            "TRADEWIRE_TAXONOMY_FILE": str(tmp_path / "taxonomy.yaml"),
        }
    )
    assert settings.workers == 9
    assert settings.feeds_file == tmp_path / "feeds.yaml"
    assert settings.taxonomy_file == tmp_path / "taxonomy.yaml"


def test_a_file_named_in_the_settings_file_is_used(elsewhere: Path, tmp_path: Path) -> None:
    _local_config(elsewhere, settings=f"taxonomy_file: {tmp_path / 't.yaml'}\n")
    assert load_settings({}).taxonomy_file == tmp_path / "t.yaml"


def test_a_missing_named_settings_file_is_an_error(elsewhere: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape("settings file nowhere.yaml does not exist")):
        load_settings({"TRADEWIRE_CONFIG": "nowhere.yaml"})


def test_nothing_found_names_every_place_looked(
    elsewhere: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broken install (no packaged defaults) and no config/: the error says where it looked."""
    empty = tmp_path / "no-defaults"
    monkeypatch.setattr(core.yamlfile, "packaged_config_dir", lambda: empty)
    with pytest.raises(ConfigError) as caught:
        load_settings({})
    message = str(caught.value)
    assert message.startswith("no feed list found: TRADEWIRE_FEEDS_FILE is not set")
    assert str(elsewhere / "config" / "feeds.yaml") in message
    assert str(empty / "feeds.yaml") in message

    with pytest.raises(ConfigError, match=re.escape(str(empty / "taxonomy.yaml"))):
        load_settings({"TRADEWIRE_FEEDS_FILE": "feeds.yaml"})


def test_a_shipped_feed_list_is_grown_as_a_local_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`feeds import` / `feeds discover --add` never edit the installed package's list."""
    from service.cli import _writable_feed_list

    shipped = tmp_path / "site-packages" / "core" / "defaults"
    shipped.mkdir(parents=True)
    (shipped / "feeds.yaml").write_text("feeds: []\n")
    monkeypatch.setattr(core.yamlfile, "packaged_config_dir", lambda: shipped)
    monkeypatch.chdir(tmp_path)
    assert _writable_feed_list(shipped / "feeds.yaml") == Path("config") / "feeds.yaml"
    assert (tmp_path / "config").is_dir()
    own = tmp_path / "mine.yaml"
    assert _writable_feed_list(own) == own
