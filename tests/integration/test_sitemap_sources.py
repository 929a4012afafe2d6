"""Sitemap sources end to end: a local site with only sitemaps, a real poller, real RQ
workers, real Redis."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
import redis
import yaml

from core import keys
from core.fetch import Fetcher
from core.settings import Settings
from core.urls import article_id_for, canonicalize_url
from service.demo import SITE_DIR
from service.discover import discover_sources, sitemaps_in_robots
from service.feedlist import load_feeds
from service.poller import poll_feeds_once
from service.sitemap_source import SITEMAP_STATE_TTL_S
from tests.sitemap_site import DAY, PAGES, SitemapSite, serve_sitemaps
from workers.runner import run_worker

EXPECTED = json.loads((SITE_DIR / "expected.json").read_text(encoding="utf-8"))
SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "schemas" / "event-v1.json").read_text())


@pytest.fixture
def site() -> Iterator[SitemapSite]:
    with serve_sitemaps(SitemapSite(archive_days=3, per_day=5)) as served:
        yield served


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def write_sources(settings: Settings, *entries: dict[str, str]) -> None:
    settings.feeds_file.write_text(yaml.safe_dump({"feeds": list(entries)}))


def poll(settings: Settings, text_redis: redis.Redis, rq_redis: redis.Redis, clock: Clock,
         register: bool = True) -> int:  # fmt: skip
    feeds = load_feeds(settings.feeds_file)
    report = poll_feeds_once(settings, text_redis, rq_redis, feeds, clock=clock, register=register)
    return report.new_items


def canonical_id(site: SitemapSite, page: str) -> str:
    return article_id_for(canonicalize_url(f"{site.base}/news/{page}"))


def test_a_site_with_only_a_news_sitemap_is_ingested_exactly_once(
    site: SitemapSite, settings: Settings, text_redis: redis.Redis, rq_redis: redis.Redis
) -> None:
    """10 articles at 11 sitemap locs (AMP and tracking variants whose page canonical is
    /news/...; one article twice): each article once in the corpus, the relevant ones
    once on the stream, with feed.kind "sitemap"; the 5-day-old entry is not taken."""
    write_sources(settings, {"url": f"{site.base}/news-sitemap.xml", "kind": "sitemap",
                             "title": "Local news"})  # fmt: skip
    clock = Clock(site.now)
    assert poll(settings, text_redis, rq_redis, clock) == 11
    run_worker(settings, keys.EXTRACT_QUEUE, burst=True)
    run_worker(settings, keys.TAG_QUEUE, burst=True)

    files = sorted(settings.corpus_dir.glob("*.txt"))
    assert len(files) == 10
    assert {f.name.split("_", 1)[1][:-4] for f in files} == {canonical_id(site, p) for p in PAGES}
    relevant = {canonical_id(site, p) for p in PAGES if EXPECTED[p]["us_china_trade"]}
    entries = text_redis.xrange(settings.stream_name)
    assert sorted(fields["article_id"] for _, fields in entries) == sorted(relevant)
    for _, fields in entries:
        event = json.loads(fields["data"])
        jsonschema.validate(event, SCHEMA)
        assert event["feed"] == {"url": f"{site.base}/news-sitemap.xml", "title": "Local news",
                                 "kind": "sitemap"}  # fmt: skip
        assert event["canonical_url"].startswith(f"{site.base}/news/")
    assert site.hits.get("/news/old-story.html", 0) == 0

    # Polled again when due: a 304, nothing queued, nothing emitted again.
    clock.now += 3600
    assert poll(settings, text_redis, rq_redis, clock, register=False) == 0
    # A new entry, and a tracking variant of a known article: only the new one is queued.
    site.extra = [f"/news/{PAGES[2]}?utm_source=again", f"/arch/new/0/{PAGES[3]}"]
    clock.now += 3600
    assert poll(settings, text_redis, rq_redis, clock, register=False) == 1
    run_worker(settings, keys.EXTRACT_QUEUE, burst=True)
    run_worker(settings, keys.TAG_QUEUE, burst=True)
    again = text_redis.xrange(settings.stream_name)
    assert len({fields["article_id"] for _, fields in again}) == len(again)
    assert (
        0
        < text_redis.ttl(keys.sitemap_state(load_feeds(settings.feeds_file)[0].feed_id))
        <= (SITEMAP_STATE_TTL_S)
    )


def test_a_sitemap_listed_as_a_feed_is_detected(
    site: SitemapSite, settings: Settings, text_redis: redis.Redis, rq_redis: redis.Redis
) -> None:
    write_sources(settings, {"url": f"{site.base}/news-sitemap.xml"})
    assert poll(settings, text_redis, rq_redis, Clock(site.now)) == 11
    jobs = rq_redis.lrange(f"rq:queue:{keys.EXTRACT_QUEUE}", 0, -1)
    assert jobs, "jobs were queued"
    (feed,) = load_feeds(settings.feeds_file)
    state = text_redis.hgetall(keys.feed_state(feed.feed_id))
    # No validator kept: the feed path would take a 304 for "nothing new".
    assert state["last_status"] == "200" and not state["etag"]


def test_an_index_listed_as_a_feed_still_reaches_its_children(
    site: SitemapSite, settings: Settings, text_redis: redis.Redis, rq_redis: redis.Redis
) -> None:
    write_sources(settings, {"url": f"{site.base}/sitemap_index.xml"})
    clock = Clock(site.now)
    assert poll(settings, text_redis, rq_redis, clock) == 11
    site.extra = [f"/arch/new/2/{PAGES[5]}"]
    clock.now += 3600
    assert poll(settings, text_redis, rq_redis, clock, register=False) == 1
    assert site.hits["/sitemap_index.xml"] == 2


def test_lost_sitemap_state_means_a_full_fetch_not_silence(
    site: SitemapSite, settings: Settings, text_redis: redis.Redis, rq_redis: redis.Redis
) -> None:
    """The source's ETag survives, its sitemap state does not (expired): the index is
    fetched whole again and its current child polled, without queueing anything twice."""
    write_sources(settings, {"url": f"{site.base}/sitemap_index.xml", "kind": "sitemap"})
    clock = Clock(site.now)
    assert poll(settings, text_redis, rq_redis, clock) == 11
    (feed,) = load_feeds(settings.feeds_file)
    text_redis.delete(keys.sitemap_state(feed.feed_id))
    site.extra = [f"/arch/new/3/{PAGES[6]}"]
    clock.now += 2 * settings.sitemap_index_interval_s
    assert poll(settings, text_redis, rq_redis, clock, register=False) == 1
    assert site.hits["/news-sitemap.xml"] == 2


def test_an_index_is_fetched_rarely_its_current_child_each_poll(
    site: SitemapSite, settings: Settings, text_redis: redis.Redis, rq_redis: redis.Redis
) -> None:
    """The index names the news sitemap (changed now) and three archive days (older than
    sitemap_max_age_s): only the news sitemap is polled; the index again only after
    sitemap_index_interval_s; the child conditionally (its ETag)."""
    write_sources(settings, {"url": f"{site.base}/sitemap_index.xml", "kind": "sitemap"})
    clock = Clock(site.now)
    assert poll(settings, text_redis, rq_redis, clock) == 11
    assert site.hits["/sitemap_index.xml"] == 1 and site.hits["/news-sitemap.xml"] == 1
    assert not any(path.startswith("/archive/") for path in site.hits)
    clock.now += 600  # due again (the learnt cadence), the index is not
    assert poll(settings, text_redis, rq_redis, clock, register=False) == 0
    assert site.hits["/sitemap_index.xml"] == 1 and site.hits["/news-sitemap.xml"] == 2
    clock.now += settings.sitemap_index_interval_s
    site.extra = [f"/arch/new/1/{PAGES[4]}"]
    assert poll(settings, text_redis, rq_redis, clock, register=False) == 1
    assert site.hits["/sitemap_index.xml"] == 2


def test_entries_older_than_the_window_wait_for_a_backfill(
    site: SitemapSite, settings: Settings, text_redis: redis.Redis, rq_redis: redis.Redis
) -> None:
    """Archive days 3-5 days old are outside the default two days, inside a longer window."""
    source = {"url": f"{site.base}/archive/0.xml.gz", "kind": "sitemap"}
    write_sources(settings, source)
    assert poll(settings, text_redis, rq_redis, Clock(site.now)) == 0
    text_redis.flushall()
    wider = settings.with_overrides(sitemap_max_age_s=4 * DAY)
    assert poll(wider, text_redis, rq_redis, Clock(site.now)) == 5


def test_hostile_sitemap_source_is_a_failed_poll_not_a_crash(
    settings: Settings, text_redis: redis.Redis, rq_redis: redis.Redis, httpserver: object
) -> None:
    from pytest_httpserver import HTTPServer

    assert isinstance(httpserver, HTTPServer)
    httpserver.expect_request("/sitemap.xml").respond_with_data(
        "<html><body>Service temporarily unavailable</body></html>", content_type="text/html"
    )
    write_sources(settings, {"url": httpserver.url_for("/sitemap.xml"), "kind": "sitemap"})
    assert poll(settings, text_redis, rq_redis, Clock(1.8e9)) == 0
    (feed,) = load_feeds(settings.feeds_file)
    state = text_redis.hgetall(keys.feed_state(feed.feed_id))
    assert state["last_status"] == "not_a_sitemap" and state["consecutive_errors"] == "1"


def test_discover_finds_the_news_sitemap_in_robots_txt(
    site: SitemapSite, settings: Settings
) -> None:
    async def go(url: str) -> list[tuple[str, str]]:
        fetcher = Fetcher(settings)
        try:
            return [(f.url, f.kind) for f in await discover_sources(fetcher, url, 1_000_000)]
        finally:
            await fetcher.aclose()

    # robots.txt names an index and the news sitemap: the news one is preferred.
    # (The demo page also declares feeds, which come first.)
    found = asyncio.run(go(f"{site.base}/news/{PAGES[0]}"))
    assert [url for url, kind in found if kind == "sitemap"] == [f"{site.base}/news-sitemap.xml"]
    assert asyncio.run(go(f"{site.base}/sitemap_index.xml")) == [
        (f"{site.base}/sitemap_index.xml", "sitemap")
    ]


def test_robots_sitemap_lines() -> None:
    text = b"User-agent: *\nsitemap: /a.xml # main\nSITEMAP:https://x.com/b.xml\nSitemap: javascript:1\n"
    assert sitemaps_in_robots(text, "https://ex.com/robots.txt") == [
        "https://ex.com/a.xml",
        "https://x.com/b.xml",
    ]
