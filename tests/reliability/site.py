"""A local news site for fault tests: many distinct articles, feeds listing them, and
delays on demand. Copies of the demo pages, each with its own canonical URL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from service.demo import SITE_DIR
from tests.httpd import QuietHandler, serve_handler

PAGES = sorted(p.name for p in (SITE_DIR / "articles").glob("*.html"))
_BODIES = {name: (SITE_DIR / "articles" / name).read_bytes() for name in PAGES}


class Site:
    """``copies`` x 10 articles at /c<k>/<page>, in ``feeds`` RSS feeds at /feed/<i>.xml."""

    def __init__(self, copies: int, feeds: int, delay_s: float = 0.0) -> None:
        self.copies = copies
        self.feeds = feeds
        self.delay_s = delay_s
        self.base = ""
        self.hits = 0

    @property
    def article_paths(self) -> list[str]:
        return [f"/c{k}/{page}" for k in range(self.copies) for page in PAGES]

    def feed_urls(self) -> list[str]:
        return [f"{self.base}/feed/{i}.xml" for i in range(self.feeds)]

    def respond(self, path: str) -> tuple[int, str, bytes]:
        if path.startswith("/feed/"):
            index = int(path.rsplit("/", 1)[1].split(".")[0])
            items = "".join(
                f"<item><title>{p}</title><link>{self.base}{p}</link><guid>{p}</guid></item>"
                for n, p in enumerate(self.article_paths)
                if n % self.feeds == index
            )
            body = f"<rss version='2.0'><channel><title>feed {index}</title>{items}</channel></rss>"
            return 200, "application/rss+xml", body.encode()
        parts = path.split("/")
        if len(parts) == 3 and parts[2] in _BODIES:
            self.hits += 1
            if self.delay_s:
                time.sleep(self.delay_s)
            page = _BODIES[parts[2]].replace(
                f"{{{{BASE}}}}/articles/{parts[2]}".encode(), f"{self.base}{path}".encode()
            )
            return 200, "text/html", page.replace(b"{{BASE}}", self.base.encode())
        return 404, "text/plain", b"not found"


@contextmanager
def serve(site: Site) -> Iterator[Site]:
    class Handler(QuietHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            status, ctype, body = site.respond(self.path)
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with serve_handler(Handler) as base:
        site.base = f"{base}"
        yield site
