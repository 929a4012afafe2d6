"""robots.txt against a real local server: rules, caching, and RFC 9309 failure handling."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from pytest_httpserver import HTTPServer

from core.errors import PermanentFetchError, TransientFetchError
from core.fetch import Fetcher
from core.settings import Settings
from workers.robots import (
    RobotsCache,
    origin_of,
    product_token,
    robots_txt_url,
    rules_for_failure,
    rules_from_body,
)

ROBOTS = """# ours
User-agent: tradewire
Disallow: /private

User-agent: *
Disallow: /
"""


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def ask(settings: Settings, cache: RobotsCache, *urls: str) -> list[bool]:
    async def go() -> list[bool]:
        fetcher = Fetcher(settings)
        try:
            return [await cache.allowed(fetcher, url, settings.user_agent) for url in urls]
        finally:
            await fetcher.aclose()

    return asyncio.run(go())


def robots_requests(httpserver: HTTPServer) -> int:
    return sum(1 for request, _ in httpserver.log if request.path == "/robots.txt")


def test_rules_for_our_product_token(httpserver: HTTPServer, settings: Settings) -> None:
    """Our group applies (not the catch-all that disallows everything), and is cached."""
    httpserver.expect_request("/robots.txt").respond_with_data(ROBOTS, content_type="text/plain")
    cache = RobotsCache()
    private, news = httpserver.url_for("/private/x"), httpserver.url_for("/news/x")
    assert ask(settings, cache, private, news) == [False, True]
    assert robots_requests(httpserver) == 1
    assert ask(settings, cache, news, private) == [True, False]
    assert len(httpserver.log) == 1


def test_rules_expire_after_ttl(httpserver: HTTPServer, settings: Settings) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data(ROBOTS)
    clock = FakeClock()
    cache = RobotsCache(ttl_s=3600, clock=clock)
    url = httpserver.url_for("/news/x")
    ask(settings, cache, url)
    clock.now += 3599
    ask(settings, cache, url)
    assert robots_requests(httpserver) == 1
    clock.now += 2
    ask(settings, cache, url)
    assert robots_requests(httpserver) == 2


@pytest.mark.parametrize("status", [404, 410])
def test_missing_robots_allows_all(httpserver: HTTPServer, settings: Settings, status: int) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data("gone", status=status)
    assert ask(settings, RobotsCache(), httpserver.url_for("/private/x")) == [True]


@pytest.mark.parametrize("status", [401, 403])
def test_forbidden_robots_disallows_all(
    httpserver: HTTPServer, settings: Settings, status: int
) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data("no", status=status)
    assert ask(settings, RobotsCache(), httpserver.url_for("/news/x")) == [False]


def test_server_error_disallows_and_is_rechecked_soon(
    httpserver: HTTPServer, settings: Settings
) -> None:
    """RFC 9309 §2.3.1.4: unreachable means complete disallow, but only for error_ttl_s."""
    httpserver.expect_oneshot_request("/robots.txt").respond_with_data("down", status=503)
    httpserver.expect_request("/robots.txt").respond_with_data(ROBOTS)
    clock = FakeClock()
    cache = RobotsCache(ttl_s=3600, error_ttl_s=300, clock=clock)
    news = httpserver.url_for("/news/x")
    assert ask(settings, cache, news) == [False]
    clock.now += 299
    assert ask(settings, cache, news) == [False]
    assert robots_requests(httpserver) == 1
    clock.now += 2
    assert ask(settings, cache, news) == [True]
    assert robots_requests(httpserver) == 2


def test_outage_keeps_the_last_copy_read(httpserver: HTTPServer, settings: Settings) -> None:
    """RFC 9309 §2.4: while the file is unreachable, a cached copy may stand in."""
    httpserver.expect_oneshot_request("/robots.txt").respond_with_data(ROBOTS)
    httpserver.expect_request("/robots.txt").respond_with_data("down", status=500)
    clock = FakeClock()
    cache = RobotsCache(ttl_s=3600, error_ttl_s=300, clock=clock)
    private, news = httpserver.url_for("/private/x"), httpserver.url_for("/news/x")
    assert ask(settings, cache, private, news) == [False, True]
    clock.now += 3601
    assert ask(settings, cache, private, news) == [False, True]
    clock.now += 301
    assert ask(settings, cache, news) == [True]
    assert robots_requests(httpserver) == 3


def test_concurrent_questions_share_one_fetch(httpserver: HTTPServer, settings: Settings) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data(ROBOTS)
    cache = RobotsCache()

    async def go() -> list[bool]:
        fetcher = Fetcher(settings)
        try:
            urls = [httpserver.url_for(f"/news/{i}") for i in range(10)]
            return await asyncio.gather(
                *(cache.allowed(fetcher, url, settings.user_agent) for url in urls)
            )
        finally:
            await fetcher.aclose()

    assert asyncio.run(go()) == [True] * 10
    assert robots_requests(httpserver) == 1


def test_oversized_robots_disallows(httpserver: HTTPServer, settings: Settings) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data("#" * (600 * 1024))
    assert ask(settings, RobotsCache(), httpserver.url_for("/news/x")) == [False]


def test_non_http_url_is_never_allowed(settings: Settings) -> None:
    assert ask(settings, RobotsCache(), "file:///etc/passwd") == [False]


# The decisions themselves, without HTTP.


def test_product_token_and_origin() -> None:
    assert product_token("tradewire/0.1 (+https://github.com/tradewire/tradewire)") == "tradewire"
    assert product_token("") == ""
    assert origin_of("http://A.test/x?y") == origin_of("http://a.test:80/z") == "http://a.test:80"
    assert robots_txt_url("https://a.test:443") == "https://a.test/robots.txt"
    assert robots_txt_url("http://[::1]:8080") == "http://[::1]:8080/robots.txt"


@pytest.mark.parametrize(
    ("make_error", "verdict", "unreachable"),
    [
        (lambda: PermanentFetchError("u", "http_404"), "allow_all", False),
        (lambda: PermanentFetchError("u", "http_401"), "disallow_all", False),
        (lambda: PermanentFetchError("u", "too_many_redirects"), "allow_all", False),
        (lambda: PermanentFetchError("u", "too_large"), "disallow_all", False),
        (lambda: TransientFetchError("u", "http_503"), "disallow_all", True),
        (lambda: TransientFetchError("u", "http_429"), "disallow_all", True),
        (lambda: TransientFetchError("u", "timeout"), "disallow_all", True),
        (lambda: TransientFetchError("u", "connect"), "disallow_all", True),
    ],
)
def test_failure_verdicts(
    make_error: Callable[[], Exception], verdict: str, unreachable: bool
) -> None:
    error = make_error()
    assert isinstance(error, PermanentFetchError | TransientFetchError)
    rules = rules_for_failure(error)
    assert (rules.verdict, rules.unreachable) == (verdict, unreachable)


def test_rules_from_body_with_bom_and_latin1() -> None:
    body = b"\xef\xbb\xbfUser-agent: *\n# caf\xe9 (Latin-1)\nDisallow: /x\n"
    rules = rules_from_body(body)
    assert not rules.permits("https://a.test/x/1", "tradewire/0.1")
    assert rules.permits("https://a.test/y", "tradewire/0.1")
