"""WebSub end to end: `tradewire run` (real poller, real extract and tag workers, the
private redis-server of the fixtures) subscribed at a local hub. A push brings an article
onto the stream while polling is slowed; a forged push brings nothing; the article pushed
under one link and then polled under its canonical URL is emitted once."""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from core import keys
from core.models import Feed
from service.demo import SITE_DIR
from tests.conftest import free_port
from tests.integration.test_websub import rss
from tests.processes import answers_200, run_env, start_run, wait_until
from tests.websub_hub import Hub, serve_hub

ARTICLES = SITE_DIR / "articles"


def page(name: str, canonical: str) -> bytes:
    body = (ARTICLES / name).read_bytes()
    return body.replace(f"{{{{BASE}}}}/articles/{name}".encode(), canonical.encode())


@pytest.fixture
def hub() -> Iterator[Hub]:
    with serve_hub() as running:
        yield running


@dataclasses.dataclass(frozen=True)
class Links:
    """The local site's pages: one story under an AMP link, its canonical URL and a
    feedproxy link; another story; and a page only a forged push names."""

    amp: str
    canonical: str
    proxied: str
    geneva: str
    forged: str


def serve_site(httpserver: HTTPServer, hub: Hub, feed_url: str) -> tuple[Links, list[str]]:
    """The feed (listing what the returned list holds when polled) and its pages."""
    listed: list[str] = []

    def feed(_: Request) -> Response:
        return Response(rss(hub.url, feed_url, listed), content_type="application/rss+xml")

    httpserver.expect_request("/feed.xml").respond_with_handler(feed)
    truce_paths = ("/amp/news/truce", "/news/truce", "/feedproxy/truce")
    links = Links(
        *(httpserver.url_for(p) for p in (*truce_paths, "/news/geneva", "/news/fentanyl"))
    )
    for path in truce_paths:
        truce = page("tariff-truce-extended.html", links.canonical)
        httpserver.expect_request(path).respond_with_data(truce, content_type="text/html")
    talks = page("geneva-talks-greer-he-lifeng.html", links.geneva)
    httpserver.expect_request("/news/geneva").respond_with_data(talks, content_type="text/html")
    fentanyl = page("fentanyl-tariffs-cut.html", links.forged)
    httpserver.expect_request("/news/fentanyl").respond_with_data(
        fentanyl, content_type="text/html"
    )
    return links, listed


def test_a_push_reaches_the_stream_with_polling_slowed(
    httpserver: HTTPServer, hub: Hub, redis_url: str, text_redis: redis.Redis, tmp_path: Path
) -> None:
    feed_url = httpserver.url_for("/feed.xml")
    links, listed = serve_site(httpserver, hub, feed_url)
    feeds_file = tmp_path / "feeds.yaml"
    feeds_file.write_text(yaml.safe_dump({"feeds": [{"url": feed_url}]}))
    port = free_port()
    env = run_env(
        tmp_path, feeds_file, redis_url=redis_url, health_port=str(port), workers="1",
        websub_callback_url=f"http://127.0.0.1:{port}/websub", websub_poll_factor="4",
        poll_interval_s="60", poll_min_interval_s="2", respect_robots_txt="0",
    )  # fmt: skip
    log = tmp_path / "run.log"
    proc = start_run(env, tmp_path, log)
    feed_id = Feed(url=feed_url).feed_id
    try:
        assert wait_until(lambda: feed_url in hub.subscriptions, 60), log.read_text()[-3000:]
        assert wait_until(lambda: ready(port), 60), log.read_text()[-3000:]
        assert_polling_slowed(text_redis, feed_id)
        assert_pushes_and_polls_emit_once(hub, text_redis, feed_url, links, listed, log)
        assert len(list((tmp_path / "corpus").glob("*.txt"))) == 2  # the forged one unfetched
        assert_websub_keys_bounded(text_redis)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(45)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    secret = hub.requests[0]["hub.secret"]
    assert secret not in log.read_text()

    # The feed leaves the list: the next start unsubscribes it at the hub.
    feeds_file.write_text(yaml.safe_dump({"feeds": []}))
    hub.verified.clear()
    second = start_run(env, tmp_path, log)
    try:
        assert wait_until(lambda: feed_url not in hub.subscriptions, 60), log.read_text()[-3000:]
        assert hub.requests[-1]["hub.mode"] == "unsubscribe" and hub.verifications[-1].echoed
        assert not list(text_redis.scan_iter(match="tradewire:websub:*"))
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(45) == 0


def assert_polling_slowed(text_redis: redis.Redis, feed_id: str) -> None:
    """A poll once the subscription is live schedules the next 4x later."""
    state_key = keys.feed_state(feed_id)
    polled_at = float(text_redis.hget(state_key, "last_polled_at") or 0)
    time.sleep(1.5)  # the websub task's view of live subscriptions is refreshed each second
    text_redis.zadd(keys.FEEDS_DUE, {feed_id: 0})
    assert wait_until(lambda: float(text_redis.hget(state_key, "last_polled_at")) > polled_at, 20)
    next_in = float(text_redis.hget(state_key, "next_poll_at")) - time.time()
    assert next_in >= 0.85 * 60 * 4, next_in


def assert_pushes_and_polls_emit_once(
    hub: Hub, text_redis: redis.Redis, feed_url: str, links: Links, listed: list[str],
    log: Path,
) -> None:  # fmt: skip
    """A forged push emits nothing; two signed pushes emit one event each; then polled,
    under the pushed link, the canonical URL (both known to the poller's claims) and a
    third link to the same page (queued; the worker finds its canonical URL taken): no
    second event."""
    stream = "tradewire:events"
    forged = rss(hub.url, feed_url, [links.forged])
    assert hub.publish(feed_url, forged, signature="wrong").status_code == 202
    assert text_redis.xlen(stream) == 0
    cold_s, event, last = push_and_time(hub, text_redis, feed_url, links.amp, "0-0")
    assert event["url"] == links.amp and event["canonical_url"] == links.canonical
    warm_s, event, _ = push_and_time(hub, text_redis, feed_url, links.geneva, last)  # worker warm
    assert event["url"] == links.geneva
    print(
        f"websub push -> event: {cold_s * 1000:.0f} ms (cold worker), {warm_s * 1000:.0f} ms (warm)"
    )
    listed[:] = [links.amp, links.canonical, links.proxied]
    text_redis.zadd(keys.FEEDS_DUE, {Feed(url=feed_url).feed_id: 0})
    assert wait_until(lambda: '"status": "duplicate"' in log.read_text(), 30), log.read_text()[
        -3000:
    ]
    created = [json.loads(f["data"]) for _, f in text_redis.xrange(stream)
               if f["event_type"] == "article.created"]  # fmt: skip
    assert sorted(e["canonical_url"] for e in created) == sorted([links.canonical, links.geneva])


def push_and_time(
    hub: Hub, text_redis: redis.Redis, feed_url: str, link: str, after: str
) -> tuple[float, dict[str, Any], str]:
    """Push ``link`` (signed); return the seconds to its XADD (the entry id's
    milliseconds), its event and its entry id. ``after``: the last entry id seen (the
    event may be on the stream before we ask)."""
    started = time.time()
    answer = hub.publish(feed_url, rss(hub.url, feed_url, [link]), signature="sha1")
    assert answer.status_code == 202
    read = text_redis.xread({"tradewire:events": after}, count=1, block=20_000)
    assert read
    [(_, [(entry_id, fields)])] = read
    return int(entry_id.split("-")[0]) / 1000 - started, json.loads(fields["data"]), entry_id


def ready(port: int) -> bool:
    return answers_200(f"http://127.0.0.1:{port}/readyz")


def assert_websub_keys_bounded(text_redis: redis.Redis) -> None:
    """The key audit's rule (tests/reliability/test_retries.py) for the WebSub keys: the
    subscription expires, the lease set is bounded (listed in BOUNDED_WITHOUT_TTL there)."""
    ttls = {key: text_redis.ttl(key) for key in text_redis.scan_iter(match="tradewire:websub:*")}
    assert set(ttls) == {
        keys.websub_subscription(Feed(url="x").feed_id)[:-16] + key[-16:]
        for key in ttls
        if ":sub:" in key
    } | {keys.WEBSUB_LEASES}
    assert all(ttl > 0 for key, ttl in ttls.items() if key != keys.WEBSUB_LEASES)
