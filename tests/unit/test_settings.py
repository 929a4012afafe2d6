"""Settings: defaults, file and environment layering, and clear errors for bad input."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.errors import ConfigError
from core.redact import redact_url
from core.settings import Settings, load_settings, sentinel_addresses


def test_defaults_without_any_source(tmp_path: Path) -> None:
    """With no file and no variables, the documented defaults apply (embedded Redis)."""
    settings = load_settings({}, config_file=None)
    assert settings.redis_url is None
    assert settings.health_port == 8080
    assert settings.stream_name == "tradewire:events"


def test_shipped_settings_file_matches_the_defaults() -> None:
    """config/settings.yaml documents every default: loading it changes nothing."""
    root = Path(__file__).resolve().parents[2]
    assert load_settings({}, config_file=root / "config" / "settings.yaml") == Settings()


def test_environment_overrides_file(tmp_path: Path) -> None:
    """TRADEWIRE_* variables win over the file, with types converted."""
    path = tmp_path / "s.yaml"
    path.write_text("health_port: 9000\nworkers: 3\n")
    settings = load_settings(
        {"TRADEWIRE_WORKERS": "5", "TRADEWIRE_ALLOW_PRIVATE_HOSTS": "yes"}, config_file=path
    )
    assert settings.health_port == 9000
    assert settings.workers == 5
    assert settings.allow_private_hosts is True


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TRADEWIRE_WORKRES": "2"}, "unknown environment variable TRADEWIRE_WORKRES"),
        ({"TRADEWIRE_HEALTH_PORT": "eighty"}, "health_port: 'eighty' is not a valid int"),
        ({"TRADEWIRE_HEALTH_PORT": "70000"}, "health_port must be a TCP port"),
        ({"TRADEWIRE_REDIS_URL": "http://x"}, "must start with redis://"),
        ({"TRADEWIRE_LOG_FORMAT": "xml"}, "log_format: 'xml' is not one of"),
        ({"TRADEWIRE_ALLOW_PRIVATE_HOSTS": "maybe"}, "allow_private_hosts"),
        ({"TRADEWIRE_SITEMAP_MAX_AGE_S": "0"}, "sitemap_max_age_s must be positive"),
        ({"TRADEWIRE_SITEMAP_MAX_AGE_S": "2d"}, "sitemap_max_age_s: '2d' is not a valid int"),
        ({"TRADEWIRE_SITEMAP_INDEX_INTERVAL_S": "-1"}, "sitemap_index_interval_s must be"),
    ],
)
def test_bad_environment_names_the_problem(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(env, config_file=None)


def test_unknown_and_malformed_file(tmp_path: Path) -> None:
    """A typo in the file and broken YAML are both refused with the file named."""
    typo = tmp_path / "typo.yaml"
    typo.write_text("helth_port: 1\n")
    with pytest.raises(ConfigError, match=r"unknown setting.*helth_port"):
        load_settings({}, config_file=typo)
    broken = tmp_path / "broken.yaml"
    broken.write_text("workers: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings({}, config_file=broken)
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings({"TRADEWIRE_CONFIG": str(tmp_path / "missing.yaml")})


def test_redis_password_is_redacted() -> None:
    """The effective settings are safe to log: the password never shows."""
    settings = Settings(redis_url="redis://:s3cret-pw@redis:6379/0")
    assert "s3cret-pw" not in str(settings.redacted())
    assert redact_url("rediss://user:pw@host:6380/1") == "rediss://user:***@host:6380/1"
    assert redact_url("redis://host:6379") == "redis://host:6379"


def test_sitemap_age_defaults_to_two_days_and_is_overridable() -> None:
    assert load_settings({}, config_file=None).sitemap_max_age_s == 2 * 24 * 3600
    settings = load_settings({"TRADEWIRE_SITEMAP_MAX_AGE_S": "3600"}, config_file=None)
    assert settings.sitemap_max_age_s == 3600


def test_sentinel_settings_from_the_environment() -> None:
    """TRADEWIRE_REDIS_SENTINELS and _MASTER name a Sentinel deployment; both passwords are
    masked wherever the settings are shown."""
    settings = load_settings(
        {
            "TRADEWIRE_REDIS_SENTINELS": "s1:26379, [::1]:26380,10.0.0.3:26381",
            "TRADEWIRE_REDIS_SENTINEL_MASTER": "tradewire",
            "TRADEWIRE_REDIS_SENTINEL_PASSWORD": "sentinel-s3cret",
            "TRADEWIRE_REDIS_URL": "redis://:data-s3cret@ignored/2",
        },
        config_file=None,
    )
    assert sentinel_addresses(str(settings.redis_sentinels)) == [
        ("s1", 26379),
        ("::1", 26380),
        ("10.0.0.3", 26381),
    ]
    assert settings.redis_sentinel_master == "tradewire"
    assert not settings.uses_embedded_redis
    shown = f"{settings.redacted()} {settings!r}"
    assert "sentinel-s3cret" not in shown and "data-s3cret" not in shown
    # Sentinels without a URL: database 0, no credentials, and still no embedded server.
    bare = Settings(redis_sentinels="s1:26379", redis_sentinel_master="m")
    assert not bare.uses_embedded_redis and Settings().uses_embedded_redis


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TRADEWIRE_REDIS_SENTINELS": "s1:26379"}, "set together or not at all"),
        ({"TRADEWIRE_REDIS_SENTINEL_MASTER": "m"}, "set together or not at all"),
        (
            {"TRADEWIRE_REDIS_SENTINELS": "s1:26379,s2", "TRADEWIRE_REDIS_SENTINEL_MASTER": "m"},
            "redis_sentinels: 's2' is not host:port",
        ),
        (
            {"TRADEWIRE_REDIS_SENTINELS": "s1:0", "TRADEWIRE_REDIS_SENTINEL_MASTER": "m"},
            "redis_sentinels: 's1:0' is not host:port",
        ),
        (
            {
                "TRADEWIRE_REDIS_SENTINELS": "s1:26379",
                "TRADEWIRE_REDIS_SENTINEL_MASTER": "m",
                "TRADEWIRE_REDIS_URL": "unix:///tmp/r.sock",
            },
            "redis_url must be redis:// or rediss:// with redis_sentinels",
        ),
    ],
)
def test_bad_sentinel_settings_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(env, config_file=None)
