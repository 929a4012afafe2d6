"""The feed list file (``config/feeds.yaml``): a top-level ``feeds:`` list of mappings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.errors import ConfigError
from core.models import SOURCE_KINDS, Feed
from core.urls import is_web_url
from core.yamlfile import read_mapping

_FEED_KEYS = {"url", "title", "interval_s", "kind"}


def load_feeds(path: Path) -> list[Feed]:
    """Read and validate the feed list; raise ConfigError naming the bad entry."""
    data = read_mapping(path, "feed list")
    if not isinstance(data.get("feeds"), list):
        raise ConfigError(f"feed list {path} must have a top-level 'feeds:' list")
    unknown_top = set(data) - {"feeds"}
    if unknown_top:
        raise ConfigError(f"feed list {path}: unknown top-level key(s) {sorted(unknown_top)}")
    feeds: list[Feed] = []
    seen: set[str] = set()
    for number, entry in enumerate(data["feeds"], start=1):
        feeds.append(_parse_entry(path, number, entry))
        if feeds[-1].url in seen:
            raise ConfigError(f"feed list {path}: entry {number} repeats {feeds[-1].url}")
        seen.add(feeds[-1].url)
    return feeds


def _parse_entry(path: Path, number: int, entry: Any) -> Feed:
    where = f"feed list {path}, entry {number}"
    if isinstance(entry, str):
        entry = {"url": entry}
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a mapping with 'url:', got {type(entry).__name__}")
    unknown = set(entry) - _FEED_KEYS
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {sorted(unknown)} (known: {sorted(_FEED_KEYS)})"
        )
    url = str(entry.get("url", "")).strip()
    if not is_web_url(url):
        raise ConfigError(f"{where}: 'url' must be an http(s) URL, got {url!r}")
    interval = entry.get("interval_s")
    if interval is not None and (not isinstance(interval, int | float) or interval <= 0):
        raise ConfigError(f"{where}: 'interval_s' must be a positive number of seconds")
    kind = entry.get("kind", "feed")
    if kind not in SOURCE_KINDS:
        raise ConfigError(f"{where}: 'kind' must be one of {list(SOURCE_KINDS)}, got {kind!r}")
    return Feed(
        url=url,
        title=str(entry.get("title", "")),
        interval_s=float(interval) if interval is not None else None,
        kind=kind,
    )
