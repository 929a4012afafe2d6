"""End to end: real poller, real RQ workers, real Redis, a local news site."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import redis
import yaml

from core import keys, queues
from core.document import read_document
from core.settings import Settings
from core.urls import article_id_for, canonicalize_url
from service.demo import SITE_DIR, demo_feeds
from service.feedlist import load_feeds
from service.poller import poll_feeds_once
from workers.runner import run_worker

EXPECTED = json.loads((SITE_DIR / "expected.json").read_text(encoding="utf-8"))
SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "schemas" / "event-v1.json").read_text())


def run_pipeline(settings: Settings, text_redis: redis.Redis, rq_redis: redis.Redis) -> int:
    feeds = load_feeds(settings.feeds_file)
    queued = poll_feeds_once(settings, text_redis, rq_redis, feeds).new_items
    run_worker(settings, keys.EXTRACT_QUEUE, burst=True)
    run_worker(settings, keys.TAG_QUEUE, burst=True)
    return queued


def test_local_site_end_to_end(
    demo_site: str, settings: Settings, text_redis: redis.Redis, rq_redis: redis.Redis
) -> None:
    """Exactly the US–China pages become events; every page becomes a seed-format file."""
    settings.feeds_file.write_text(yaml.safe_dump({"feeds": demo_feeds(demo_site)}))
    queued = run_pipeline(settings, text_redis, rq_redis)
    # 10 pages; the truce story sits in both feeds (once with utm_* tracking) but is queued once.
    assert queued == 10

    def article_id(name: str) -> str:
        return article_id_for(canonicalize_url(f"{demo_site}/articles/{name}"))

    expected_ids = {article_id(n) for n, e in EXPECTED.items() if e["us_china_trade"]}
    entries = text_redis.xrange(settings.stream_name)
    assert {fields["article_id"] for _, fields in entries} == expected_ids
    assert len(entries) == len(expected_ids)

    for _, fields in entries:
        event = json.loads(fields["data"])
        jsonschema.validate(event, SCHEMA)
        assert fields["event_type"] == event["event_type"] == "article.created"
        assert event["tags"]["us_china_trade"] is True
        name = next(n for n in EXPECTED if article_id(n) == event["article_id"])
        assert event["title"] == EXPECTED[name]["title"]
        assert event["text"].startswith(EXPECTED[name]["title"] + "\n\n")
        assert event["feed"]["url"].startswith(demo_site)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", event["fetched_at"])

    files = sorted(settings.corpus_dir.glob("*.txt"))
    assert len(files) == 10
    assert [f.name[:3] for f in files] == [f"{i:03d}" for i in range(10)]
    for path in files:
        assert re.fullmatch(r"\d{3,}_[0-9a-f]{16}\.txt", path.name)
        text = path.read_text(encoding="utf-8")
        title, paragraphs = read_document(text)
        assert title and len(paragraphs) >= 4
        assert not text.endswith("\n") and "\n\n\n" not in text
    chinese = next(f for f in files if article_id("soybean-purchases-stall.html") in f.name)
    assert chinese.read_text(encoding="utf-8").startswith("美国大豆对华出口陷入停滞")


def test_rerun_produces_no_duplicates(
    demo_site: str, settings: Settings, text_redis: redis.Redis, rq_redis: redis.Redis
) -> None:
    """Polling again finds nothing new; re-running the same jobs adds no events or files."""
    settings.feeds_file.write_text(yaml.safe_dump({"feeds": demo_feeds(demo_site)}))
    run_pipeline(settings, text_redis, rq_redis)
    events = text_redis.xlen(settings.stream_name)
    # Forget that the articles were queued and make the feeds due: every job runs again.
    for pattern in (keys.seen_url("*"), keys.seen_guid("*", "*")):
        for key in text_redis.scan_iter(pattern):
            text_redis.delete(key)
    for member in text_redis.zrange(keys.FEEDS_DUE, 0, -1):
        text_redis.zadd(keys.FEEDS_DUE, {member: 0})
        # and the feed's last body, or its unchanged body would not even be parsed
        text_redis.hdel(keys.feed_state(member), "body_hash")
    assert run_pipeline(settings, text_redis, rq_redis) == 10
    assert text_redis.xlen(settings.stream_name) == events
    assert len(list(settings.corpus_dir.glob("*.txt"))) == 10


def test_non_html_and_missing_pages_are_refused_without_events(
    settings: Settings, text_redis: redis.Redis, rq_redis: redis.Redis, tmp_path: Path
) -> None:
    """A PDF and a 404 end their jobs with a logged reason: no event, no file, no retry."""
    from pytest_httpserver import HTTPServer

    with HTTPServer() as server:
        server.expect_request("/doc.pdf").respond_with_data(
            b"%PDF-1.7 ...", content_type="application/pdf"
        )
        server.expect_request("/rss").respond_with_data(
            "<rss version='2.0'><channel><title>t</title>"
            f"<item><title>PDF</title><link>{server.url_for('/doc.pdf')}</link></item>"
            f"<item><title>Gone</title><link>{server.url_for('/gone')}</link></item>"
            "</channel></rss>",
            content_type="application/rss+xml",
        )
        settings.feeds_file.write_text(yaml.safe_dump({"feeds": [{"url": server.url_for("/rss")}]}))
        assert run_pipeline(settings, text_redis, rq_redis) == 2
    assert text_redis.xlen(settings.stream_name) == 0
    assert not list(settings.corpus_dir.glob("*.txt"))
    from rq.registry import FailedJobRegistry

    assert FailedJobRegistry(queue=queues.queue(rq_redis, keys.EXTRACT_QUEUE)).count == 0


def test_page_canonical_merges_two_links_to_one_article(
    settings: Settings, text_redis: redis.Redis, rq_redis: redis.Redis
) -> None:
    """An AMP link and a plain link whose pages name one canonical URL: one file, one id."""
    from pytest_httpserver import HTTPServer

    story = (SITE_DIR / "articles" / "tariff-truce-extended.html").read_bytes()
    with HTTPServer() as server:
        page = story.replace(
            b"{{BASE}}/articles/tariff-truce-extended.html", server.url_for("/news/truce").encode()
        )
        server.expect_request("/news/truce").respond_with_data(page, content_type="text/html")
        server.expect_request("/amp/news/truce").respond_with_data(page, content_type="text/html")
        server.expect_request("/rss").respond_with_data(
            "<rss version='2.0'><channel><title>t</title>"
            f"<item><title>A</title><link>{server.url_for('/amp/news/truce')}</link></item>"
            f"<item><title>B</title><link>{server.url_for('/news/truce')}</link></item>"
            "</channel></rss>",
            content_type="application/rss+xml",
        )
        settings.feeds_file.write_text(yaml.safe_dump({"feeds": [{"url": server.url_for("/rss")}]}))
        assert run_pipeline(settings, text_redis, rq_redis) == 2
        canonical_id = article_id_for(canonicalize_url(server.url_for("/news/truce")))
    files = list(settings.corpus_dir.glob("*.txt"))
    assert [f.name.split("_")[1] for f in files] == [f"{canonical_id}.txt"]
    entries = text_redis.xrange(settings.stream_name)
    assert [f["article_id"] for _, f in entries] == [canonical_id]
