"""A local news site that publishes no feed, only sitemaps: a Google News sitemap of the
demo articles (some listed at an AMP address whose canonical is another, one listed twice),
a sitemap index with gzipped date-archive children, and robots.txt ``Sitemap:`` lines."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from service.demo import SITE_DIR
from tests.httpd import QuietHandler, serve_handler

PAGES = sorted(p.name for p in (SITE_DIR / "articles").glob("*.html"))
_BODIES = {name: (SITE_DIR / "articles" / name).read_bytes() for name in PAGES}
NS = "http://www.sitemaps.org/schemas/sitemap/0.9"
NEWS = "http://www.google.com/schemas/sitemap-news/0.9"
DAY = 86400


def w3c(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class SitemapSite:
    """``/news-sitemap.xml``: the 10 demo pages of the last hours (odd ones at
    ``/amp/<page>?utm_source=sitemap``, canonical ``/news/<page>``; the first page also at
    its AMP address), and one 5-day-old entry. ``/sitemap_index.xml``: the news sitemap
    and ``archive_days`` children ``/archive/<day>.xml.gz`` of ``per_day`` entries each."""

    def __init__(self, archive_days: int = 0, per_day: int = 0, now: float | None = None) -> None:
        self.now = now or time.time()
        self.archive_days = archive_days
        self.per_day = per_day
        self.base = ""
        self.extra: list[str] = []  # more news entries, added by a test
        self.hits: dict[str, int] = {}
        self.lock = threading.Lock()

    def news_locs(self) -> list[tuple[str, float]]:
        locs = []
        for i, page in enumerate(PAGES):
            path = f"/amp/{page}?utm_source=sitemap" if i % 2 else f"/news/{page}"
            locs.append((path, self.now - 600 * (i + 1)))
        locs.append((f"/amp/{PAGES[0]}", self.now - 300))  # the same article again
        locs.append(("/news/old-story.html", self.now - 5 * DAY))
        locs += [(path, self.now - 60) for path in self.extra]
        return locs

    def news_sitemap(self) -> bytes:
        urls = "".join(
            f"<url><loc>{self.base}{path.replace('&', '&amp;')}</loc><news:news>"
            "<news:publication><news:name>Local</news:name><news:language>en</news:language>"
            f"</news:publication><news:publication_date>{w3c(when)}</news:publication_date>"
            f"<news:title>{path}</news:title></news:news></url>"
            for path, when in self.news_locs()
        )
        return f'<urlset xmlns="{NS}" xmlns:news="{NEWS}">{urls}</urlset>'.encode()

    def archive_day(self, day: int) -> float:
        return self.now - (day + 3) * DAY

    def archive_paths(self, day: int) -> list[str]:
        return [f"/arch/{day}/{n}/{PAGES[n % len(PAGES)]}" for n in range(self.per_day)]

    def archive(self, day: int) -> bytes:
        when = self.archive_day(day)
        urls = "".join(
            f"<url><loc>{self.base}{path}</loc><lastmod>{w3c(when)}</lastmod></url>"
            for path in self.archive_paths(day)
        )
        return gzip.compress(f'<urlset xmlns="{NS}">{urls}</urlset>'.encode(), mtime=0)

    def index(self) -> bytes:
        children = f"<sitemap><loc>{self.base}/news-sitemap.xml</loc><lastmod>{w3c(self.now)}</lastmod></sitemap>"
        children += "".join(
            f"<sitemap><loc>{self.base}/archive/{day}.xml.gz</loc>"
            f"<lastmod>{w3c(self.archive_day(day))}</lastmod></sitemap>"
            for day in range(self.archive_days)
        )
        return f'<sitemapindex xmlns="{NS}">{children}</sitemapindex>'.encode()

    def respond(self, path: str) -> tuple[int, str, bytes]:
        with self.lock:
            self.hits[path.split("?")[0]] = self.hits.get(path.split("?")[0], 0) + 1
        if path == "/robots.txt":
            text = f"User-agent: *\nAllow: /\nSitemap: {self.base}/sitemap_index.xml\n"
            text += f"Sitemap: {self.base}/news-sitemap.xml\n"
            return 200, "text/plain", text.encode()
        if path == "/news-sitemap.xml":
            return 200, "application/xml", self.news_sitemap()
        if path == "/sitemap_index.xml":
            return 200, "application/xml", self.index()
        if path.startswith("/archive/"):
            return 200, "application/x-gzip", self.archive(int(path.split("/")[2].split(".")[0]))
        page = path.split("?")[0].rsplit("/", 1)[-1]
        if page in _BODIES and path.startswith(("/news/", "/amp/", "/arch/")):
            canonical = path.split("?")[0].replace("/amp/", "/news/")
            body = _BODIES[page].replace(
                f"{{{{BASE}}}}/articles/{page}".encode(), f"{self.base}{canonical}".encode()
            )
            return 200, "text/html", body.replace(b"{{BASE}}", self.base.encode())
        return 404, "text/html", b"<html><body>not found</body></html>"


@contextmanager
def serve_sitemaps(site: SitemapSite) -> Iterator[SitemapSite]:
    """Serve ``site`` with ETags: a conditional GET of an unchanged document gets 304."""

    class Handler(QuietHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            status, ctype, body = site.respond(self.path)
            etag = f'"{hash(body) & 0xFFFFFFFF:x}"'
            if status == 200 and self.headers.get("If-None-Match") == etag:
                status, body = 304, b""
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("ETag", etag)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with serve_handler(Handler) as base:
        site.base = f"{base}"
        yield site
