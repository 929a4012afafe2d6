"""The event consumers read (pure): schema version 1, see ``schemas/event-v1.json``."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from typing import Any

from core.document import word_count
from core.models import Article, TagResult
from core.times import rfc3339
from core.urls import domain_of

SCHEMA_VERSION = 1
ARTICLE_CREATED = "article.created"
ARTICLE_UPDATED = "article.updated"
# The article's story gained a distinct source (rate-limited per story); the event is the
# joining article's, with the story's new counts.
STORY_UPDATED = "story.updated"


def build_event(
    article: Article,
    tags: TagResult,
    *,
    now: datetime,
    event_type: str = ARTICLE_CREATED,
    story: tuple[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The JSON document of one event. Times are RFC 3339 UTC strings. ``story`` is the
    story id and summary, when clustering is on."""
    event = _article_fields(article, tags, now=now, event_type=event_type)
    if story is not None:
        event["story_id"], event["story"] = story[0], story[1]
    return event


def _article_fields(
    article: Article, tags: TagResult, *, now: datetime, event_type: str
) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "event_type": event_type,
        "event_id": uuid.uuid4().hex,
        "emitted_at": rfc3339(now),
        "article_id": article.article_id,
        "url": article.url,
        "canonical_url": article.canonical_url,
        "feed": {
            "url": article.feed_url,
            "title": article.feed_title,
            "kind": article.source_kind,
        },
        "source_domain": domain_of(article.canonical_url),
        "site_name": article.site_name,
        "title": article.title,
        "authors": list(article.authors),
        "published_at": article.published_at,
        "discovered_at": article.discovered_at,
        "fetched_at": article.fetched_at,
        "language": article.language,
        "text": article.text,
        "text_sha256": hashlib.sha256(article.text.encode("utf-8")).hexdigest(),
        "word_count": word_count(article.text),
        "duplicate_of": article.duplicate_of,
        "tags": tags.to_dict(),
    }
