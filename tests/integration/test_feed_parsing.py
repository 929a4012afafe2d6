"""Feed parsing in worker processes: a hostile feed is cut off at its deadline, and the
jobs the poller's asyncio path writes are the jobs RQ itself writes."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
from pathlib import Path

import redis
from pytest_httpserver import HTTPServer
from rq.job import Job
from werkzeug import Request, Response

from core import keys
from core.connection import async_twin
from core.models import ArticleJob, Feed
from core.queues import JSONSerializer, enqueue_extracts, enqueue_extracts_async
from core.settings import Settings
from core.urls import article_id_for, canonicalize_url
from service.parsing import FeedParsers
from service.poller import poll_feeds_once
from service.state import FeedState
from workers.jobs import extract_job
from workers.runner import run_worker

FEEDS = Path(__file__).resolve().parents[1] / "data" / "feeds"
# feedparser's author regex is quadratic: 30,000 characters take it tens of seconds.
HOSTILE = (
    "<rss version='2.0'><channel><title>t</title><item><title>x</title>"
    "<link>http://hostile.example/1</link><author>" + "a" * 30_000 + "</author></item>"
    "</channel></rss>"
)


def test_a_hostile_feed_is_cut_off_and_its_worker_replaced(
    httpserver: HTTPServer, settings: Settings, text_redis: redis.Redis, rq_redis: redis.Redis
) -> None:
    """One parse worker: the hostile feed takes it first and is killed at the deadline; the
    good feed (answering a little later) gets a new worker and is queued."""
    httpserver.expect_request("/hostile").respond_with_data(
        HOSTILE, content_type="application/rss+xml"
    )

    def late(_request: Request) -> Response:
        time.sleep(0.5)
        return Response((FEEDS / "rss2.xml").read_bytes(), content_type="application/rss+xml")

    httpserver.expect_request("/good").respond_with_handler(late)
    hostile, good = Feed(url=httpserver.url_for("/hostile")), Feed(url=httpserver.url_for("/good"))
    quick = settings.with_overrides(parse_timeout_s=1.0, parse_workers=1)
    started = time.monotonic()
    report = poll_feeds_once(quick, text_redis, rq_redis, [hostile, good])
    elapsed = time.monotonic() - started
    state = FeedState.from_redis(text_redis.hgetall(keys.feed_state(hostile.feed_id)))
    assert (state.last_status, state.consecutive_errors) == ("parse_timeout", 1)
    assert "longer than 1 s" in state.last_error
    assert (report.polled, report.failed, report.new_items) == (2, 1, 2)
    assert elapsed < 8  # the hostile parse alone would take tens of seconds
    assert multiprocessing.active_children() == []  # killed, and the pool closed


def test_async_enqueue_writes_the_job_rq_writes(
    settings: Settings, text_redis: redis.Redis, rq_redis: redis.Redis
) -> None:
    """Articles queued both ways: the job hashes agree but for their payloads and times,
    and an RQ worker runs the asyncio-written job as it runs the other."""
    link = "http://127.0.0.1:9/news/1?utm_source=rss"  # canonical URL differs from the link
    canonical = canonicalize_url(link)

    def job(n: int) -> ArticleJob:
        return ArticleJob(
            article_id=article_id_for(f"{canonical}&n={n}"), url=link, canonical_url=canonical,
            feed_url="http://127.0.0.1:9/rss", feed_title="t", title="x", published_at=None,
            discovered_at="2026-12-01T00:00:00Z", source_kind="feed",
        )  # fmt: skip

    enqueue_extracts(rq_redis, settings, extract_job, [job(1)])

    async def write() -> None:
        client = async_twin(rq_redis)
        try:
            await enqueue_extracts_async(client, settings, extract_job, [job(2)])
        finally:
            await client.aclose()
            await client.connection_pool.disconnect()

    asyncio.run(write())
    sync_id, async_id = (
        i.decode() for i in rq_redis.lrange(f"rq:queue:{keys.EXTRACT_QUEUE}", 0, -1)
    )
    volatile = {b"created_at", b"enqueued_at", b"last_heartbeat", b"data", b"description"}
    sync_hash, async_hash = (rq_redis.hgetall(Job.key_for(i)) for i in (sync_id, async_id))
    assert {k: v for k, v in sync_hash.items() if k not in volatile} == {
        k: v for k, v in async_hash.items() if k not in volatile
    }
    assert set(sync_hash) == set(async_hash)
    assert rq_redis.ttl(Job.key_for(async_id)) == rq_redis.ttl(Job.key_for(sync_id))
    fetched = Job.fetch(async_id, connection=rq_redis, serializer=JSONSerializer)
    assert fetched.args[0][0]["canonical_url"] == canonical != fetched.args[0][0]["url"]
    # A worker runs both alike: their page is unreachable, so each fails once and waits
    # for its retry.
    run_worker(settings, keys.EXTRACT_QUEUE, burst=True)
    assert rq_redis.llen(f"rq:queue:{keys.EXTRACT_QUEUE}") == 0
    for job_id in (sync_id, async_id):
        ran = Job.fetch(job_id, connection=rq_redis, serializer=JSONSerializer)
        assert (ran.get_status(), ran.retries_left) == ("scheduled", settings.job_retries - 1)


def test_async_twin_serves_more_tasks_than_its_pool_holds(text_redis: redis.Redis) -> None:
    """300 commands at once (a poller has 256 fetches in flight): they wait their turn for
    one of the pool's connections instead of failing with "Too many connections"."""

    async def burst() -> list[int]:
        client = async_twin(text_redis)
        try:
            return list(await asyncio.gather(*(client.incr("twin-test") for _ in range(300))))
        finally:
            await client.aclose()
            await client.connection_pool.disconnect()

    assert sorted(asyncio.run(burst())) == list(range(1, 301))


def test_async_claims_load_their_scripts_when_redis_forgot_them(
    settings: Settings, text_redis: redis.Redis
) -> None:
    """EVALSHA only (the service's Redis user may not EVAL): a Redis without the scripts
    (restarted, failed over, SCRIPT FLUSH) gets them loaded once, and the claim holds."""
    from core.claims import AsyncArticleClaims

    async def claim_twice() -> tuple[list[str], list[str]]:
        client = async_twin(text_redis)
        try:
            claims = AsyncArticleClaims(client, 600, settings.seen_ttl_s)
            first = await claims.claim(["a" * 16], "poll:one")
            text_redis.script_flush()
            second = await claims.claim(["a" * 16, "b" * 16], "poll:two")
            return first.mine, second.mine
        finally:
            await client.aclose()
            await client.connection_pool.disconnect()

    text_redis.script_flush()
    assert asyncio.run(claim_twice()) == (["a" * 16], ["b" * 16])


def test_a_parse_worker_never_preempts_the_poller_that_wakes_it(settings: Settings) -> None:
    """Parse workers run as SCHED_BATCH (Linux): a woken one waits for the poller's next
    pause instead of taking its core; the parse still comes back."""

    async def go() -> tuple[int, int]:
        parsers = FeedParsers(settings.with_overrides(parse_workers=1))
        try:
            parsed = await parsers.parse(
                (FEEDS / "rss2.xml").read_bytes(), {}, "http://a.example/", 50
            )
            [worker] = parsers._idle
            return len(parsed.items), os.sched_getscheduler(worker.process.pid or 0)
        finally:
            await parsers.aclose()

    items, policy = asyncio.run(go())
    assert (items, policy) == (2, os.SCHED_BATCH)
