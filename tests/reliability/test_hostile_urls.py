"""Hostile URLs: a malformed link or canonical costs that item only, a site cannot claim
another site's article through a shared public suffix, and no address that embeds a private
IPv4 address is fetched."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest
import redis
import structlog
import yaml
from pytest_httpserver import HTTPServer
from structlog.testing import capture_logs

from core import keys, queues
from core.errors import PermanentFetchError
from core.fetch import Fetcher, system_resolver
from core.models import Feed
from core.settings import Settings
from core.urls import article_id_for, canonicalize_url, domain_of, is_web_url, same_site
from service.demo import SITE_DIR
from tests.integration.test_pipeline import run_pipeline
from tests.integration.test_poller import Clock, poll
from tests.reliability.conftest import Recorder
from tests.unit.test_urls import HOSTILE_URLS
from workers import context

BAD_LINKS = [
    "https://x.example:99999/a",  # port out of range
    "http://[::1/b",  # unbalanced IPv6 bracket
    "http://[zz::1]/c",  # a bracketed host that is no address
    "http://./d",  # no host at all
]


def _page(name: str, canonical: str) -> bytes:
    body = (SITE_DIR / "articles" / name).read_bytes()
    return body.replace(f"{{{{BASE}}}}/articles/{name}".encode(), canonical.encode())


def _rss(links: list[str]) -> str:
    items = "".join(f"<item><title>{n}</title><link>{u}</link></item>" for n, u in enumerate(links))
    return f"<rss version='2.0'><channel><title>t</title>{items}</channel></rss>"


def _events(text_redis: redis.Redis, settings: Settings) -> list[dict[str, object]]:
    return [json.loads(f["data"]) for _, f in text_redis.xrange(settings.stream_name)]


@pytest.mark.scenario(
    "18.2 malformed item URLs in a feed", "a feed whose items link to :99999, an unbalanced "
    "IPv6 bracket, a non-address in brackets and an empty host, beside two good items",
    "the bad items are skipped and counted with a logged reason; the feed is a 200 and the "
    "good items are queued",
)  # fmt: skip
def test_malformed_item_urls_cost_only_their_items(
    record: Recorder,
    httpserver: HTTPServer,
    settings: Settings,
    text_redis: redis.Redis,
    rq_redis: redis.Redis,
) -> None:
    good = ["https://good.example/one", "https://good.example/two"]
    httpserver.expect_request("/rss").respond_with_data(
        _rss([BAD_LINKS[0], good[0], *BAD_LINKS[1:], good[1]]), content_type="application/rss+xml"
    )
    feed = Feed(url=httpserver.url_for("/rss"))
    with capture_logs() as logs:
        report = poll(settings, text_redis, rq_redis, [feed], Clock())
    state = text_redis.hgetall(keys.feed_state(feed.feed_id))
    urls = [
        a["url"] for job in queues.queue(rq_redis, keys.EXTRACT_QUEUE).jobs for a in job.args[0]
    ]
    skipped = [e for e in logs if e["event"] == "poller.links_skipped"]
    record.observed(
        f"status {state.get('last_status')}, {report.failed} failed, queued {urls}, "
        f"skipped log {[(e['skipped'], e.get('example')) for e in skipped]}"
    )
    assert state["last_status"] == "200" and state["consecutive_errors"] == "0"
    assert report.failed == 0 and sorted(urls) == good
    assert [e["skipped"] for e in skipped] == [len(BAD_LINKS)]
    assert skipped[0]["example"] == BAD_LINKS[0]


@pytest.mark.scenario(
    "18.2 malformed page canonicals in one extract batch", "three pages in one batch whose "
    "<link rel=canonical> is on the same host but :99999, an unbalanced IPv6 bracket, and "
    "a good one", "the bad canonicals are ignored (the link stays the article's URL), the "
    "batch completes, all three articles are emitted",
)  # fmt: skip
def test_malformed_page_canonicals_are_ignored(
    record: Recorder, settings: Settings, text_redis: redis.Redis, rq_redis: redis.Redis
) -> None:
    with HTTPServer() as server:
        host = server.url_for("/").split("//", 1)[1].split(":", 1)[0]
        canonicals = {
            "/a": f"http://{host}:99999/a",
            "/b": "http://[::1/b",
            "/c": server.url_for("/canonical-c"),
        }
        pages = [
            "fentanyl-tariffs-cut.html",
            "tariff-truce-extended.html",
            "soybean-purchases-stall.html",
        ]
        for (path, canonical), name in zip(canonicals.items(), pages, strict=True):
            server.expect_request(path).respond_with_data(
                _page(name, canonical), content_type="text/html"
            )
        links = [server.url_for(p) for p in canonicals]
        server.expect_request("/rss").respond_with_data(
            _rss(links), content_type="application/rss+xml"
        )
        settings.feeds_file.write_text(yaml.safe_dump({"feeds": [{"url": server.url_for("/rss")}]}))
        with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
            queued = run_pipeline(settings, text_redis, rq_redis)
    events = _events(text_redis, settings)
    got = sorted(str(e["canonical_url"]) for e in events)
    failed = [e for e in logs if e.get("log_level") == "error" or "failed" in str(e["event"])]
    record.observed(
        f"{queued} queued in one batch; emitted canonicals {got}; failures {len(failed)}"
    )
    assert queued == 3
    assert got == sorted([links[0], links[1], canonicals["/c"]])
    ignored = [e for e in logs if e["event"] == "article.canonical_ignored"]
    assert sorted(e["canonical"] for e in ignored) == sorted([canonicals["/a"], canonicals["/b"]])


@pytest.mark.scenario(
    "18.2 hostile URL table", f"{len(HOSTILE_URLS)} URLs: bad ports, IPv6 literals, IDNA, "
    "empty hosts, userinfo, NFKC delimiters, a 10 kB URL, through every function of core.urls",
    "each gets an answer (a canonical form or None), never an exception",
)  # fmt: skip
def test_hostile_url_table(record: Recorder) -> None:
    raised: list[str] = []
    usable = 0
    for url in HOSTILE_URLS:
        try:
            canonical = canonicalize_url(url)
            usable += canonical is not None
            assert is_web_url(url) == (canonical is not None)
            same_site(url, "https://x.example/")
            domain_of(url)
        except ValueError as exc:
            raised.append(f"{url[:40]!r}: {exc}")
    record.observed(
        f"{usable} usable, {len(HOSTILE_URLS) - usable - len(raised)} refused, raised {raised}"
    )
    assert raised == []


@pytest.fixture
def named_hosts(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Workers resolve every name to 127.0.0.1, so a local server plays many sites."""

    async def resolver(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    async def make_fetcher(settings: Settings) -> Fetcher:
        return Fetcher(settings, resolver=resolver)

    monkeypatch.setattr(context, "_make_fetcher", make_fetcher)
    yield


@pytest.mark.scenario(
    "18.8 a canonical on another site under a shared public suffix", "pages on evil.co.uk "
    "and a.github.io whose <link rel=canonical> names www.bbc.co.uk and b.github.io; a page "
    "on www.bbc.co.uk naming bbc.co.uk", "the foreign canonicals are ignored: each keeps its "
    "own article id and source_domain; the same-site one is followed",
)  # fmt: skip
def test_public_suffix_sites_keep_their_own_articles(
    record: Recorder,
    named_hosts: None,
    settings: Settings,
    text_redis: redis.Redis,
    rq_redis: redis.Redis,
) -> None:
    with HTTPServer() as server:
        port = server.port
        pages = {
            f"http://evil.co.uk:{port}/evil": (
                "fentanyl-tariffs-cut.html",
                f"http://www.bbc.co.uk:{port}/news/1",
            ),
            f"http://a.github.io:{port}/a": (
                "tariff-truce-extended.html",
                f"http://b.github.io:{port}/b",
            ),
            f"http://www.bbc.co.uk:{port}/amp/2": (
                "soybean-purchases-stall.html",
                f"http://bbc.co.uk:{port}/news/2",
            ),
        }
        for link, (name, canonical) in pages.items():
            path = "/" + link.split("/", 3)[3]
            server.expect_request(path).respond_with_data(
                _page(name, canonical), content_type="text/html"
            )
        server.expect_request("/rss").respond_with_data(
            _rss(list(pages)), content_type="application/rss+xml"
        )
        settings.feeds_file.write_text(yaml.safe_dump({"feeds": [{"url": server.url_for("/rss")}]}))
        queued = run_pipeline(settings, text_redis, rq_redis)
    events = {str(e["url"]): e for e in _events(text_redis, settings)}
    seen = {u: (e["article_id"], e["source_domain"]) for u, e in events.items()}
    record.observed(f"{queued} queued; (article_id, source_domain) by link: {seen}")
    evil, a_site, bbc = pages
    assert seen[evil] == (article_id_for(str(canonicalize_url(evil))), "evil.co.uk")
    assert seen[a_site] == (article_id_for(str(canonicalize_url(a_site))), "a.github.io")
    followed = f"http://bbc.co.uk:{port}/news/2"
    assert seen[bbc] == (article_id_for(followed), "bbc.co.uk")


EMBEDDED_PRIVATE = {
    "nat64-loopback.test": "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "nat64-metadata.test": "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "nat64-local-use.test": "64:ff9b:1::a00:1",  # RFC 8215 local-use prefix
    "sixtofour.test": "2002:a00:1::",  # 6to4 of 10.0.0.1
    "compatible.test": "::127.0.0.1",  # IPv4-compatible
    "mapped.test": "::ffff:10.0.0.1",  # IPv4-mapped
}
EMBEDDED_PUBLIC = {
    "nat64-public.test": "64:ff9b::5db8:d822",
    "sixtofour-public.test": "2002:5db8:d822::",
}


@pytest.mark.scenario(
    "18.12 IPv6 forms that embed a private IPv4", "names resolving to NAT64 64:ff9b::7f00:1 "
    "and ::a9fe:a9fe, NAT64 local-use, 6to4 2002:a00:1::, ::127.0.0.1 and ::ffff:10.0.0.1, "
    "and the same as IP literals, private hosts not allowed",
    "every one refused as blocked_address before a connection; NAT64/6to4 of a public IPv4 fetched",
)  # fmt: skip
def test_embedded_private_ipv4_is_refused(record: Recorder, settings: Settings) -> None:
    answers = {**EMBEDDED_PRIVATE, **EMBEDDED_PUBLIC}
    connected: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        return [answers[host]] if host in answers else await system_resolver(host, port)

    def handler(request: httpx.Request) -> httpx.Response:
        connected.append(str(request.url.host))
        return httpx.Response(304)  # no body: MockTransport's cannot be streamed again

    async def outcome(url: str) -> str:
        fetcher = Fetcher(settings.with_overrides(allow_private_hosts=False),
                          transport=httpx.MockTransport(handler), resolver=resolver)  # fmt: skip
        try:
            return str((await fetcher.get(url, max_bytes=100)).status)
        except PermanentFetchError as exc:
            return exc.kind
        finally:
            await fetcher.aclose()

    private = [f"http://{h}/" for h in EMBEDDED_PRIVATE] + [
        f"http://[{a}]/" for a in EMBEDDED_PRIVATE.values()
    ]
    public = [f"http://{h}/" for h in EMBEDDED_PUBLIC]
    kinds = {url: asyncio.run(outcome(url)) for url in private + public}
    record.observed(f"outcomes {kinds}; connections made to {sorted(set(connected))}")
    assert {kinds[u] for u in private} == {"blocked_address"}
    assert [kinds[u] for u in public] == ["304", "304"]
    assert sorted(set(connected)) == sorted(EMBEDDED_PUBLIC)
