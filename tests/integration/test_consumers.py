"""The consumer side: claiming a dead consumer's entries, replay, retag, the articles stream."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest
import redis
import yaml
from structlog.testing import capture_logs

from core.models import Article, TagResult
from core.settings import Settings
from service.consumer import consume, ensure_group
from service.demo import demo_feeds
from tests.conftest import ROOT
from tests.integration.test_pipeline import EXPECTED, run_pipeline
from workers.corpus import Corpus
from workers.events import build_event
from workers.replay import replay, retag
from workers.stream import Emitter, last_verdict
from workers.tagging import load_taxonomy, taxonomy_from_mapping

# The demo pages about US–China trade (service/demo_site/expected.json).
RELEVANT = sum(1 for page in EXPECTED.values() if page["us_china_trade"])

SCHEMA = json.loads((ROOT / "schemas" / "event-v1.json").read_text())
TAGS = TagResult(True, 0.9, ("tariffs",), (), ("e",), "t1")


def _article(i: int) -> Article:
    return Article(
        article_id=f"{i:016x}", url=f"https://x.example/{i}", canonical_url=f"https://x.example/{i}",
        feed_url="https://x.example/rss", feed_title="X", title="T", text="T\n\nBody.", authors=(),
        published_at=None, fetched_at="2025-11-01T00:00:00Z", discovered_at="2025-11-01T00:00:00Z",
        language="en", site_name=None,
    )  # fmt: skip


def test_consumer_killed_mid_batch_its_entries_are_claimed(
    settings: Settings, text_redis: redis.Redis
) -> None:
    """Consumer A reads 10 entries and dies after handling 4; B claims the 6 unacknowledged."""
    emitter = Emitter(text_redis, settings)
    for i in range(10):
        emitter.emit(build_event(_article(i), TAGS, now=datetime.now(UTC)))
    stream = settings.stream_name
    ensure_group(text_redis, stream, "team", from_start=True)
    handled_by_a: list[str] = []

    class Killed(Exception):
        pass

    def dies_after_four(entry: tuple[str, dict[str, str]]) -> None:
        if len(handled_by_a) == 4:
            raise Killed
        handled_by_a.append(entry[1]["article_id"])

    with pytest.raises(Killed):
        consume(text_redis, stream, "team", "a", dies_after_four, block_ms=100)
    assert text_redis.xpending(stream, "team")["pending"] == 6
    handled_by_b: list[str] = []
    consume(text_redis, stream, "team", "b", lambda e: handled_by_b.append(e[1]["article_id"]),
            claim_idle_ms=0, block_ms=100, limit=6)  # fmt: skip
    assert sorted(handled_by_a + handled_by_b) == [f"{i:016x}" for i in range(10)]
    assert text_redis.xpending(stream, "team")["pending"] == 0


def test_new_group_without_from_start_sees_only_new_events(
    settings: Settings, text_redis: redis.Redis
) -> None:
    emitter = Emitter(text_redis, settings)
    emitter.emit(build_event(_article(1), TAGS, now=datetime.now(UTC)))
    ensure_group(text_redis, settings.stream_name, "late", from_start=False)
    emitter.emit(build_event(_article(2), TAGS, now=datetime.now(UTC)))
    seen: list[str] = []
    consume(text_redis, settings.stream_name, "late", "c", lambda e: seen.append(e[1]["article_id"]),
            block_ms=100, limit=1)  # fmt: skip
    assert seen == [f"{2:016x}"]


@pytest.mark.timeout(30)
def test_every_pending_entry_of_a_restarted_consumer_comes_first(
    settings: Settings, text_redis: redis.Redis
) -> None:
    """A consumer that read 150 entries and died before acknowledging them gets all 150
    back when it restarts, not only the first batch of 100."""
    emitter = Emitter(text_redis, settings)
    for i in range(150):
        emitter.emit(build_event(_article(i), TAGS, now=datetime.now(UTC)))
    stream = settings.stream_name
    ensure_group(text_redis, stream, "team", from_start=True)
    text_redis.xreadgroup("team", "a", {stream: ">"}, count=150)  # read, never acknowledged
    seen: list[str] = []
    consume(text_redis, stream, "team", "a", lambda e: seen.append(e[1]["article_id"]),
            block_ms=100, limit=150)  # fmt: skip
    assert seen == [f"{i:016x}" for i in range(150)]


def test_a_group_lost_by_redis_is_created_again(
    settings: Settings, text_redis: redis.Redis
) -> None:
    """Redis restarted without persistence forgets the group: the consumer creates it again
    at the start of the stream and carries on, with a warning, instead of dying."""
    emitter = Emitter(text_redis, settings)
    emitter.emit(build_event(_article(1), TAGS, now=datetime.now(UTC)))
    stream = settings.stream_name
    ensure_group(text_redis, stream, "team", from_start=True)
    seen: list[str] = []

    def forgets_the_group(entry: tuple[str, dict[str, str]]) -> None:
        seen.append(entry[1]["article_id"])
        if len(seen) == 1:
            text_redis.xgroup_destroy(stream, "team")
            emitter.emit(build_event(_article(2), TAGS, now=datetime.now(UTC)))

    with capture_logs() as logs:
        consume(text_redis, stream, "team", "a", forgets_the_group, block_ms=100, limit=3)
    assert seen == [f"{1:016x}", f"{1:016x}", f"{2:016x}"]
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["consumer.group_lost"]


def _run_demo_pipeline(
    demo_site: str, settings: Settings, text_redis: redis.Redis, rq_redis: redis.Redis
) -> None:
    settings.feeds_file.write_text(yaml.safe_dump({"feeds": demo_feeds(demo_site)}))
    run_pipeline(settings, text_redis, rq_redis)


def test_replay_rebuilds_a_stream_once(
    demo_site: str, settings: Settings, text_redis: redis.Redis, rq_redis: redis.Redis
) -> None:
    _run_demo_pipeline(demo_site, settings, text_redis, rq_redis)
    taxonomy = load_taxonomy(settings.taxonomy_file)
    now = datetime.now(UTC)
    report = replay(
        settings,
        text_redis,
        taxonomy,
        since=datetime(2020, 1, 1, tzinfo=UTC),
        stream="rebuild",
        now=now,
    )
    assert report.articles == 10 and report.created == RELEVANT
    main_ids = {f["article_id"] for _, f in text_redis.xrange(settings.stream_name)}
    replayed = text_redis.xrange("rebuild")
    assert {f["article_id"] for _, f in replayed} == main_ids
    for _, fields in replayed:
        jsonschema.validate(json.loads(fields["data"]), SCHEMA)
    again = replay(
        settings,
        text_redis,
        taxonomy,
        since=datetime(2020, 1, 1, tzinfo=UTC),
        stream="rebuild",
        now=now,
    )
    assert again.created == 0 and text_redis.xlen("rebuild") == RELEVANT
    future = replay(
        settings,
        text_redis,
        taxonomy,
        since=datetime(2100, 1, 1, tzinfo=UTC),
        stream="later",
        now=now,
    )
    assert future.articles == 0


def test_retag_emits_updates_only_for_changed_verdicts(
    demo_site: str, settings: Settings, text_redis: redis.Redis, rq_redis: redis.Redis
) -> None:
    """Unchanged rules change nothing; a taxonomy that drops a topic's terms emits updates."""
    _run_demo_pipeline(demo_site, settings, text_redis, rq_redis)
    before = text_redis.xlen(settings.stream_name)
    taxonomy = load_taxonomy(settings.taxonomy_file)
    same = retag(settings, text_redis, taxonomy, now=datetime.now(UTC))
    assert (same.created, same.updated, same.unchanged) == (0, 0, 10)
    assert text_redis.xlen(settings.stream_name) == before

    with_fentanyl = {
        key.rsplit(":", 1)[1]
        for key in text_redis.scan_iter("tradewire:verdict:*")
        if "fentanyl" in json.loads(text_redis.get(key) or "{}")["topics"]
        and json.loads(text_redis.get(key) or "{}")["us_china_trade"]
    }
    assert with_fentanyl  # the fentanyl-tariff story at least
    data = yaml.safe_load(Path(settings.taxonomy_file).read_text())
    data["version"] = "test-no-fentanyl"
    data["topics"]["fentanyl"] = ["zzzz-never-written"]
    changed = retag(settings, text_redis, taxonomy_from_mapping(data), now=datetime.now(UTC))
    assert changed.updated >= len(with_fentanyl) and changed.created == 0
    updates = [
        json.loads(f["data"])
        for _, f in text_redis.xrange(settings.stream_name)
        if f["event_type"] == "article.updated"
    ]
    assert len(updates) == changed.updated
    for event in updates:
        jsonschema.validate(event, SCHEMA)
        assert event["tags"]["taxonomy_version"] == "test-no-fentanyl"
        assert "fentanyl" not in event["tags"]["topics"]
        assert (
            last_verdict(text_redis, event["article_id"])["taxonomy_version"] == "test-no-fentanyl"
        )  # type: ignore[index]


def test_articles_stream_carries_every_cleaned_article(
    demo_site: str, settings: Settings, text_redis: redis.Redis, rq_redis: redis.Redis
) -> None:
    """Off by default; when named, it gets all 10 articles, relevant or not, once each."""
    with_all = settings.with_overrides(articles_stream_name="tradewire:articles")
    _run_demo_pipeline(demo_site, with_all, text_redis, rq_redis)
    articles = [json.loads(f["data"]) for _, f in text_redis.xrange("tradewire:articles")]
    assert len(articles) == 10
    assert (
        sum(a["tags"]["us_china_trade"] for a in articles)
        == text_redis.xlen(settings.stream_name)
        == RELEVANT
    )
    assert sum(1 for _ in Corpus(settings.corpus_dir, text_redis).stored_articles()) == 10
