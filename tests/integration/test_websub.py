"""WebSub against a small local hub (tests/websub_hub.py): subscribe, verification of
intent, signed and forged pushes, an expired lease, unsubscribe. A real Redis, a real
health server serving the callback, a real poller."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest
import redis
import structlog
from pytest_httpserver import HTTPServer
from redis.backoff import NoBackoff
from redis.retry import Retry

from core import keys, queues
from core.fetch import Fetcher
from core.logs import configure_logging
from core.metrics import REGISTRY
from core.models import Feed
from core.settings import Settings
from core.urls import article_id_for
from service.health import HealthServer, HealthState
from service.poller import Poller
from service.websub import LEASE_MARGIN_S, WebSub
from tests.conftest import free_port
from tests.websub_hub import Hub, serve_hub


def rss(hub: str, self_url: str, links: list[str]) -> bytes:
    items = "".join(
        f"<item><title>{u}</title><link>{u}</link><guid>{u}</guid></item>" for u in links
    )
    return (
        "<rss version='2.0' xmlns:atom='http://www.w3.org/2005/Atom'><channel><title>Push</title>"
        f"<atom:link rel='hub' href='{hub}'/><atom:link rel='self' href='{self_url}'/>"
        f"{items}</channel></rss>"
    ).encode()


@pytest.fixture
def hub() -> Iterator[Hub]:
    with serve_hub() as running:
        yield running


class Rig:
    def __init__(self, poller: Poller, websub: WebSub, health: HealthServer, feed: Feed) -> None:
        self.poller, self.websub, self.health, self.feed = poller, websub, health, feed

    @property
    def callback(self) -> str:
        return f"http://127.0.0.1:{self.health.port}/websub/{self.feed.feed_id}"

    async def subscribed(self, hub: Hub) -> None:
        """Poll (the hub is seen), send the request, wait for the hub's verification."""
        hub.verified.clear()
        await self.poller.poll_once()
        await self.websub.tick()
        assert await asyncio.to_thread(hub.verified.wait, 10)
        await self.websub.tick()  # the live view now holds the subscription


@asynccontextmanager
async def rig(
    settings: Settings, text_redis: redis.Redis, rq_redis: redis.Redis, feed_url: str
) -> AsyncIterator[Rig]:
    port = free_port()
    settings = settings.with_overrides(websub_callback_url=f"http://127.0.0.1:{port}/websub")
    fetcher = Fetcher(settings)
    poller = Poller(settings, text_redis, rq_redis, fetcher)
    feed = Feed(url=feed_url)
    poller.register([feed])
    websub = WebSub(settings, poller, fetcher)
    poller.push = websub
    state = HealthState()
    state.push = websub
    health = HealthServer("127.0.0.1", port, state, registry=None).start()  # type: ignore[arg-type]
    try:
        yield Rig(poller, websub, health, feed)
    finally:
        health.stop()
        await fetcher.aclose()


def serve_feed(httpserver: HTTPServer, hub: Hub, links: list[str]) -> str:
    url = httpserver.url_for("/feed.xml")
    httpserver.expect_request("/feed.xml").respond_with_data(
        rss(hub.url, url, links), content_type="application/rss+xml"
    )
    return url


def queued_ids(rq_redis: redis.Redis) -> list[str]:
    return [a["article_id"] for job in queues.queue(rq_redis, keys.EXTRACT_QUEUE).jobs
            for a in job.args[0]]  # fmt: skip


def test_subscribe_verify_push_and_forgeries(
    httpserver: HTTPServer, hub: Hub, settings: Settings, text_redis: redis.Redis,
    rq_redis: redis.Redis,
) -> None:  # fmt: skip
    feed_url = serve_feed(httpserver, hub, [])
    pushed = httpserver.url_for("/news/pushed")
    forged = httpserver.url_for("/news/forged")

    out = io.StringIO()
    configure_logging("INFO", "json", stream=out)
    # The service's processors, but no logger cached: a module's logger cached here would
    # keep writing to `out` in later tests and slip past their capture_logs().
    structlog.configure(cache_logger_on_first_use=False)

    def logs() -> list[dict[str, str]]:
        return [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]

    async def scenario() -> None:
        async with rig(settings, text_redis, rq_redis, feed_url) as r:
            await r.subscribed(hub)
            [request] = hub.requests
            assert request["hub.mode"] == "subscribe" and request["hub.topic"] == feed_url
            assert request["hub.callback"] == r.callback
            assert request["hub.lease_seconds"] == str(settings.websub_lease_s)
            secret = request["hub.secret"]
            assert len(secret) == 64
            sub_key = keys.websub_subscription(r.feed.feed_id)
            assert text_redis.hget(sub_key, "state") == "active"
            assert 0 < text_redis.ttl(sub_key) <= settings.websub_lease_s + LEASE_MARGIN_S
            [subscribed] = [e for e in logs() if e["event"] == "websub.subscribed"]
            assert subscribed["feed"] == feed_url and subscribed["feed_id"] == r.feed.feed_id

            # The next poll comes websub_poll_factor times later.
            text_redis.zadd(keys.FEEDS_DUE, {r.feed.feed_id: 0})
            await r.poller.poll_once()
            next_at = float(text_redis.hget(keys.feed_state(r.feed.feed_id), "next_poll_at"))
            slowed = settings.poll_interval_s * r.websub.settings.websub_poll_factor
            assert next_at - time.time() >= 0.85 * slowed

            _assert_forged_verifications_refused(hub, r, text_redis, feed_url)
            _assert_signed_pushes_queue_once(
                hub, r, text_redis, rq_redis, logs, (feed_url, pushed, forged)
            )

    asyncio.run(scenario())
    assert secret_of(hub) not in out.getvalue()  # the secret is never logged


def _assert_forged_verifications_refused(
    hub: Hub, r: Rig, text_redis: redis.Redis, feed_url: str
) -> None:
    """Another topic, another feed's path, a mode not asked for, and the right topic
    replayed long after our request: none is echoed."""
    assert not hub.verify_intent(r.callback, "subscribe", feed_url + "?x", 60).echoed
    other = r.callback.rsplit("/", 1)[0] + "/" + "0" * 16
    assert not hub.verify_intent(other, "subscribe", feed_url, 60).echoed
    assert not hub.verify_intent(r.callback, "unsubscribe", feed_url, 60).echoed
    sub_key = keys.websub_subscription(r.feed.feed_id)
    text_redis.hset(sub_key, "requested_at", time.time() - 2 * 24 * 3600)
    assert not hub.verify_intent(r.callback, "subscribe", feed_url, 10**7).echoed
    assert float(text_redis.hget(sub_key, "lease_end")) < time.time() + 864000 + 60


def _assert_signed_pushes_queue_once(
    hub: Hub, r: Rig, text_redis: redis.Redis, rq_redis: redis.Redis,
    logs: Callable[[], list[dict[str, str]]], links: tuple[str, str, str],
) -> None:  # fmt: skip
    """Pushes with a wrong or no signature are dropped (2xx, logged); one pushed twice
    with good signatures (sha1, then sha256) is queued once, through the poller's claims."""
    feed_url, pushed, forged = links
    before = {result: pushes(result) for result in ("bad_signature", "queued")}
    bad = hub.publish(feed_url, rss(hub.url, feed_url, [forged]), signature="wrong")
    unsigned = hub.publish(feed_url, rss(hub.url, feed_url, [forged]), signature="none")
    assert bad.status_code == unsigned.status_code == 202  # WebSub: 2xx, then dropped
    assert queued_ids(rq_redis) == []
    rejected = [e for e in logs() if e["event"] == "websub.bad_signature"]
    assert len(rejected) == 2 and all(e["feed"] == feed_url for e in rejected)
    for algorithm in ("sha1", "sha256"):
        ok = hub.publish(feed_url, rss(hub.url, feed_url, [pushed]), signature=algorithm)
        assert ok.status_code == 202
    assert queued_ids(rq_redis) == [article_id_for(pushed)]
    assert text_redis.exists(keys.seen_url(article_id_for(forged))) == 0
    assert [e["feed"] for e in logs() if e["event"] == "websub.pushed"] == [feed_url] * 2
    new_at = float(text_redis.hget(keys.feed_state(r.feed.feed_id), "last_new_item_at"))
    assert abs(new_at - time.time()) < 30  # a pushed feed does not look stale
    assert pushes("bad_signature") - before["bad_signature"] == 2
    assert pushes("queued") - before["queued"] == 2


def pushes(result: str) -> float:
    labels = {"result": result}
    return REGISTRY.get_sample_value("tradewire_websub_notifications_total", labels) or 0.0


def secret_of(hub: Hub) -> str:
    return hub.requests[0]["hub.secret"]


def test_callback_guards_its_routes_and_body_size(
    httpserver: HTTPServer, hub: Hub, settings: Settings, text_redis: redis.Redis,
    rq_redis: redis.Redis,
) -> None:  # fmt: skip
    feed_url = serve_feed(httpserver, hub, [])

    async def scenario() -> None:
        async with rig(settings, text_redis, rq_redis, feed_url) as r:
            await r.subscribed(hub)
            base = f"http://127.0.0.1:{r.health.port}"
            cap = r.websub.settings.max_feed_bytes
            huge = await asyncio.to_thread(
                httpx.post, r.callback, content=b"x" * (cap + 1), timeout=10
            )
            assert huge.status_code == 413
            for path in ("/websub/", "/websub/../healthz", "/websub/abc", "/other", "/healthz"):
                answer = await asyncio.to_thread(httpx.post, base + path, content=b"x", timeout=5)
                assert answer.status_code == 404, path
                assert "healthz" not in answer.text and "metrics" not in answer.text
            listed = await asyncio.to_thread(httpx.get, base + "/nothing", timeout=5)
            assert "websub" not in listed.text  # the 404 lists the probes, never the callback
            gone = await asyncio.to_thread(
                httpx.post, base + "/websub/" + "0" * 16, content=b"<rss/>", timeout=5
            )
            assert gone.status_code == 410 and gone.text == "no subscription"

    asyncio.run(scenario())


def test_an_expired_lease_restores_polling_and_refuses_pushes(
    httpserver: HTTPServer, hub: Hub, settings: Settings, text_redis: redis.Redis,
    rq_redis: redis.Redis,
) -> None:  # fmt: skip
    feed_url = serve_feed(httpserver, hub, [])
    late = httpserver.url_for("/news/late")
    hub.grant_lease_s = 1

    async def scenario() -> None:
        async with rig(settings, text_redis, rq_redis, feed_url) as r:
            await r.subscribed(hub)
            sub_key = keys.websub_subscription(r.feed.feed_id)
            assert text_redis.hget(sub_key, "lease_s") == "1"
            assert text_redis.ttl(sub_key) <= 1 + LEASE_MARGIN_S
            hub.verify = False  # the hub takes renewals but never confirms them
            await asyncio.sleep(1.5)
            await r.websub.tick()
            assert text_redis.zcard(keys.WEBSUB_LEASES) == 0
            text_redis.zadd(keys.FEEDS_DUE, {r.feed.feed_id: 0})
            await r.poller.poll_once()
            next_at = float(text_redis.hget(keys.feed_state(r.feed.feed_id), "next_poll_at"))
            assert next_at - time.time() <= 1.15 * settings.poll_interval_s  # normal rate
            answer = await asyncio.to_thread(hub.publish, feed_url, rss(hub.url, feed_url, [late]))
            assert answer.status_code == 410
            assert queued_ids(rq_redis) == []

    asyncio.run(scenario())


def test_a_lease_is_renewed_once_when_a_fifth_of_it_is_left(
    httpserver: HTTPServer, hub: Hub, settings: Settings, text_redis: redis.Redis,
    rq_redis: redis.Redis,
) -> None:  # fmt: skip
    feed_url = serve_feed(httpserver, hub, [])
    hub.grant_lease_s = 3

    async def scenario() -> None:
        async with rig(settings, text_redis, rq_redis, feed_url) as r:
            await r.subscribed(hub)
            first_end = float(
                text_redis.hget(keys.websub_subscription(r.feed.feed_id), "lease_end")
            )
            await r.websub.tick()
            assert len(hub.requests) == 1  # most of the lease left
            hub.verified.clear()
            await asyncio.sleep(first_end - time.time() - 0.4)  # under a fifth (0.6 s) left
            await r.websub.tick()
            assert len(hub.requests) == 2
            renewal = hub.requests[1]
            assert renewal["hub.secret"] == hub.requests[0]["hub.secret"]
            assert await asyncio.to_thread(hub.verified.wait, 10)
            await r.websub.tick()
            await r.websub.tick()
            assert len(hub.requests) == 2  # once per lease
            sub_key = keys.websub_subscription(r.feed.feed_id)
            assert float(text_redis.hget(sub_key, "lease_end")) > first_end
            assert text_redis.zscore(keys.WEBSUB_LEASES, r.feed.feed_id) is not None

    asyncio.run(scenario())


def test_a_feed_that_left_the_list_is_unsubscribed(
    httpserver: HTTPServer, hub: Hub, settings: Settings, text_redis: redis.Redis,
    rq_redis: redis.Redis,
) -> None:  # fmt: skip
    feed_url = serve_feed(httpserver, hub, [])

    async def scenario() -> None:
        async with rig(settings, text_redis, rq_redis, feed_url) as r:
            await r.subscribed(hub)
            assert feed_url in hub.subscriptions
            hub.verified.clear()
            r.poller.register([])  # the feed left the list (as at the next start)
            assert await r.websub.forget_others([]) == 1
            assert await asyncio.to_thread(hub.verified.wait, 10)
            assert hub.requests[-1]["hub.mode"] == "unsubscribe"
            assert hub.verifications[-1].echoed and feed_url not in hub.subscriptions
            assert text_redis.exists(keys.websub_subscription(r.feed.feed_id)) == 0
            assert text_redis.zcard(keys.WEBSUB_LEASES) == 0

    asyncio.run(scenario())


def test_a_refusing_hub_is_not_asked_again_at_every_poll(
    httpserver: HTTPServer, hub: Hub, settings: Settings, text_redis: redis.Redis,
    rq_redis: redis.Redis,
) -> None:  # fmt: skip
    feed_url = serve_feed(httpserver, hub, [])
    hub.status = 400

    async def scenario() -> None:
        async with rig(settings, text_redis, rq_redis, feed_url) as r:
            for _ in range(2):
                text_redis.zadd(keys.FEEDS_DUE, {r.feed.feed_id: 0})
                await r.poller.poll_once()
                await r.websub.tick()
            assert len(hub.requests) == 1
            assert text_redis.exists(keys.websub_subscription(r.feed.feed_id)) == 0
            next_at = float(text_redis.hget(keys.feed_state(r.feed.feed_id), "next_poll_at"))
            assert next_at - time.time() <= 1.15 * settings.poll_interval_s

    asyncio.run(scenario())


def test_redis_down_answers_503_and_says_nothing_more(settings: Settings) -> None:
    """The hub retries a 503; the answer names no host, key or exception."""
    down = redis.Redis(
        host="127.0.0.1", port=free_port(), decode_responses=True, retry=Retry(NoBackoff(), 0)
    )
    settings = settings.with_overrides(websub_callback_url="https://ingest.example/websub")
    fetcher = Fetcher(settings)
    poller = Poller(settings, down, down, fetcher)
    websub = WebSub(settings, poller, fetcher)
    feed_id = Feed(url="https://x.example/rss").feed_id
    for method, query in (("POST", ""), ("GET", "hub.mode=subscribe&hub.challenge=c")):
        status, _, body = websub.handle(
            method, f"/websub/{feed_id}", query, {"content-length": "6"}, io.BytesIO(b"<rss/>").read
        )
        assert (status, body) == (503, b"unavailable, try again")
    assert websub.handle("GET", f"/websub/{feed_id}\n", "", {}, io.BytesIO().read)[0] == 404
    assert websub.handle("GET", "/websub/x/../" + feed_id, "", {}, io.BytesIO().read)[0] == 404
    down.close()


def test_only_https_hubs_are_given_a_secret(settings: Settings, text_redis: redis.Redis) -> None:
    from service.feeds import parse_feed

    public = settings.with_overrides(
        websub_callback_url="https://ingest.example/websub", allow_private_hosts=False
    )
    fetcher = Fetcher(public)
    websub = WebSub(public, Poller(public, text_redis, text_redis, fetcher), fetcher)
    plain, secure = Feed(url="https://x.example/a"), Feed(url="https://x.example/b")
    now = time.time()
    for feed, hub_url in ((plain, "http://hub.example/"), (secure, "https://hub.example/")):
        parsed = parse_feed(rss(hub_url, feed.url, [feed.url + "/1"]), {}, feed.url, 10)
        assert websub.after_poll(feed.feed_id, feed, parsed, now) == 1.0
    assert websub.after_poll(plain.feed_id, plain, None, now) == 1.0  # a 304: nothing to see
    assert websub._wanted == {secure.feed_id: ("https://hub.example/", secure.url)}
