"""``tradewire demo`` and its local news site: the whole pipeline offline, in one command.

The site (``service/demo_site/``) is invented content: feeds and article pages with the
chrome real pages carry. Feeds hold ``{{BASE}}`` where the server's own address goes.
"""

from __future__ import annotations

import json
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TextIO, cast

import yaml

from core import keys
from core.connection import connect
from core.settings import Settings
from service.feedlist import load_feeds
from service.poller import poll_feeds_once
from workers.runner import run_worker

SITE_DIR = Path(__file__).parent / "demo_site"
_TYPES = {".xml": "application/rss+xml", ".atom": "application/atom+xml", ".html": "text/html"}


class _SiteHandler(SimpleHTTPRequestHandler):
    def do_GET(self) -> None:
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        body = path.read_bytes()
        if path.suffix in (".xml", ".atom", ".html"):
            host, port = cast(tuple[str, int], self.server.server_address)[:2]
            body = body.replace(b"{{BASE}}", f"http://{host}:{port}".encode())
        self.send_response(200)
        self.send_header("Content-Type", _TYPES.get(path.suffix, "application/octet-stream"))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@contextmanager
def serve_site(directory: Path = SITE_DIR) -> Iterator[str]:
    """Serve the site on 127.0.0.1 (a free port); yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_SiteHandler, directory=str(directory)))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def demo_feeds(base: str) -> list[dict[str, str]]:
    return [
        {"url": f"{base}/feeds/world.xml", "title": "Harbour Ledger — World"},
        {"url": f"{base}/feeds/business.atom", "title": "Harbour Ledger — Business"},
    ]


def run_demo(settings: Settings, out: TextIO, workdir: Path | None = None) -> int:
    """Poll the demo site once, drain the queues with real workers, print the events."""
    with tempfile.TemporaryDirectory(prefix="tradewire-demo-") as tmp:
        root = workdir or Path(tmp)
        with serve_site() as base:
            feeds_file = root / "feeds.yaml"
            feeds_file.write_text(yaml.safe_dump({"feeds": demo_feeds(base)}), encoding="utf-8")
            demo = settings.with_overrides(
                feeds_file=feeds_file,
                corpus_dir=root / "corpus",
                allow_private_hosts=True,
                host_min_delay_s=0.0,  # our own local site: no one to be polite to
            )
            out.write(f"Serving the demo news site at {base}\n")
            return _pipeline(demo, out)


def _pipeline(settings: Settings, out: TextIO) -> int:
    text_redis = connect(settings, decode=True)
    rq_redis = connect(settings, decode=False)

    feeds = load_feeds(settings.feeds_file)
    queued = poll_feeds_once(settings, text_redis, rq_redis, feeds).new_items
    out.write(f"Polled 2 feeds: {queued} new articles queued\n")
    run_worker(settings, keys.EXTRACT_QUEUE, burst=True)
    run_worker(settings, keys.TAG_QUEUE, burst=True)
    entries = cast(list[tuple[str, dict[str, str]]], text_redis.xrange(settings.stream_name))
    out.write(f"{len(entries)} events on stream {settings.stream_name}:\n")
    for _entry_id, fields in entries:
        event = json.loads(fields["data"])
        tags = event["tags"]
        out.write(
            f"  {event['article_id']}  score={tags['score']:.2f}  "
            f"topics={','.join(tags['topics'])}  {event['title'][:70]}\n"
        )
    corpus = sorted(p.name for p in settings.corpus_dir.glob("*.txt"))
    out.write(f"{len(corpus)} cleaned articles in {settings.corpus_dir}\n")
    return 0
