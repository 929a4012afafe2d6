"""Finding a site's feeds: the page's own ``<link rel="alternate">`` tags, else common paths;
and its sitemaps, from robots.txt's ``Sitemap:`` lines (a news sitemap preferred).

The link tags are what the publisher declares, so they are trusted without fetching them.
Only when a page declares none are the usual feed paths probed, and a probe counts only if
its body parses as a feed: many sites answer every path with a 200 HTML page.
"""

from __future__ import annotations

from collections.abc import Mapping
from html.parser import HTMLParser
from urllib.parse import urldefrag, urljoin

from core.errors import FetchError
from core.fetch import Fetcher
from core.models import Feed
from core.urls import is_web_url, resolve_link
from service.feeds import parse_feed
from service.sitemaps import ParsedSitemap, looks_like_sitemap, parse_sitemap

FEED_LINK_TYPES = frozenset(
    {
        "application/rss+xml",
        "application/atom+xml",
        "application/rdf+xml",
        "application/feed+json",
    }
)

# Where WordPress, Ghost, Hugo, Jekyll and Blogger put feeds, tried against the site root.
COMMON_FEED_PATHS = (
    "/feed",
    "/rss",
    "/rss.xml",
    "/feed.xml",
    "/atom.xml",
    "/index.xml",
    "/feeds/posts/default",
)

# A probe only has to show that the body is a feed, not read all of it.
_PROBE_MAX_ITEMS = 20


class _FeedLinkCollector(HTMLParser):
    """Collects feed ``<link>`` hrefs and the document's ``<base href>``, in order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.base_href: str | None = None
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name.lower(): (value or "") for name, value in attrs}
        if tag == "base" and self.base_href is None and values.get("href"):
            self.base_href = values["href"].strip()
        if tag != "link" or not values.get("href"):
            return
        rels = values.get("rel", "").lower().split()
        media_type = values.get("type", "").split(";")[0].strip().lower()
        if "alternate" in rels and media_type in FEED_LINK_TYPES:
            self.hrefs.append(values["href"].strip())


def _decode(html: str | bytes) -> str:
    """URLs in markup are ASCII in practice, so a lossy UTF-8 decode finds them in any
    ASCII-compatible encoding without sniffing the charset."""
    return html if isinstance(html, str) else html.decode("utf-8", errors="replace")


def _dedupe(urls: list[str]) -> list[str]:
    return list(dict.fromkeys(urls))


def find_feed_links(html: str | bytes, base_url: str) -> list[str]:
    """Absolute http(s) URLs of the feeds a page declares, in page order, without repeats.

    hrefs resolve against the page's ``<base href>`` when it has one, else ``base_url``
    (pass the URL the page was finally served from, after redirects).
    """
    collector = _FeedLinkCollector()
    collector.feed(_decode(html))
    collector.close()
    base = (
        resolve_link(base_url, collector.base_href) if collector.base_href else None
    ) or base_url
    resolved = (resolve_link(base, href) for href in collector.hrefs)
    # One malformed href (an unbalanced IPv6 bracket) is skipped, not the page's other feeds.
    return _dedupe([urldefrag(url).url for url in resolved if url and is_web_url(url)])


def _is_feed(body: bytes, headers: Mapping[str, str], url: str) -> bool:
    try:
        parse_feed(body, headers, url, _PROBE_MAX_ITEMS)
    except ValueError:
        return False
    return True


async def discover_feeds(fetcher: Fetcher, site_url: str, max_bytes: int) -> list[str]:
    """Feed URLs for a site: the page's declared feeds, else the common paths that serve a
    real feed. If ``site_url`` is itself a feed, that is the answer.

    A failure fetching ``site_url`` itself propagates (the caller should say the site is
    unreachable); a failing probe just means no feed at that path.
    """
    page = await fetcher.get(site_url, max_bytes=max_bytes)
    if _is_feed(page.body, page.headers, page.url):
        return [page.url]
    declared = find_feed_links(page.body, page.url)
    if declared:
        return declared

    found: list[str] = []
    for path in COMMON_FEED_PATHS:
        candidate = urljoin(page.url, path)
        try:
            probe = await fetcher.get(candidate, max_bytes=max_bytes)
        except FetchError:
            continue
        if _is_feed(probe.body, probe.headers, probe.url):
            found.append(probe.url)
    return _dedupe(found)


# robots.txt lines read, and sitemaps it names that are fetched, at most.
_ROBOTS_MAX_SITEMAPS = 10
# Children of an index that are looked into for a news sitemap, at most.
_INDEX_PROBES = 3


def sitemaps_in_robots(robots_txt: bytes, robots_url: str) -> list[str]:
    """The absolute http(s) URLs of robots.txt's ``Sitemap:`` lines, in order, no repeats."""
    found: list[str] = []
    for line in robots_txt.decode("utf-8", errors="replace").splitlines():
        name, _, value = line.partition(":")
        if name.strip().lower() != "sitemap" or not value.strip():
            continue
        url = resolve_link(robots_url, value.split("#")[0].strip())
        if url and is_web_url(url):
            found.append(urldefrag(url).url)
    return _dedupe(found)[:_ROBOTS_MAX_SITEMAPS]


async def _read_sitemap(fetcher: Fetcher, url: str, max_bytes: int) -> ParsedSitemap | None:
    try:
        result = await fetcher.get(url, max_bytes=max_bytes)
        return parse_sitemap(result.body, max_bytes)
    except (FetchError, ValueError):
        return None


async def _news_children(fetcher: Fetcher, index: ParsedSitemap, max_bytes: int) -> list[str]:
    """Children of an index that are news sitemaps: those named like one are looked into."""
    named = [ref.loc for ref in index.children if "news" in ref.loc.lower()][:_INDEX_PROBES]
    found = []
    for url in named:
        child = await _read_sitemap(fetcher, url, max_bytes)
        if child is not None and child.is_news:
            found.append(url)
    return found


async def discover_sitemaps(fetcher: Fetcher, site_url: str, max_bytes: int) -> list[str]:
    """The sitemaps robots.txt names: the news sitemaps among them (or in an index they
    name) when there are any, else every one that really is a sitemap."""
    robots_url = urljoin(site_url, "/robots.txt")
    try:
        robots = await fetcher.get(robots_url, max_bytes=max_bytes)
    except FetchError:
        return []
    news: list[str] = []
    plain: list[str] = []
    for url in sitemaps_in_robots(robots.body, robots.url):
        parsed = await _read_sitemap(fetcher, url, max_bytes)
        if parsed is None:
            continue
        if parsed.is_news:
            news.append(url)
        elif parsed.is_index:
            news += await _news_children(fetcher, parsed, max_bytes)
        plain.append(url)
    return _dedupe(news) or plain


async def discover_sources(fetcher: Fetcher, site_url: str, max_bytes: int) -> list[Feed]:
    """`feeds discover`: the site's feeds (``discover_feeds``), then its sitemaps; a URL
    that is itself a sitemap is its own answer."""
    page = await fetcher.get(site_url, max_bytes=max_bytes)
    if looks_like_sitemap(page.body):
        return [Feed(url=page.url, kind="sitemap")]
    feeds = [Feed(url=url) for url in await discover_feeds(fetcher, site_url, max_bytes)]
    sitemaps = await discover_sitemaps(fetcher, site_url, max_bytes)
    return feeds + [Feed(url=url, kind="sitemap") for url in sitemaps]
