"""Per-host politeness and robots.txt for article downloads, against real servers."""

from __future__ import annotations

import asyncio
import threading
import time

import redis
import yaml
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from core.settings import Settings
from tests.integration.test_pipeline import run_pipeline
from workers.politeness import FULL_RETRY_S, HostBusyError, HostGate


def test_min_delay_and_concurrency_hold_across_workers(redis_url: str) -> None:
    """Six 'workers' (threads with their own connections) download from one host:
    never more than 2 at once, starts at least 0.2 s apart."""
    active = 0
    peak = 0
    starts: list[float] = []
    lock = threading.Lock()

    async def download() -> None:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
            starts.append(time.monotonic())
        await asyncio.sleep(0.3)
        with lock:
            active -= 1

    def worker() -> None:
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        gate = HostGate(client, concurrency=2, min_delay_s=0.2, max_wait_s=30, lease_s=10)
        asyncio.run(gate.run("news.example", download))
        client.close()

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak <= 2 and len(starts) == 6
    gaps = [b - a for a, b in zip(sorted(starts), sorted(starts)[1:], strict=False)]
    assert min(gaps) >= 0.18  # Redis's clock and ours differ by scheduling jitter only


def test_a_host_that_stays_busy_fails_the_job_for_a_retry(text_redis: redis.Redis) -> None:
    gate = HostGate(text_redis, concurrency=1, min_delay_s=0, max_wait_s=0.5, lease_s=30)
    assert gate.try_acquire("busy.example", "holder") == 0

    async def never() -> None:
        raise AssertionError("must not run without a slot")

    started = time.monotonic()
    try:
        asyncio.run(gate.run("busy.example", never))
    except HostBusyError:
        pass
    else:
        raise AssertionError("expected HostBusyError")
    assert time.monotonic() - started < 2
    gate.release("busy.example", "holder")
    assert gate.try_acquire("busy.example", "next") == 0


def test_a_full_host_is_asked_again_soon_but_not_before_its_spacing_allows(
    text_redis: redis.Redis,
) -> None:
    """Slots free when downloads end, which no lease tells: a download that found them all
    taken asks again after FULL_RETRY_S, not after the earliest lease (seconds away), unless
    the host's spacing between starts holds it longer anyway."""
    quick = HostGate(text_redis, concurrency=1, min_delay_s=0, max_wait_s=5, lease_s=30)
    assert quick.try_acquire("full.example", "holder") == 0
    assert quick.try_acquire("full.example", "waiting") == FULL_RETRY_S
    spaced = HostGate(text_redis, concurrency=1, min_delay_s=0.8, max_wait_s=5, lease_s=30)
    started = time.monotonic()
    assert spaced.try_acquire("spaced.example", "holder") == 0
    wait = spaced.try_acquire("spaced.example", "waiting")
    assert max(FULL_RETRY_S, 0.8 - (time.monotonic() - started)) - 0.01 <= wait <= 0.8
    slow = HostGate(text_redis, concurrency=1, min_delay_s=5, max_wait_s=5, lease_s=30)
    assert slow.try_acquire("slow.example", "holder") == 0
    assert slow.try_acquire("slow.example", "waiting") == 1.0  # asks at least once a second


def test_robots_txt_disallowed_pages_are_refused(
    settings: Settings, text_redis: redis.Redis, rq_redis: redis.Redis
) -> None:
    """robots.txt forbids /private/ to our agent: that article is refused, the other kept."""
    from service.demo import SITE_DIR

    page = (SITE_DIR / "articles" / "tariff-truce-extended.html").read_bytes()
    other = (SITE_DIR / "articles" / "fentanyl-tariffs-cut.html").read_bytes()
    with HTTPServer() as server:
        server.expect_request("/robots.txt").respond_with_data(
            "User-agent: tradewire\nDisallow: /private/\n"
        )
        server.expect_request("/private/truce").respond_with_data(page, content_type="text/html")
        server.expect_request("/news/fentanyl").respond_with_data(other, content_type="text/html")

        def rss(_: Request) -> Response:
            return Response(
                "<rss version='2.0'><channel><title>t</title>"
                f"<item><title>A</title><link>{server.url_for('/private/truce')}</link></item>"
                f"<item><title>B</title><link>{server.url_for('/news/fentanyl')}</link></item>"
                "</channel></rss>",
                content_type="application/rss+xml",
            )

        server.expect_request("/rss").respond_with_handler(rss)
        settings.feeds_file.write_text(yaml.safe_dump({"feeds": [{"url": server.url_for("/rss")}]}))
        polite = settings.with_overrides(respect_robots_txt=True)
        assert run_pipeline(polite, text_redis, rq_redis) == 2
        fetched = [request.path for request, _ in server.log]
    assert "/private/truce" not in fetched and "/news/fentanyl" in fetched
    assert fetched.count("/robots.txt") == 1
    assert len(list(settings.corpus_dir.glob("*.txt"))) == 1
