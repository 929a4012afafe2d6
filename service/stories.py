"""``tradewire stories``, ``tradewire cluster`` and ``tradewire recluster``."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import IO, Any

from core.document import read_document
from core.errors import ConfigError
from core.settings import Settings
from workers.pipeline import tag_document
from workers.stories import Model, assign, raw_features
from workers.story_store import MemoryStories, day_of, load_model
from workers.tagging import Taxonomy, load_taxonomy

FIELDS = ("id", "title", "text", "published_at", "source")


def cluster_lines(
    lines: Iterable[str], taxonomy: Taxonomy, model: Model, posting_limit: int
) -> Iterable[dict[str, str]]:
    """One ``{"id", "story_id"}`` per input article, through the service's clustering core
    (``workers.stories.assign``) on a private in-memory store."""
    store = MemoryStories(posting_limit)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        row = _row(line, number)
        # A text in the seed format carries its title on its first line.
        title = row["title"] or read_document(row["text"])[0]
        entities = tag_document(taxonomy, row["text"], title).entities
        raw = raw_features(title, row["text"], entities)
        decision = assign(store, model, row["id"], day_of(row["published_at"]), raw,
                          row["source"])  # fmt: skip
        yield {"id": row["id"], "story_id": decision.story_id}


def _row(line: str, number: int) -> dict[str, str]:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"line {number}: not JSON ({exc.msg})") from exc
    if not isinstance(row, dict) or any(not isinstance(row.get(f), str) for f in FIELDS):
        raise ConfigError(f"line {number}: needs string fields {', '.join(FIELDS)}")
    try:
        day_of(row["published_at"])
    except ValueError as exc:
        raise ConfigError(f"line {number}: published_at is not a date or time") from exc
    return row


def cluster_command(settings: Settings, stdin: IO[str], stdout: IO[str]) -> int:
    taxonomy = load_taxonomy(settings.taxonomy_file)
    for result in cluster_lines(stdin, taxonomy, load_model(), settings.story_posting_limit):
        stdout.write(json.dumps(result) + "\n")
    stdout.flush()
    return 0


def stories_command(settings: Settings, since_s: float, limit: int, stdout: IO[str]) -> int:
    """The stories active in the last ``since_s`` seconds, most distinct sources first,
    each with its articles (newest first): one JSON line per story."""
    from core.connection import connect
    from workers.story_redis import StoryBook

    book = StoryBook(connect(settings, decode=True), ttl_s=settings.story_ttl_s,
                     update_interval_s=settings.story_update_interval_s)  # fmt: skip
    for state, members in book.recent(time.time() - since_s, limit):
        line: dict[str, Any] = {"story_id": state.story_id, **state.to_event(),
                                "articles": members}  # fmt: skip
        stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
    return 0


def recluster_command(settings: Settings, since_s: float, stdout: IO[str]) -> int:
    from core.connection import connect
    from workers.recluster import recluster

    now = datetime.now(UTC)
    report = recluster(
        settings, connect(settings, decode=True), load_taxonomy(settings.taxonomy_file),
        load_model(), since=now - timedelta(seconds=since_s), now=now,
    )  # fmt: skip
    stdout.write(json.dumps(report.__dict__) + "\n")
    return 0


def duration_s(text: str) -> float:
    """``24h``, ``7d``, ``90m`` or seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        if text[-1:] in units:
            return float(text[:-1]) * units[text[-1]]
        return float(text)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a duration like 24h, 7d or 90m") from exc
