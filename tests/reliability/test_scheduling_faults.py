"""Faults 4–6: duplicate links across feeds, a poller restarted mid-cycle, clock jumps."""

from __future__ import annotations

import asyncio
import random

import pytest
import redis
import yaml
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from core.fetch import Fetcher
from core.models import Feed
from core.settings import Settings
from service.demo import SITE_DIR
from service.poller import Poller
from tests.integration.test_pipeline import run_pipeline
from tests.integration.test_poller import Clock
from tests.reliability.conftest import Recorder

ATOM = (SITE_DIR / "feeds" / "business.atom").read_bytes()


@pytest.mark.scenario(
    "4. one article, many links", "the same article in three feeds, twice in one of them, "
    "with tracking parameters and a #fragment", "one event",
)  # fmt: skip
def test_same_article_in_three_feeds_and_twice_in_one(
    record: Recorder, settings: Settings, text_redis: redis.Redis, rq_redis: redis.Redis
) -> None:
    page = (SITE_DIR / "articles" / "tariff-truce-extended.html").read_bytes()
    with HTTPServer() as server:
        url = server.url_for("/news/truce")
        server.expect_request("/news/truce").respond_with_data(
            page.replace(b"{{BASE}}/articles/tariff-truce-extended.html", url.encode()),
            content_type="text/html",
        )
        links = {
            "/a": [url, url + "?utm_source=a"],
            "/b": [url + "#top"],
            "/c": [url.replace("localhost", "LOCALHOST") + "?fbclid=xyz"],
        }
        for path, items in links.items():
            body = "".join(f"<item><title>t</title><link>{link}</link></item>" for link in items)
            server.expect_request(path).respond_with_data(
                f"<rss version='2.0'><channel><title>{path}</title>{body}</channel></rss>",
                content_type="application/rss+xml",
            )
        settings.feeds_file.write_text(
            yaml.safe_dump({"feeds": [{"url": server.url_for(p)} for p in links]})
        )
        queued = run_pipeline(settings, text_redis, rq_redis)
        fetched = [r.path for r, _ in server.log if r.path == "/news/truce"]
    events = text_redis.xlen(settings.stream_name)
    record.observed(f"{queued} job queued, page fetched {len(fetched)}x, {events} event")
    assert (queued, len(fetched), events) == (1, 1, 1)


def _feeds_server(server: HTTPServer, count: int, interval_s: float | None = None) -> list[Feed]:
    hits: dict[str, int] = {}

    def handler(request: Request) -> Response:
        hits[request.path] = hits.get(request.path, 0) + 1
        return Response(ATOM, content_type="application/atom+xml")

    for i in range(count):
        server.expect_request(f"/f{i}").respond_with_handler(handler)
    return [Feed(url=server.url_for(f"/f{i}"), interval_s=interval_s) for i in range(count)]


@pytest.mark.scenario(
    "5. poller restarted mid-cycle", "a poller claims 20 of 50 due feeds and dies before "
    "fetching them; a new poller starts at once",
    "no feed skipped, none polled twice inside its interval",
)  # fmt: skip
def test_poller_restarted_mid_cycle(
    record: Recorder,
    httpserver: HTTPServer,
    settings: Settings,
    text_redis: redis.Redis,
    rq_redis: redis.Redis,
) -> None:
    feeds = _feeds_server(httpserver, 50)
    clock = Clock()

    async def go() -> list[int]:
        fetcher = Fetcher(settings)
        first = Poller(settings, text_redis, rq_redis, fetcher, clock=clock, rng=random.Random(1))
        first.register(feeds)
        first.store.claim_due(clock.now, settings.poll_lease_s, limit=20)  # ...and dies
        second = Poller(settings, text_redis, rq_redis, fetcher, clock=clock, rng=random.Random(2))
        polled = [(await second.poll_once()).polled]
        clock.now += settings.poll_lease_s / 2
        polled.append((await second.poll_once()).polled)  # lease still held: nothing
        clock.now += settings.poll_lease_s / 2 + 1
        polled.append((await second.poll_once()).polled)  # the dead poller's 20
        await fetcher.aclose()
        return polled

    polled = asyncio.run(go())
    paths = [r.path for r, _ in httpserver.log]
    record.observed(
        f"polls per pass {polled}; {len(set(paths))} feeds polled, max {max(paths.count(p) for p in set(paths))}x each"
    )
    assert polled == [30, 0, 20]
    assert sorted(set(paths)) == sorted(f"/f{i}" for i in range(50)) and len(paths) == 50


@pytest.mark.scenario(
    "6. clock jumps", "the poller's clock jumps 12 h forward, then 12 h back, over 400 "
    "feeds polled every 300 s", "no burst of polls, no feed starved",
)  # fmt: skip
def test_twelve_hour_clock_jumps(
    record: Recorder,
    httpserver: HTTPServer,
    settings: Settings,
    text_redis: redis.Redis,
    rq_redis: redis.Redis,
) -> None:
    feeds = _feeds_server(httpserver, 400, interval_s=300.0)  # configured: no learnt cadence
    clock = Clock()
    quiet = settings.with_overrides(poll_interval_s=300.0, poll_min_interval_s=60.0)

    async def go() -> dict[str, int]:
        fetcher = Fetcher(quiet)
        poller = Poller(quiet, text_redis, rq_redis, fetcher, clock=clock, rng=random.Random(3))
        poller.register(feeds)
        first = 0
        for _ in range(2):  # new feeds enter spread over ~1 s: two cycles poll them all
            first += (await poller.poll_once()).polled
            clock.now += 10
        assert first == 400
        steady = (await poller.poll_once()).polled
        clock.now += 12 * 3600  # forward: without care, all 400 are overdue at once
        after_forward = (await poller.poll_once()).polled
        clock.now += 10
        after_forward += (await poller.poll_once()).polled
        clock.now -= 12 * 3600  # back: without care, nothing is due for 12 hours
        after_back = (await poller.poll_once()).polled
        log_before = len(httpserver.log)
        polled_within = 0
        for _ in range(40):  # the next 400 s, one cycle each 10 s
            clock.now += 10
            polled_within += (await poller.poll_once()).polled
        await fetcher.aclose()
        # Polls are not feeds: a feed polled early in the window is due again before its end.
        feeds_within = len({r.path for r, _ in httpserver.log[log_before:]})
        return {
            "steady": steady,
            "forward": after_forward,
            "back": after_back,
            "next_400s": polled_within,
            "feeds_400s": feeds_within,
        }

    counts = asyncio.run(go())
    record.observed(
        f"polls in the 20 s after the forward jump: {counts['forward']}; right after the jump back: "
        f"{counts['back']}; in the 400 s after it: {counts['next_400s']} polls reaching "
        f"{counts['feeds_400s']} of the 400 feeds"
    )
    assert counts["steady"] == 0
    assert counts["forward"] < 100  # a ~300 s schedule keeps its pace: ~27 feeds per 20 s
    assert counts["feeds_400s"] >= 380  # every feed polled again within its interval (+jitter)
    assert counts["next_400s"] < 2 * 400  # and none more than its schedule asks for


@pytest.mark.scenario(
    "18.9 one poller paused for an hour",
    "two pollers share 100 feeds polled every 300 s; one is frozen (SIGSTOP, a VM pause) "
    "for an hour while the other keeps polling, then resumes",
    "the schedule is not shifted: every feed is polled again within its interval",
)  # fmt: skip
def test_a_paused_poller_does_not_shift_the_shared_schedule(
    record: Recorder,
    httpserver: HTTPServer,
    settings: Settings,
    text_redis: redis.Redis,
    rq_redis: redis.Redis,
) -> None:
    feeds = _feeds_server(httpserver, 100, interval_s=300.0)
    wall = Clock()
    # A frozen process's monotonic clock runs on, as the wall clock does.
    monotonic = Clock(now=1000.0)
    quiet = settings.with_overrides(poll_interval_s=300.0, poll_min_interval_s=60.0)

    def tick(seconds: float) -> None:
        wall.now += seconds
        monotonic.now += seconds

    async def go() -> dict[str, int]:
        fetcher = Fetcher(quiet)
        pollers = [
            Poller(
                quiet,
                text_redis,
                rq_redis,
                fetcher,
                clock=wall,
                rng=random.Random(i),
                monotonic=monotonic,
            )
            for i in range(2)
        ]
        pollers[0].register(feeds)
        for _ in range(2):
            await pollers[0].poll_once()
            await pollers[1].poll_once()
            tick(10)
        for _ in range(360):  # an hour in which only the second poller runs
            await pollers[1].poll_once()
            tick(10)
        polled = set()
        before = len(httpserver.log)
        for _ in range(33):  # both pollers again, for a little over one interval
            for poller in pollers:
                await poller.poll_once()
            tick(10)
        polled = {r.path for r, _ in httpserver.log[before:]}
        await fetcher.aclose()
        return {"polled_after_resume": len(polled)}

    counts = asyncio.run(go())
    record.observed(
        f"feeds polled in the 330 s after the resume: {counts['polled_after_resume']} of 100"
    )
    assert counts["polled_after_resume"] >= 95
