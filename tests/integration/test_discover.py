"""Feed discovery against a real local site: declared links first, then common paths."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pytest_httpserver import HTTPServer

from core.fetch import Fetcher
from core.settings import Settings
from service.discover import discover_feeds, find_feed_links

RSS = (Path(__file__).resolve().parents[1] / "data" / "feeds" / "rss2.xml").read_bytes()
HTML_WITHOUT_LINKS = "<!doctype html><html><head><title>Site</title></head><body>Hi</body></html>"


def discover(settings: Settings, url: str) -> list[str]:
    async def go() -> list[str]:
        fetcher = Fetcher(settings)
        try:
            return await discover_feeds(fetcher, url, max_bytes=1_000_000)
        finally:
            await fetcher.aclose()

    return asyncio.run(go())


def test_declared_link_is_made_absolute(httpserver: HTTPServer, settings: Settings) -> None:
    page = """<html><head>
      <link rel="stylesheet" href="/style.css">
      <link rel="alternate" type="application/rss+xml" title="News" href="../feeds/news.xml">
      <link rel="Alternate" type="application/atom+xml; charset=utf-8" href="/atom">
      <link rel="alternate" type="application/rss+xml" href="../feeds/news.xml">
    </head><body></body></html>"""
    httpserver.expect_request("/section/page.html").respond_with_data(
        page, content_type="text/html"
    )
    found = discover(settings, httpserver.url_for("/section/page.html"))
    assert found == [httpserver.url_for("/feeds/news.xml"), httpserver.url_for("/atom")]
    # declared feeds are trusted: nothing was probed or fetched beyond the page
    assert [request.path for request, _ in httpserver.log] == ["/section/page.html"]


def test_common_path_found_by_probing(httpserver: HTTPServer, settings: Settings) -> None:
    httpserver.expect_request("/").respond_with_data(HTML_WITHOUT_LINKS, content_type="text/html")
    # a soft-404 site: /rss answers 200 with HTML, which must not count as a feed
    httpserver.expect_request("/rss").respond_with_data(
        HTML_WITHOUT_LINKS, content_type="text/html"
    )
    httpserver.expect_request("/feed.xml").respond_with_data(
        RSS, content_type="application/rss+xml"
    )
    found = discover(settings, httpserver.url_for("/"))
    assert found == [httpserver.url_for("/feed.xml")]


def test_nothing_found(httpserver: HTTPServer, settings: Settings) -> None:
    httpserver.expect_request("/").respond_with_data(HTML_WITHOUT_LINKS, content_type="text/html")
    assert discover(settings, httpserver.url_for("/")) == []


def test_a_feed_url_is_its_own_answer(httpserver: HTTPServer, settings: Settings) -> None:
    httpserver.expect_request("/rss").respond_with_data(RSS, content_type="application/rss+xml")
    assert discover(settings, httpserver.url_for("/rss")) == [httpserver.url_for("/rss")]


def test_find_feed_links_honours_base_and_skips_hostile_hrefs() -> None:
    page = b"""<html><head><base href="https://cdn.example/blog/">
      <link rel="alternate" type="application/feed+json" href="feed.json">
      <link rel="alternate" type="application/rss+xml" href="javascript:alert(1)">
      <link rel="alternate" type="text/html" href="/other-language">
      <link rel="alternate" type="application/rdf+xml" href="//mirror.example/rdf#x">
    </head></html>"""
    assert find_feed_links(page, "https://site.example/") == [
        "https://cdn.example/blog/feed.json",
        "https://mirror.example/rdf",
    ]
