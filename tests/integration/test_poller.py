"""The poller against a real Redis and real local feeds."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import cast

import redis
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from core import keys, queues
from core.connection import async_twin
from core.fetch import Fetcher
from core.models import Feed
from core.settings import Settings
from service.poller import START_GROUP, CycleReport, Poller, poll_feeds_once
from service.state import AsyncFeedStore, FeedState, FeedStore
from tests.httpd import NotModified, serve_handler

FEEDS = Path(__file__).resolve().parents[1] / "data" / "feeds"


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def poll(settings: Settings, text_redis: redis.Redis, rq_redis: redis.Redis, feeds: list[Feed],
         clock: Clock, register: bool = True) -> CycleReport:  # fmt: skip
    return poll_feeds_once(settings, text_redis, rq_redis, feeds, clock=clock,
                           rng=random.Random(1), register=register)  # fmt: skip


def test_new_items_are_queued_once_and_304_costs_nothing(
    httpserver: HTTPServer, settings: Settings, text_redis: redis.Redis, rq_redis: redis.Redis
) -> None:
    """First poll queues the feed's items; the next sends If-None-Match and gets 304."""
    body = (FEEDS / "rss2.xml").read_bytes()
    httpserver.expect_request("/rss", headers={"If-None-Match": '"abc"'}).respond_with_data(
        "", status=304
    )
    httpserver.expect_request("/rss").respond_with_data(
        body, headers={"ETag": '"abc"'}, content_type="application/rss+xml"
    )
    feed = Feed(url=httpserver.url_for("/rss"))
    clock = Clock()
    first = poll(settings, text_redis, rq_redis, [feed], clock)
    assert (first.polled, first.new_items) == (1, 2)
    extract = queues.queue(rq_redis, keys.EXTRACT_QUEUE)
    [job] = extract.jobs  # one job for the poll's new items
    assert len(job.args[0]) == 2
    assert job.id.startswith("extract-") and job.timeout == 2 * settings.job_timeout_s
    assert job.retries_left == settings.job_retries

    assert poll(settings, text_redis, rq_redis, [feed], clock).polled == 0  # not due yet
    next_at = float(text_redis.hget(keys.feed_state(feed.feed_id), "next_poll_at"))
    assert next_at - clock.now >= 1800 * 0.9  # the feed's <ttl>30</ttl> stretches the interval
    clock.now = next_at + 1
    second = poll(settings, text_redis, rq_redis, [feed], clock)
    assert (second.polled, second.not_modified, second.new_items) == (1, 1, 0)
    assert extract.count == 1
    state = text_redis.hgetall(keys.feed_state(feed.feed_id))
    assert state["last_status"] == "304" and state["etag"] == '"abc"'


def test_same_article_in_two_feeds_is_queued_once(
    httpserver: HTTPServer, settings: Settings, text_redis: redis.Redis, rq_redis: redis.Redis
) -> None:
    body = (FEEDS / "rss2.xml").read_bytes()
    httpserver.expect_request("/a").respond_with_data(body, content_type="application/rss+xml")
    httpserver.expect_request("/b").respond_with_data(body, content_type="application/rss+xml")
    feeds = [Feed(url=httpserver.url_for("/a")), Feed(url=httpserver.url_for("/b"))]
    report = poll(settings, text_redis, rq_redis, feeds, Clock())
    assert report.polled == 2 and report.new_items == 2
    queued = [a["article_id"] for job in queues.queue(rq_redis, keys.EXTRACT_QUEUE).jobs
              for a in job.args[0]]  # fmt: skip
    assert len(queued) == len(set(queued)) == 2


def test_errors_back_off_exponentially_and_success_resets(
    httpserver: HTTPServer, settings: Settings, text_redis: redis.Redis, rq_redis: redis.Redis
) -> None:
    """Each failure pushes the next poll further out (capped, jittered); success resets."""
    failing = {"on": True}

    def handler(request: Request) -> Response:
        if failing["on"]:
            return Response("down", status=503)
        return Response((FEEDS / "rss2.xml").read_bytes(), content_type="application/rss+xml")

    httpserver.expect_request("/rss").respond_with_handler(handler)
    feed = Feed(url=httpserver.url_for("/rss"))
    clock = Clock()
    delays = []
    for attempt in range(6):
        report = poll(settings, text_redis, rq_redis, [feed], clock, register=attempt == 0)
        assert report.failed == 1
        state = text_redis.hgetall(keys.feed_state(feed.feed_id))
        assert int(state["consecutive_errors"]) == attempt + 1
        assert state["last_status"] == "http_503"
        delays.append(float(state["next_poll_at"]) - clock.now)
        clock.now = float(state["next_poll_at"]) + 0.001
    # Jitter is in [0.5, 1.0] of base * 2^n: each window doubles.
    for n, delay in enumerate(delays):
        assert settings.backoff_base_s * 2**n * 0.5 <= delay <= settings.backoff_base_s * 2**n
    failing["on"] = False
    report = poll(settings, text_redis, rq_redis, [feed], clock, register=False)
    assert report.new_items == 2
    state = text_redis.hgetall(keys.feed_state(feed.feed_id))
    assert state["consecutive_errors"] == "0" and state["last_status"] == "200"


def test_retry_after_is_honoured(
    httpserver: HTTPServer, settings: Settings, text_redis: redis.Redis, rq_redis: redis.Redis
) -> None:
    httpserver.expect_request("/rss").respond_with_data(
        "slow down", status=429, headers={"Retry-After": "3000"}
    )
    feed = Feed(url=httpserver.url_for("/rss"))
    clock = Clock()
    poll(settings, text_redis, rq_redis, [feed], clock)
    state = text_redis.hgetall(keys.feed_state(feed.feed_id))
    assert float(state["next_poll_at"]) - clock.now >= 3000


def test_not_a_feed_is_a_per_feed_error(
    httpserver: HTTPServer, settings: Settings, text_redis: redis.Redis, rq_redis: redis.Redis
) -> None:
    """An HTML page where a feed was expected fails that feed only; the other is polled."""
    httpserver.expect_request("/html").respond_with_data(
        "<html><body>hi</body></html>", content_type="text/html"
    )
    httpserver.expect_request("/rss").respond_with_data(
        (FEEDS / "atom.xml").read_bytes(), content_type="application/atom+xml"
    )
    feeds = [Feed(url=httpserver.url_for("/html")), Feed(url=httpserver.url_for("/rss"))]
    report = poll(settings, text_redis, rq_redis, feeds, Clock())
    assert (report.polled, report.failed, report.new_items) == (2, 1, 2)
    assert text_redis.hget(keys.feed_state(feeds[0].feed_id), "last_status") == "not_a_feed"


def test_two_pollers_never_poll_a_feed_twice_in_one_cycle(
    httpserver: HTTPServer, settings: Settings, redis_url: str
) -> None:
    """Two pollers race over 40 feeds on one Redis: each feed is fetched exactly once."""
    body = (FEEDS / "atom.xml").read_bytes()
    for i in range(40):
        httpserver.expect_request(f"/f{i}").respond_with_data(
            body, content_type="application/atom+xml"
        )
    feeds = [Feed(url=httpserver.url_for(f"/f{i}")) for i in range(40)]
    clock = Clock()
    clients = [redis.Redis.from_url(redis_url, decode_responses=True) for _ in range(2)]
    rq_clients = [redis.Redis.from_url(redis_url) for _ in range(2)]

    async def both() -> list[CycleReport]:
        fetchers = [Fetcher(settings), Fetcher(settings)]
        pollers = [
            Poller(
                settings, clients[i], rq_clients[i], fetchers[i], clock=clock, rng=random.Random(i)
            )
            for i in range(2)
        ]
        pollers[0].register(feeds)
        reports = await asyncio.gather(pollers[0].poll_once(), pollers[1].poll_once())
        for fetcher in fetchers:
            await fetcher.aclose()
        return list(reports)

    reports = asyncio.run(both())
    assert sum(r.polled for r in reports) == 40
    paths = sorted(request.path for request, _ in httpserver.log)
    assert paths == sorted(f"/f{i}" for i in range(40))


def test_entry_with_changed_link_or_title_is_not_new(
    httpserver: HTTPServer, settings: Settings, text_redis: redis.Redis, rq_redis: redis.Redis
) -> None:
    """Same guid with a new link, or same link with a new title and date: nothing queued."""
    version = {"n": 0}

    def handler(request: Request) -> Response:
        n = version["n"]
        link = "https://wire.example/a" if n == 0 else "https://wire.example/a-updated-slug"
        title = "Tariffs" if n < 2 else "Tariffs (updated)"
        item = f"<item><title>{title}</title><link>{link}</link><guid isPermaLink='false'>g-1</guid><pubDate>Mon, 0{n + 1} Nov 2025 08:00:00 GMT</pubDate></item>"
        item2 = f"<item><title>{title} 2</title><link>https://wire.example/b</link><pubDate>Mon, 0{n + 1} Nov 2025 08:00:00 GMT</pubDate></item>"
        return Response(
            f"<rss version='2.0'><channel><title>t</title>{item}{item2}</channel></rss>",
            content_type="application/rss+xml",
        )

    httpserver.expect_request("/rss").respond_with_handler(handler)
    feed = Feed(url=httpserver.url_for("/rss"))
    clock = Clock()
    counts = []
    for n in range(3):
        version["n"] = n
        counts.append(
            poll(settings, text_redis, rq_redis, [feed], clock, register=n == 0).new_items
        )
        clock.now = float(text_redis.hget(keys.feed_state(feed.feed_id), "next_poll_at")) + 1
    assert counts == [2, 0, 0]


def test_our_own_outage_is_not_held_against_each_feed(
    settings: Settings, text_redis: redis.Redis, rq_redis: redis.Redis
) -> None:
    """Twelve feeds all refuse connections (our network is down): one log line, no feed's
    error count grows, all are retried soon."""
    import socket

    from structlog.testing import capture_logs

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    feeds = [Feed(url=f"http://127.0.0.1:{closed}/feed{i}") for i in range(12)]
    clock = Clock()
    with capture_logs() as logs:
        report = poll(settings, text_redis, rq_redis, feeds, clock)
    assert report.failed == 12
    events = [entry["event"] for entry in logs]
    assert events.count("poller.outage_suspected") == 1
    assert "poller.feed_failed" not in events
    for feed in feeds:
        state = text_redis.hgetall(keys.feed_state(feed.feed_id))
        assert state["last_status"] == "outage" and state["consecutive_errors"] == "0"
        assert float(state["next_poll_at"]) - clock.now <= settings.backoff_base_s


def test_one_unreachable_feed_among_healthy_ones_is_its_own_failure(
    httpserver: HTTPServer, settings: Settings, text_redis: redis.Redis, rq_redis: redis.Redis
) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    body = (FEEDS / "atom.xml").read_bytes()
    for i in range(11):
        httpserver.expect_request(f"/ok{i}").respond_with_data(
            body, content_type="application/atom+xml"
        )
    feeds = [Feed(url=httpserver.url_for(f"/ok{i}")) for i in range(11)]
    broken = Feed(url=f"http://127.0.0.1:{closed}/feed")
    poll(settings, text_redis, rq_redis, [*feeds, broken], Clock())
    state = text_redis.hgetall(keys.feed_state(broken.feed_id))
    assert state["last_status"] == "connect" and state["consecutive_errors"] == "1"


def test_hints_and_rhythm_set_the_interval(
    httpserver: HTTPServer, settings: Settings, text_redis: redis.Redis, rq_redis: redis.Redis
) -> None:
    """A busy feed is polled more often than the default, a Cache-Control max-age and an
    sy:updatePeriod push polls out, all within the configured bounds."""
    import time as _time

    now = 1_800_000_000.0
    busy_items = "".join(
        f"<item><title>t{i}</title><link>https://b.example/{i}</link>"
        f"<pubDate>{_time.strftime('%a, %d %b %Y %H:%M:%S GMT', _time.gmtime(now - i * 240))}</pubDate></item>"
        for i in range(10)
    )
    httpserver.expect_request("/busy").respond_with_data(
        f"<rss version='2.0'><channel><title>busy</title>{busy_items}</channel></rss>",
        content_type="application/rss+xml",
    )
    httpserver.expect_request("/cached").respond_with_data(
        (FEEDS / "atom.xml").read_bytes(),
        content_type="application/atom+xml",
        headers={"Cache-Control": "public, max-age=3600"},
    )
    httpserver.expect_request("/daily").respond_with_data(
        "<rss version='2.0' xmlns:sy='http://purl.org/rss/1.0/modules/syndication/'><channel><title>d</title>"
        "<sy:updatePeriod>daily</sy:updatePeriod><sy:updateFrequency>2</sy:updateFrequency>"
        "<item><title>x</title><link>https://d.example/x</link></item></channel></rss>",
        content_type="application/rss+xml",
    )
    feeds = {name: Feed(url=httpserver.url_for(f"/{name}")) for name in ("busy", "cached", "daily")}
    clock = Clock(now)
    poll(settings, text_redis, rq_redis, list(feeds.values()), clock)

    def delay(name: str) -> float:
        return float(text_redis.hget(keys.feed_state(feeds[name].feed_id), "next_poll_at")) - now

    # Items every 4 minutes: poll every ~2 minutes (clamped at the 60 s minimum), not 300 s.
    assert settings.poll_min_interval_s * 0.9 <= delay("busy") <= 130
    assert delay("cached") >= 3600 * 0.9
    assert delay("daily") >= 12 * 3600 * 0.9


def test_heartbeat_is_not_held_back_by_a_slow_feed(
    httpserver: HTTPServer, settings: Settings, text_redis: redis.Redis, rq_redis: redis.Redis
) -> None:
    """A poller whose only feed hangs is alive: it beats within seconds, not once the fetch
    (or a failure window waiting for enough polls) is over."""
    import threading
    import time as _time

    release = threading.Event()

    def hang(request: Request) -> Response:
        release.wait(20)
        return Response((FEEDS / "atom.xml").read_bytes(), content_type="application/atom+xml")

    httpserver.expect_request("/slow").respond_with_handler(hang)

    async def go() -> float | None:
        fetcher = Fetcher(settings)
        stop = asyncio.Event()
        poller = Poller(settings, text_redis, rq_redis, fetcher)
        poller.register([Feed(url=httpserver.url_for("/slow"))])
        task = asyncio.create_task(poller.run(stop))
        started, beat = _time.monotonic(), None
        while beat is None and _time.monotonic() - started < 5:
            await asyncio.sleep(0.1)
            beat = text_redis.get(keys.POLLER_HEARTBEAT)
        in_flight = not release.is_set()
        release.set()
        stop.set()
        await task
        await fetcher.aclose()
        assert in_flight
        return None if beat is None else float(beat)

    beat = asyncio.run(go())
    assert beat is not None and abs(beat - _time.time()) < 10


def test_a_claimed_chunk_of_polls_starts_a_few_per_loop_iteration(
    settings: Settings, text_redis: redis.Redis, rq_redis: redis.Redis
) -> None:
    """Forty feeds due at once are claimed together, but their polls start START_GROUP per
    event loop iteration: a task stepping through the loop meanwhile (as timers, I/O and
    the health endpoint do) never waits behind more than that many first steps."""
    with serve_handler(NotModified) as base:
        feeds = [Feed(url=f"{base}/feed?n={n}") for n in range(40)]
        polled = _poll_watching_starts(settings, text_redis, rq_redis, feeds)
        report, started_per_step = asyncio.run(polled)
    assert (report.polled, report.not_modified) == (40, 40)
    assert sum(started_per_step) == 40
    assert max(started_per_step) <= START_GROUP < 40


async def _poll_watching_starts(
    settings: Settings, text_redis: redis.Redis, rq_redis: redis.Redis, feeds: list[Feed]
) -> tuple[CycleReport, list[int]]:
    """One poll of ``feeds`` beside a task that counts, at each of its steps (one per loop
    iteration), the polls started since its last."""

    def polls() -> set[asyncio.Task[object]]:
        return {t for t in asyncio.all_tasks() if "_poll_guarded" in repr(t.get_coro())}

    fetcher = Fetcher(settings)
    poller = Poller(settings, text_redis, rq_redis, fetcher, clock=Clock())
    poller.register(feeds)
    polling = asyncio.create_task(poller.poll_once())
    seen: set[asyncio.Task[object]] = set()
    started_per_step = []
    while not polling.done():
        await asyncio.sleep(0)  # one step per loop iteration
        now = polls()
        started_per_step.append(len(now - seen))
        seen |= now
    await fetcher.aclose()
    return polling.result(), started_per_step


def test_feed_states_round_trip_through_the_asyncio_store(text_redis: redis.Redis) -> None:
    """The poller's one-reply load and one-argument save keep every field as the blocking
    store reads and writes it: text beyond ASCII and JSON's own quoting, a feed never
    polled (no state hash) and a feed whose definition is gone."""
    store = FeedStore(text_redis)
    feeds = [
        Feed(url="https://a.example/rss", title='Les "Échos" \\ 日本'),
        Feed(url="https://b.example/rss"),
    ]
    store.register(feeds, now=100.0)
    state = FeedState(etag='W/"e\\1"', title="Ünïcode 😀 \n tab\t", next_poll_at=1234.5678901234,
                      consecutive_errors=3, hint_s=60.0, body_hash="ab" * 16)  # fmt: skip

    async def go() -> list[tuple[str, Feed | None, FeedState]]:
        client = async_twin(text_redis)
        try:
            aio = AsyncFeedStore(client)
            await aio.save_many({feeds[0].feed_id: state})
            return await aio.load([feeds[0].feed_id, feeds[1].feed_id, "gone"])
        finally:
            await client.aclose()
            await client.connection_pool.disconnect()  # async_twin shares a pool

    [(_, first, saved), (_, second, fresh), (_, gone, _)] = asyncio.run(go())
    assert (first, second, gone) == (feeds[0], feeds[1], None)
    assert saved == state == store.state(feeds[0].feed_id)
    assert fresh == FeedState()
    scored = cast(
        list[tuple[str, float]], text_redis.zrange(keys.FEEDS_DUE, 0, -1, withscores=True)
    )
    due = dict(scored)
    assert due[feeds[0].feed_id] == state.next_poll_at and due[feeds[1].feed_id] == 100.0
    assert "gone" not in due  # a save only moves feeds the registry holds (ZADD XX)
