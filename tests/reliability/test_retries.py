"""Retries in the real world: pages whose canonical URL differs from the feed link, faults
between a claim and the work it guards, enqueues that fail while Redis blips."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
import yaml
from pytest_httpserver import HTTPServer
from rq.job import Job
from werkzeug import Request, Response

from core import keys
from core.claims import ArticleClaims, AsyncArticleClaims
from core.metrics import FEED_BODY_UNCHANGED
from core.models import Article, ArticleJob, TagResult
from core.queues import JSONSerializer
from core.settings import Settings
from core.urls import article_id_for, canonicalize_url
from service import poller as poller_module
from service.demo import SITE_DIR
from service.feedlist import load_feeds
from service.poller import poll_feeds_once
from tests.reliability.conftest import Recorder
from workers.context import WorkerContext, activated
from workers.corpus import Corpus
from workers.events import build_event
from workers.jobs import extract_batch
from workers.runner import run_worker
from workers.stream import Emitter

STORY = (SITE_DIR / "articles" / "tariff-truce-extended.html").read_bytes()
STORY_URL = b"{{BASE}}/articles/tariff-truce-extended.html"


@pytest.fixture
def amp_site() -> Iterator[HTTPServer]:
    """/amp/news/truce serves a page whose canonical URL is /news/truce."""
    with HTTPServer() as server:
        page = STORY.replace(STORY_URL, server.url_for("/news/truce").encode())
        for path in ("/amp/news/truce", "/news/truce", "/feedproxy/truce"):
            server.expect_request(path).respond_with_data(page, content_type="text/html")
        yield server


def job_for(link: str) -> ArticleJob:
    canonical = canonicalize_url(link)
    return ArticleJob(
        article_id=article_id_for(canonical), url=link, canonical_url=canonical,
        feed_url="http://feed.example/rss", feed_title="Feed", title="Truce",
        published_at=None, discovered_at="2026-11-30T00:00:00Z",
    )  # fmt: skip


@pytest.mark.scenario(
    "18.1 retried extract, canonical differs from the link",
    "a page at /amp/… whose canonical is /news/…; the corpus write fails once after the "
    "canonical claim (a disk error; a killed worker or a job timeout lands at the same "
    "point); the job is retried; then another feed item's link to the same page",
    "the retry stores and emits the article exactly once; the other item is a duplicate",
)  # fmt: skip
def test_retried_extract_keeps_an_article_whose_canonical_differs(
    record: Recorder, amp_site: HTTPServer, settings: Settings, text_redis: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    job = job_for(amp_site.url_for("/amp/news/truce"))
    canonical_id = article_id_for(canonicalize_url(amp_site.url_for("/news/truce")))
    assert job.article_id != canonical_id
    real_write = Corpus.write_many
    failures = iter([OSError(28, "No space left on device")])

    def write_failing_once(self: Corpus, documents: list[tuple[str, str, dict]]) -> list[Path]:
        for error in failures:
            raise error
        return real_write(self, documents)

    monkeypatch.setattr(Corpus, "write_many", write_failing_once)
    with activated(WorkerContext.build(settings)) as context:
        with pytest.raises(OSError):
            extract_batch(context, [job.to_dict()])
        retried = extract_batch(context, [job.to_dict()])
        other = extract_batch(context, [job_for(amp_site.url_for("/feedproxy/truce")).to_dict()])
    run_worker(settings, keys.TAG_QUEUE, burst=True)
    files = sorted(settings.corpus_dir.glob("*.txt"))
    entries = text_redis.xrange(settings.stream_name)
    record.observed(
        f"retry: {retried}; other link: {other}; {len(files)} file(s), "
        f"{len(entries)} event(s) for {sorted({f['article_id'] for _, f in entries})}"
    )
    assert retried.get("extracted") == 1
    assert other.get("duplicate") == 1 and not other.get("extracted")
    assert [f.name.split("_")[1] for f in files] == [f"{canonical_id}.txt"]
    assert [f["article_id"] for _, f in entries] == [canonical_id]
    # The canonical claim is durable now, still owned by the article first queued.
    assert text_redis.get(keys.seen_url(canonical_id)) == f"seen:{job.article_id}"


class EtagFeed:
    """A feed that honours If-None-Match (unless ``ignores_etag``), and counts the full
    (200) answers it gave. Its links carry a tracking parameter: each article's canonical
    URL differs from its feed link."""

    def __init__(self, server: HTTPServer, items: int, *, ignores_etag: bool = False) -> None:
        self.items = [server.url_for(f"/news/{i}") + "?utm_source=rss" for i in range(items)]
        self.full_answers = 0
        self.ignores_etag = ignores_etag

    def __call__(self, request: Request) -> Response:
        if request.headers.get("If-None-Match") == '"v1"' and not self.ignores_etag:
            return Response(status=304, headers={"ETag": '"v1"'})
        self.full_answers += 1
        body = "".join(f"<item><title>{u}</title><link>{u}</link></item>" for u in self.items)
        return Response(
            f"<rss version='2.0'><channel><title>t</title>{body}</channel></rss>",
            content_type="application/rss+xml", headers={"ETag": '"v1"'},
        )  # fmt: skip


@pytest.mark.scenario(
    "18.3 enqueue fails while Redis blips",
    "the enqueue of a poll's new items fails and so does the release of their claims; the "
    "feed (with an ETag) is polled again while the claims live, and after they expire",
    "no poll advances the ETag past items that were never queued; every item is queued",
)  # fmt: skip
def test_failed_enqueue_never_hides_items_behind_an_etag(
    record: Recorder, settings: Settings, text_redis: redis.Redis, rq_redis: redis.Redis,
    monkeypatch: pytest.MonkeyPatch, httpserver: HTTPServer, tmp_path: Path,
) -> None:  # fmt: skip
    feed = EtagFeed(httpserver, items=3)
    httpserver.expect_request("/rss").respond_with_handler(feed)
    settings.feeds_file.write_text(yaml.safe_dump({"feeds": [{"url": httpserver.url_for("/rss")}]}))
    feeds = load_feeds(settings.feeds_file)
    real_enqueue, real_release = poller_module.enqueue_extracts_async, AsyncArticleClaims.release

    async def blip(*_args: object, **_kwargs: object) -> None:
        raise redis.ConnectionError("Connection reset by peer")

    monkeypatch.setattr(poller_module, "enqueue_extracts_async", blip)
    monkeypatch.setattr(AsyncArticleClaims, "release", blip)
    t0 = 1_800_000_000.0
    failed = poll_feeds_once(settings, text_redis, rq_redis, feeds, clock=lambda: t0)
    monkeypatch.setattr(poller_module, "enqueue_extracts_async", real_enqueue)
    monkeypatch.setattr(AsyncArticleClaims, "release", real_release)
    # The feed's lease (120 s) runs out long before the claims (600 s) do.
    during = poll_feeds_once(settings, text_redis, rq_redis, feeds, clock=lambda: t0 + 200)
    for key in text_redis.scan_iter(keys.seen_url("*")):
        if str(text_redis.get(key)).startswith("claimed"):
            text_redis.delete(key)  # what their TTL does ten minutes later
    after = poll_feeds_once(
        settings, text_redis, rq_redis, feeds, clock=lambda: t0 + 30 * 86400, register=False
    )
    queued = rq_redis.llen(f"rq:queue:{keys.EXTRACT_QUEUE}")
    record.observed(
        f"failed poll: {failed.new_items} queued; poll while claimed: {during.new_items} queued; after expiry: {after.new_items} queued; "
        f"full answers from the feed: {feed.full_answers}; extract jobs waiting: {queued}"
    )
    assert failed.new_items == during.new_items == 0
    assert after.new_items == 3
    assert queued == 1  # one job of three articles
    assert queued_urls(rq_redis) == {u: canonicalize_url(u) for u in feed.items}


def queued_urls(rq_redis: redis.Redis) -> dict[str, str]:
    """Feed link -> canonical URL of every article in the waiting extract jobs (read back
    as RQ's workers read them)."""
    out: dict[str, str] = {}
    for job_id in rq_redis.lrange(f"rq:queue:{keys.EXTRACT_QUEUE}", 0, -1):
        job = Job.fetch(job_id.decode(), connection=rq_redis, serializer=JSONSerializer)
        for article in job.args[0]:
            out[article["url"]] = article["canonical_url"]
    return out


@pytest.mark.scenario(
    "18.7 a feed that ignores conditional GET, with an article claimed elsewhere",
    "a feed answers 200 with the same body every time (links with a tracking parameter, so "
    "canonical URLs differ from them); one article is claimed by another owner that has "
    "not queued it yet; the feed is polled four times, the claim expiring after the second",
    "unsettled polls parse the body again; the expired claim's article is queued once; "
    "once all is settled the same body is not parsed again and nothing is queued twice",
)  # fmt: skip
def test_unchanged_body_is_parsed_again_until_its_items_are_settled(
    record: Recorder, settings: Settings, text_redis: redis.Redis, rq_redis: redis.Redis,
    httpserver: HTTPServer,
) -> None:  # fmt: skip
    feed = EtagFeed(httpserver, items=3, ignores_etag=True)
    httpserver.expect_request("/rss").respond_with_handler(feed)
    settings.feeds_file.write_text(yaml.safe_dump({"feeds": [{"url": httpserver.url_for("/rss")}]}))
    feeds = load_feeds(settings.feeds_file)
    held = article_id_for(canonicalize_url(feed.items[0]))
    ArticleClaims(text_redis, 600, settings.seen_ttl_s).claim([held], "poll:someone-else")
    skipped = []
    t0 = 1_800_000_000.0
    for n in range(4):
        if n == 2:
            text_redis.delete(keys.seen_url(held))  # what the claim's TTL does
        before = FEED_BODY_UNCHANGED._value.get()
        report = poll_feeds_once(
            settings, text_redis, rq_redis, feeds, clock=lambda n=n: t0 + n * 86400,
            register=n == 0,
        )  # fmt: skip
        skipped.append((report.new_items, FEED_BODY_UNCHANGED._value.get() - before))
    urls = queued_urls(rq_redis)
    record.observed(f"(queued, parse skipped) per poll: {skipped}; full answers "
                    f"{feed.full_answers}; queued {len(urls)} articles")  # fmt: skip
    assert skipped == [(2, 0), (0, 0), (1, 0), (0, 1)]
    assert urls == {u: canonicalize_url(u) for u in feed.items}
    assert all(link != canonical for link, canonical in urls.items())


@pytest.mark.scenario(
    "18.4 a worker's clock 8 days fast",
    "a consumer group that has read nothing; three events emitted by a worker whose clock "
    "is 8 days ahead (retention 7 days)",
    "nothing trimmed: the group reads all three, including the one just added",
)  # fmt: skip
def test_a_fast_clock_never_trims_unread_entries(
    record: Recorder, settings: Settings, text_redis: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time as time_module

    stream = settings.stream_name
    text_redis.xgroup_create(stream, "slow-team", id="0", mkstream=True)
    real_time = time_module.time
    monkeypatch.setattr(time_module, "time", lambda: real_time() + 8 * 86400)
    emitter = Emitter(text_redis, settings)
    tags = TagResult(us_china_trade=True, score=0.9, topics=("tariffs",), entities=(),
                     evidence=(), taxonomy_version="t")  # fmt: skip
    for i in range(3):
        article = Article(
            article_id=f"{i:016x}", url=f"https://x.example/{i}",
            canonical_url=f"https://x.example/{i}", feed_url="https://x.example/rss",
            feed_title="X", title="T", text="T\n\nbody", authors=(), published_at=None,
            fetched_at="2026-11-30T00:00:00Z", discovered_at="2026-11-30T00:00:00Z",
            language="en", site_name=None,
        )  # fmt: skip
        emitter.emit(build_event(article, tags, now=datetime.now(UTC)))
    read = text_redis.xreadgroup("slow-team", "c1", {stream: ">"}, count=10)
    delivered = [fields["article_id"] for _, entries in read for _, fields in entries]
    record.observed(f"stream length {text_redis.xlen(stream)}; the group read {len(delivered)}")
    assert len(delivered) == 3


# Structures without a TTL, each with the bound that keeps it finite (README "Redis keys").
BOUNDED_WITHOUT_TTL = {
    "tradewire:feeds:due": "one member per configured feed",
    "tradewire:feeds:defs": "one field per configured feed",
    "tradewire:feed:<id>": "one hash per configured feed, deleted with the feed",
    "tradewire:corpus:seq": "one counter",
    "tradewire:websub:leases": "one member per configured feed with a live subscription",
    "tradewire:corpus:dirs": "one field per corpus directory workers write to",
    "tradewire:events": "the stream: stream_retention_s by age, stream_maxlen at most",
    "rq:queues": "RQ: one member per queue",
    "rq:queue:<name>": "RQ: jobs waiting (bounded by the work in hand)",
    "rq:workers": "RQ: live workers (members expire with their worker keys)",
    "rq:workers:<name>": "RQ: live workers of a queue",
    "rq:<registry>:<name>": "RQ: started/scheduled/failed registries (entries expire)",
    "rq:scheduler-lock:<name>": "RQ: one lock per queue",
}


def key_pattern(key: str) -> str:
    """A key with its variable part replaced, to group keys of one family."""
    for pattern, family in (
        (r"^tradewire:feed:[0-9a-f]+$", "tradewire:feed:<id>"),
        (r"^rq:queue:\w+$", "rq:queue:<name>"),
        (r"^rq:workers:\w+$", "rq:workers:<name>"),
        (r"^rq:(wip|scheduled|failed|finished|deferred|canceled|started):\w+$",
         "rq:<registry>:<name>"),
        (r"^rq:scheduler-lock:\w+$", "rq:scheduler-lock:<name>"),
    ):  # fmt: skip
        if re.match(pattern, key):
            return family
    return re.sub(r"[0-9a-f]{16}\b|\d{3,}", "<id>", key)


@pytest.mark.scenario(
    "18.6 every key has a lifetime",
    "the demo site through the whole pipeline, a second poll, a retag; then every key in "
    "Redis listed with its TTL",
    "each key family has a TTL, or is a structure with a documented bound",
)  # fmt: skip
def test_every_key_has_a_ttl_or_a_bound(
    record: Recorder, demo_site: str, settings: Settings, text_redis: redis.Redis,
    rq_redis: redis.Redis,
) -> None:  # fmt: skip
    from service.demo import demo_feeds
    from workers.replay import retag
    from workers.tagging import load_taxonomy

    settings.feeds_file.write_text(yaml.safe_dump({"feeds": demo_feeds(demo_site)}))
    feeds = load_feeds(settings.feeds_file)
    poll_feeds_once(settings, text_redis, rq_redis, feeds)
    run_worker(settings, keys.EXTRACT_QUEUE, burst=True)
    run_worker(settings, keys.TAG_QUEUE, burst=True)
    poll_feeds_once(settings, text_redis, rq_redis, feeds, register=False)
    retag(settings, text_redis, load_taxonomy(settings.taxonomy_file), now=datetime.now(UTC))
    families: dict[str, int] = {}
    unbounded: set[str] = set()
    for key in text_redis.scan_iter(count=1000):
        family = key_pattern(key)
        families[family] = families.get(family, 0) + 1
        if text_redis.ttl(key) < 0 and family not in BOUNDED_WITHOUT_TTL:
            unbounded.add(family)
    record.observed(
        f"{sum(families.values())} keys in {len(families)} families; without TTL or bound: "
        f"{sorted(unbounded) or 'none'}"
    )
    assert unbounded == set()


@pytest.mark.scenario(
    "18.5 created once, after every TTL",
    "the pipeline with 1-second TTLs on the emitted, seen and verdict keys; after they "
    "expire, a retag with the same taxonomy and the same feed items polled again",
    "no article gets a second article.created: the corpus remembers what was announced",
)  # fmt: skip
def test_article_created_never_repeats_after_the_ttls(
    record: Recorder, amp_site: HTTPServer, settings: Settings, text_redis: redis.Redis,
    rq_redis: redis.Redis,
) -> None:  # fmt: skip
    import time

    from workers.replay import retag
    from workers.tagging import load_taxonomy

    short = settings.with_overrides(emitted_ttl_s=1, seen_ttl_s=1)
    link = amp_site.url_for("/news/truce")
    amp_site.expect_request("/rss").respond_with_data(
        f"<rss version='2.0'><channel><title>t</title><item><title>Truce</title>"
        f"<link>{link}</link></item></channel></rss>",
        content_type="application/rss+xml",
    )
    short.feeds_file.write_text(yaml.safe_dump({"feeds": [{"url": amp_site.url_for("/rss")}]}))
    feeds = load_feeds(short.feeds_file)

    def run_once(at: float) -> None:
        poll_feeds_once(short, text_redis, rq_redis, feeds, clock=lambda: at)
        run_worker(short, keys.EXTRACT_QUEUE, burst=True)
        run_worker(short, keys.TAG_QUEUE, burst=True)

    run_once(time.time())
    time.sleep(2.5)  # every short key has expired
    report = retag(short, text_redis, load_taxonomy(short.taxonomy_file), now=datetime.now(UTC))
    run_once(time.time() + 30 * 86400)  # the feed still carries the item
    created = [
        f["article_id"]
        for _, f in text_redis.xrange(short.stream_name)
        if f["event_type"] == "article.created"
    ]
    record.observed(f"retag: {report}; article.created events: {len(created)} for {set(created)}")
    assert len(created) == 1
