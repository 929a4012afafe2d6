"""Backfill: 2,000 archive entries queued through `tradewire backfill`, killed with
SIGKILL part way and run again; what was queued or emitted before is never queued again."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
import yaml

from core import keys, queues
from core.settings import Settings
from core.urls import article_id_for, canonicalize_url
from service.backfill import BACKFILL_STATE_TTL_S, archive_urls
from service.feedlist import load_feeds
from service.poller import poll_feeds_once
from tests.conftest import ROOT
from tests.processes import run_env, wait_until
from tests.reliability.conftest import Recorder
from tests.sitemap_site import DAY, SitemapSite, serve_sitemaps
from workers.runner import run_worker


@pytest.fixture
def archive_site() -> Iterator[SitemapSite]:
    """20 archive days of 100 entries: 2,000 article URLs (copies of the demo pages)."""
    with serve_sitemaps(SitemapSite(archive_days=20, per_day=100)) as site:
        yield site


def queued_ids(rq_redis: redis.Redis) -> list[str]:
    """Every article id in the extract queue's jobs, repeats included."""
    jobs = queues.queue(rq_redis, keys.EXTRACT_QUEUE).get_jobs()
    return [article["article_id"] for job in jobs for article in job.args[0]]


def backfill(tmp_path: Path, redis_url: str, source: str, since: str) -> subprocess.Popen[bytes]:
    env = run_env(tmp_path, tmp_path / "feeds.yaml", redis_url=redis_url,
                  host_min_delay_s="0.15", log_format="json")  # fmt: skip
    with (tmp_path / "backfill.log").open("ab") as log:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "service", "backfill", source, "--since", since],
            env={**env, "PYTHONPATH": str(ROOT)}, cwd=tmp_path, stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip


def state_key(text_redis: redis.Redis) -> str:
    found = list(text_redis.scan_iter(keys.backfill_state("*")))
    return found[0] if found else ""


@pytest.mark.scenario(
    "17.3 backfill resumes after kill -9",
    "`tradewire backfill` of a sitemap index with 20 archive days x 100 entries (2,000 "
    "articles), killed with SIGKILL after some days were queued, then run again",
    "every one of the 2,000 archive articles (and 12 of the news sitemap) queued exactly once; the second run skips the days done",
)  # fmt: skip
def test_backfill_resumes_after_kill_9_without_duplicates(
    record: Recorder, archive_site: SitemapSite, tmp_path: Path, redis_url: str,
    text_redis: redis.Redis, rq_redis: redis.Redis,
) -> None:  # fmt: skip
    source = f"{archive_site.base}/sitemap_index.xml"
    since = datetime.fromtimestamp(archive_site.now - 30 * DAY, UTC).strftime("%Y-%m-%d")
    first = backfill(tmp_path, redis_url, source, since)
    try:
        key = wait_until(lambda: state_key(text_redis), 60, every=0.05)
        assert key, (tmp_path / "backfill.log").read_text()[-2000:]
        assert wait_until(lambda: text_redis.hlen(key) >= 3, 60, every=0.05)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    days_before = text_redis.hlen(key)
    assert 3 <= days_before < 21, "the kill landed part way"
    queued_before = len(queued_ids(rq_redis))

    second = backfill(tmp_path, redis_url, source, since)
    assert second.wait(120) == 0, (tmp_path / "backfill.log").read_text()[-3000:]
    ids = queued_ids(rq_redis)
    expected = {
        article_id_for(canonicalize_url(f"{archive_site.base}{path}"))
        for day in range(20)
        for path in archive_site.archive_paths(day)
    }
    news = {
        article_id_for(canonicalize_url(archive_site.base + p)) for p, _ in archive_site.news_locs()
    }
    record.observed(
        f"killed after {days_before}/20 days ({queued_before} articles queued); after the "
        f"second run {len(ids)} queued, {len(set(ids))} distinct of {len(expected)}"
    )
    # The index also names the news sitemap: its 12 entries are in the window too.
    assert len(ids) == len(set(ids)) == 2012
    assert set(ids) == expected | news
    assert text_redis.hlen(key) == 21
    assert 0 < text_redis.ttl(key) <= BACKFILL_STATE_TTL_S
    # The second run fetched the days finished before only once, in the first run.
    assert archive_site.hits["/archive/0.xml.gz"] == 1
    assert "2000 queued" not in (tmp_path / "backfill.log").read_text()


def test_backfill_never_queues_what_was_emitted(
    settings: Settings, text_redis: redis.Redis, rq_redis: redis.Redis, tmp_path: Path,
    redis_url: str,
) -> None:  # fmt: skip
    """The news sitemap polled and ingested first; then a backfill of the index reaching
    further back queues only the archive, never the articles already emitted."""
    with serve_sitemaps(SitemapSite(archive_days=2, per_day=3)) as site:
        settings.feeds_file.write_text(yaml.safe_dump({"feeds": [
            {"url": f"{site.base}/news-sitemap.xml", "kind": "sitemap"}]}))  # fmt: skip
        feeds = load_feeds(settings.feeds_file)
        assert poll_feeds_once(settings, text_redis, rq_redis, feeds).new_items == 11
        run_worker(settings, keys.EXTRACT_QUEUE, burst=True)
        run_worker(settings, keys.TAG_QUEUE, burst=True)
        emitted = text_redis.xlen(settings.stream_name)
        assert emitted > 0 and not queued_ids(rq_redis)
        since = datetime.fromtimestamp(site.now - 10 * DAY, UTC).strftime("%Y-%m-%d")
        done = backfill(tmp_path, redis_url, f"{site.base}/sitemap_index.xml", since)
        assert done.wait(60) == 0, (tmp_path / "backfill.log").read_text()[-3000:]
        ids = queued_ids(rq_redis)
        archive = {
            article_id_for(canonicalize_url(f"{site.base}{path}"))
            for day in range(2)
            for path in site.archive_paths(day)
        }
        # The old story of the news sitemap (5 days) is in the window now; the rest is known.
        old = article_id_for(canonicalize_url(f"{site.base}/news/old-story.html"))
        assert set(ids) == archive | {old} and len(ids) == len(set(ids))
        run_worker(settings, keys.EXTRACT_QUEUE, burst=True)
        run_worker(settings, keys.TAG_QUEUE, burst=True)
        events = text_redis.xrange(settings.stream_name)
        assert len({f["article_id"] for _, f in events}) == len(events)
        assert "7 queued" in (tmp_path / "backfill.log").read_text()


def test_archive_templates_give_one_url_per_period() -> None:
    since, until = datetime(2026, 10, 30, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC)
    assert archive_urls("https://x.com/s/%Y-%m-%d.xml", since, until) == [
        "https://x.com/s/2026-10-30.xml", "https://x.com/s/2026-10-31.xml",
        "https://x.com/s/2026-11-01.xml", "https://x.com/s/2026-11-02.xml",
    ]  # fmt: skip
    assert archive_urls("https://x.com/s/%Y/%m.xml", since, until) == [
        "https://x.com/s/2026/10.xml", "https://x.com/s/2026/11.xml",
    ]  # fmt: skip
