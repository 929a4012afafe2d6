"""One validated, frozen settings object, loaded once at the edge and passed in.

Sources, later wins: the defaults below, a settings file (the one ``TRADEWIRE_CONFIG``
names, else ``config/settings.yaml``, else the packaged copy: core/yamlfile.py), then
``TRADEWIRE_<NAME>`` environment variables. ``feeds_file`` and ``taxonomy_file`` left unset
(or null) are looked up the same way: ``config/`` first, then the packaged defaults.
Unknown keys in either source are errors, so a typo never silently falls back to a default.
Units are in the names (``_s`` seconds, ``_bytes``).
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from core.errors import ConfigError
from core.redact import MASK, redact_url
from core.yamlfile import find_config_file, locate_config_file, read_mapping

ENV_PREFIX = "TRADEWIRE_"
CONFIG_ENV = "TRADEWIRE_CONFIG"
# Settings naming a file that is looked up when unset: (field, file name, role in errors).
_LOOKED_UP_FILES = (
    ("feeds_file", "feeds.yaml", "feed list"),
    ("taxonomy_file", "taxonomy.yaml", "taxonomy"),
)

LogFormat = Literal["auto", "json", "console"]
StreamTrim = Literal["minid", "maxlen"]


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every knob of the service. See ``config/settings.yaml`` for what each one means."""

    # Redis: None means "start an embedded redis-server under redis_embedded_dir".
    redis_url: str | None = None
    redis_embedded_dir: Path = Path("var/redis")
    redis_socket_timeout_s: float = 30.0
    # Sentinel: "host:port,host:port" and the monitored master's name. When set, redis_url
    # supplies only the database number and credentials (its host is not used).
    redis_sentinels: str | None = None
    redis_sentinel_master: str | None = None
    redis_sentinel_password: str | None = None

    # Files.
    feeds_file: Path = Path("config/feeds.yaml")
    taxonomy_file: Path = Path("config/taxonomy.yaml")
    corpus_dir: Path = Path("var/corpus")

    # Health and metrics HTTP server.
    health_host: str = "127.0.0.1"
    health_port: int = 8080

    # Output stream.
    stream_name: str = "tradewire:events"
    # Optional second stream of every cleaned article, relevant or not (off when None).
    articles_stream_name: str | None = None
    stream_trim: StreamTrim = "minid"
    stream_retention_s: int = 7 * 24 * 3600
    stream_maxlen: int = 1_000_000
    emitted_ttl_s: int = 180 * 24 * 3600

    # Poller.
    poll_interval_s: float = 300.0
    poll_min_interval_s: float = 60.0
    poll_max_interval_s: float = 24 * 3600.0
    poll_concurrency: int = 256
    poll_lease_s: float = 120.0
    backoff_base_s: float = 60.0
    backoff_max_s: float = 6 * 3600.0
    seen_ttl_s: int = 180 * 24 * 3600
    max_items_per_feed: int = 500
    # Feed parsing in worker processes (0: one per CPU core), each parse ended after
    # parse_timeout_s per MiB of body (one MiB's worth at least); bodies up to
    # parse_inline_max_bytes are parsed in the poller itself.
    parse_workers: int = 0
    parse_timeout_s: float = 20.0
    parse_inline_max_bytes: int = 0
    # WebSub push (off while None): the public URL at which hubs reach the health server's
    # /websub path; feeds that declare a hub are then subscribed and polled more slowly.
    websub_callback_url: str | None = None
    websub_lease_s: int = 10 * 24 * 3600
    websub_poll_factor: float = 4.0
    # Sitemap sources: entries older than this are not taken (news sitemaps list two days),
    # and a sitemap index is fetched again only this often (its current children each poll).
    sitemap_max_age_s: int = 2 * 24 * 3600
    sitemap_index_interval_s: float = 3600.0

    # HTTP client.
    user_agent: str = "tradewire/0.1 (+https://github.com/tradewire/tradewire; news ingestion)"
    http_connect_timeout_s: float = 10.0
    http_read_timeout_s: float = 15.0
    http_total_timeout_s: float = 30.0
    http_max_redirects: int = 5
    max_feed_bytes: int = 8 * 1024 * 1024
    max_page_bytes: int = 4 * 1024 * 1024
    allow_private_hosts: bool = False
    # Article downloads per host: at once, and seconds between starts (all workers together).
    host_concurrency: int = 2
    host_min_delay_s: float = 1.0
    host_max_wait_s: float = 20.0
    respect_robots_txt: bool = True

    # Workers.
    workers: int = 2
    job_timeout_s: int = 60
    job_retries: int = 3
    job_batch_size: int = 16
    # Fresh articles are tagged by the extract job that stored them; the tag queue then serves
    # retag, replays and the articles whose tagging failed there.
    tag_in_extract: bool = True
    worker_max_jobs: int = 1000
    min_article_words: int = 80
    duplicate_window_s: int = 14 * 24 * 3600  # how long a text is remembered for near-dups
    stories_enabled: bool = True  # every cleaned article gets a story_id (workers/stories.py)
    story_ttl_s: int = 30 * 24 * 3600  # a story untouched this long is forgotten
    story_update_interval_s: int = 3600  # at most one story.updated per story this often
    story_posting_limit: int = 25  # most recently published kept per index key (bounds lookups)

    # Readiness limits: over these, /readyz says 503 (the backlog is not being worked off).
    ready_max_backlog: int = 50_000
    ready_max_failed: int = 10_000
    # No feed poll succeeded for this long: the feeds check says degraded (503 only if told).
    feeds_degraded_after_s: float = 900.0
    ready_requires_feeds: bool = False

    # Logging.
    log_level: str = "INFO"
    log_format: LogFormat = "auto"

    @property
    def uses_embedded_redis(self) -> bool:
        """Neither a URL nor Sentinels: ``run`` and ``demo`` start a private redis-server."""
        return self.redis_url is None and self.redis_sentinels is None

    def __repr__(self) -> str:
        # The generated repr would print redis_url whole into any traceback or log.
        return f"Settings({self.redacted()})"

    def redacted(self) -> dict[str, Any]:
        """The effective values, safe to log: credentials in URLs are masked."""
        out: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "redis_url" and value:
                value = redact_url(value)
            elif field.name == "redis_sentinel_password" and value:
                value = MASK
            out[field.name] = str(value) if isinstance(value, Path) else value
        return out

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with some values replaced (used by the CLI and the embedded Redis)."""
        return dataclasses.replace(self, **changes)


def load_settings(env: Mapping[str, str], config_file: Path | None = None) -> Settings:
    """Build settings from a YAML file and the environment; ConfigError names any problem."""
    named = config_file or (Path(env[CONFIG_ENV]) if CONFIG_ENV in env else None)
    if named is not None and not named.exists():
        raise ConfigError(f"settings file {named} does not exist")
    path = named or find_config_file("settings.yaml")
    raw: dict[str, Any] = {}
    if path is not None:
        raw.update(read_mapping(path, "settings file"))

    known = {f.name for f in dataclasses.fields(Settings)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s) {', '.join(unknown)}")

    for key, value in env.items():
        if not key.startswith(ENV_PREFIX) or key == CONFIG_ENV:
            continue
        name = key[len(ENV_PREFIX) :].lower()
        if name not in known:
            raise ConfigError(f"unknown environment variable {key}")
        raw[name] = value
    for name, file_name, what in _LOOKED_UP_FILES:
        if _is_unset(raw.get(name)):
            raw[name] = locate_config_file(file_name, what, ENV_PREFIX + name.upper())

    hints = typing.get_type_hints(Settings)
    values = {name: _coerce(name, hints[name], value) for name, value in raw.items()}
    settings = Settings(**values)
    _validate(settings)
    return settings


def _is_unset(value: Any) -> bool:
    return value is None or str(value).strip().lower() in ("", "none", "null")


def _coerce(name: str, hint: Any, value: Any) -> Any:
    """Turn a YAML value or an environment string into the field's type."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        inner = [a for a in args if a is not type(None)]
        if value is None or (isinstance(value, str) and value.strip() in ("", "none", "null")):
            return None
        return _coerce(name, inner[0], value)
    if origin is Literal:
        text = str(value).strip().lower()
        if text not in args:
            raise ConfigError(f"{name}: {value!r} is not one of {', '.join(args)}")
        return text
    try:
        if hint is bool:
            return _to_bool(value)
        if hint is int:
            if isinstance(value, bool):
                raise ValueError("a boolean is not a number")
            return int(str(value).replace("_", ""))
        if hint is float:
            if isinstance(value, bool):
                raise ValueError("a boolean is not a number")
            return float(value)
        if hint is Path:
            return Path(str(value))
        if hint is str:
            return str(value)
    except ValueError as exc:
        raise ConfigError(f"{name}: {value!r} is not a valid {hint.__name__}") from exc
    raise ConfigError(f"{name}: unsupported setting type {hint!r}")  # pragma: no cover


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{value!r} is not a boolean")


def _validate(settings: Settings) -> None:
    problems: list[str] = []
    positive = [
        "health_port",
        "stream_retention_s",
        "stream_maxlen",
        "poll_interval_s",
        "poll_min_interval_s",
        "poll_concurrency",
        "poll_lease_s",
        "parse_timeout_s",
        "http_total_timeout_s",
        "max_feed_bytes",
        "max_page_bytes",
        "workers",
        "job_timeout_s",
        "worker_max_jobs",
        "feeds_degraded_after_s",
        "sitemap_max_age_s",
        "sitemap_index_interval_s",
        "story_ttl_s",
        "story_update_interval_s",
        "story_posting_limit",
    ]
    for name in positive:
        if getattr(settings, name) <= 0:
            problems.append(f"{name} must be positive")
    if not 0 < settings.health_port < 65536:
        problems.append("health_port must be a TCP port (1-65535)")
    if settings.poll_min_interval_s > settings.poll_max_interval_s:
        problems.append("poll_min_interval_s must not exceed poll_max_interval_s")
    if not 1 <= settings.job_batch_size <= 100:
        problems.append("job_batch_size must be 1..100")
    if settings.parse_workers < 0 or settings.parse_inline_max_bytes < 0:
        problems.append("parse_workers and parse_inline_max_bytes must not be negative")
    if settings.job_retries < 0 or settings.http_max_redirects < 0:
        problems.append("job_retries and http_max_redirects must not be negative")
    if settings.http_total_timeout_s >= settings.job_timeout_s:
        problems.append("http_total_timeout_s must be shorter than job_timeout_s")
    if settings.redis_url is not None:
        scheme = urlsplit(settings.redis_url).scheme
        if scheme not in ("redis", "rediss", "unix"):
            problems.append(
                f"redis_url {redact_url(settings.redis_url)!r} must start with "
                "redis://, rediss:// or unix://"
            )
    problems.extend(_websub_problems(settings))
    problems += _sentinel_problems(settings)
    if settings.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        problems.append("log_level must be DEBUG, INFO, WARNING or ERROR")
    if problems:
        raise ConfigError("invalid settings: " + "; ".join(problems))


def _websub_problems(settings: Settings) -> list[str]:
    problems = []
    if settings.websub_lease_s < 60:
        problems.append("websub_lease_s must be at least 60")
    if settings.websub_poll_factor < 1:
        problems.append(
            "websub_poll_factor must be at least 1 (push slows polling, never speeds it)"
        )
    url = settings.websub_callback_url
    if url is not None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            problems.append("websub_callback_url must be an http(s) URL with a host")
        elif parts.query or parts.fragment or "@" in parts.netloc:
            problems.append("websub_callback_url must carry no query, fragment or credentials")
    return problems


def sentinel_addresses(text: str) -> list[tuple[str, int]]:
    """``host:port,host:port`` (IPv6 as ``[::1]:26379``) as pairs; ValueError names a bad one."""
    found = []
    for item in (part.strip() for part in text.split(",")):
        host, colon, port = item.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not (colon and host and port.isdigit() and 0 < int(port) < 65536):
            raise ValueError(f"{item!r} is not host:port")
        found.append((host, int(port)))
    return found


def _sentinel_problems(settings: Settings) -> list[str]:
    if (settings.redis_sentinels is None) != (settings.redis_sentinel_master is None):
        return ["redis_sentinels and redis_sentinel_master are set together or not at all"]
    if settings.redis_sentinels is None:
        return []
    problems = []
    try:
        sentinel_addresses(settings.redis_sentinels)
    except ValueError as exc:
        problems.append(f"redis_sentinels: {exc}")
    if settings.redis_url is not None and urlsplit(settings.redis_url).scheme == "unix":
        problems.append("redis_url must be redis:// or rediss:// with redis_sentinels")
    return problems


def settings_from_environment() -> Settings:
    """The single place that reads os.environ: call it only from the CLI entry point."""
    return load_settings(os.environ)
