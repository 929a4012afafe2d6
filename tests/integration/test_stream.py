"""The emitter against a real Redis: one created event per article, trimmed by age."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime

import redis

from core.models import Article, TagResult
from core.settings import Settings
from workers.events import ARTICLE_UPDATED, build_event
from workers.stream import Emitter


def article(article_id: str = "00000000000000aa") -> Article:
    return Article(
        article_id=article_id, url="https://x.example/a", canonical_url="https://x.example/a",
        feed_url="https://x.example/rss", feed_title="X", title="T", text="T\n\nBody text.",
        authors=("A",), published_at=None, fetched_at="2025-11-01T00:00:00Z",
        discovered_at="2025-11-01T00:00:00Z", language="en", site_name=None,
    )  # fmt: skip


TAGS = TagResult(True, 0.9, ("tariffs",), (), ("evidence",), "t1")


def test_same_article_twice_is_one_entry(settings: Settings, text_redis: redis.Redis) -> None:
    emitter = Emitter(text_redis, settings)
    first = emitter.emit(build_event(article(), TAGS, now=datetime.now(UTC)))
    second = emitter.emit(build_event(article(), TAGS, now=datetime.now(UTC)))
    assert first.created and not second.created
    assert second.entry_id == first.entry_id
    entries = text_redis.xrange(settings.stream_name)
    assert len(entries) == 1
    fields = entries[0][1]
    assert set(fields) == {"event_type", "article_id", "data"}
    assert fields["event_type"] == "article.created"
    assert json.loads(fields["data"])["article_id"] == "00000000000000aa"


def test_racing_emitters_produce_one_event_per_article(settings: Settings, redis_url: str) -> None:
    """16 threads, each with its own connection, emit the same 50 articles."""
    ids = [f"{i:016x}" for i in range(50)]
    barrier = threading.Barrier(16)

    def worker() -> None:
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        emitter = Emitter(client, settings)
        barrier.wait()
        for article_id in ids:
            emitter.emit(build_event(article(article_id), TAGS, now=datetime.now(UTC)))
        client.close()

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    entries = client.xrange(settings.stream_name)
    assert sorted(f["article_id"] for _, f in entries) == ids


def test_updates_are_not_deduplicated(settings: Settings, text_redis: redis.Redis) -> None:
    emitter = Emitter(text_redis, settings)
    emitter.emit(build_event(article(), TAGS, now=datetime.now(UTC)))
    emitter.emit(build_event(article(), TAGS, now=datetime.now(UTC), event_type=ARTICLE_UPDATED))
    types = [f["event_type"] for _, f in text_redis.xrange(settings.stream_name)]
    assert types == ["article.created", "article.updated"]


def test_trim_by_age_drops_old_entries(settings: Settings, text_redis: redis.Redis) -> None:
    """Entries older than the retention window go; recent ones stay."""
    stream = settings.stream_name
    for i in range(300):  # old entries, one hour apart, ten days ago
        text_redis.xadd(stream, {"event_type": "x", "article_id": str(i), "data": "{}"},
                        id=f"{1_700_000_000_000 + i * 3_600_000}-0")  # fmt: skip
    emitter = Emitter(text_redis, settings.with_overrides(stream_retention_s=3600))
    emitter.emit(build_event(article(), TAGS, now=datetime.now(UTC)))
    remaining = text_redis.xlen(stream)
    # MINID ~ trims whole macro nodes (100 entries), so a few old ones may linger.
    assert remaining <= 101
    assert text_redis.xrevrange(stream, count=1)[0][1]["article_id"] == "00000000000000aa"


def test_maxlen_ceiling(settings: Settings, text_redis: redis.Redis) -> None:
    emitter = Emitter(text_redis, settings.with_overrides(stream_trim="maxlen", stream_maxlen=100))
    for i in range(500):
        emitter.emit(build_event(article(f"{i:016x}"), TAGS, now=datetime.now(UTC)))
    assert 100 <= text_redis.xlen(settings.stream_name) < 300
