"""``tradewire demo`` and its local news site: the whole pipeline offline, in one command.

The site (``service/demo_site/``) is invented content: feeds and article pages with the
chrome real pages carry. Feeds hold ``{{BASE}}`` where the server's own address goes.
"""

from __future__ import annotations

import contextlib
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

from core import keys, queues
from core.connection import connect, describe
from core.settings import Settings
from service.embedded_redis import redis_server_binary
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


def demo_command(settings: Settings, keep: str | None, out: TextIO, err: TextIO) -> int:
    """``tradewire demo``: a private embedded Redis, or the one ``TRADEWIRE_REDIS_URL`` names,
    and a working folder that is deleted at exit unless ``keep`` ("" for a new folder, or
    the folder to use)."""
    from service import app

    with contextlib.ExitStack() as stack:
        if keep is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tradewire-demo-")))
        elif keep:
            root = Path(keep).resolve()
            root.mkdir(parents=True, exist_ok=True)
        else:
            root = Path(tempfile.mkdtemp(prefix="tradewire-demo-"))
        redis_dir = root / "redis"
        if settings.uses_embedded_redis:
            settings = settings.with_overrides(redis_embedded_dir=redis_dir)
        else:
            out.write(f"Using the Redis at {describe(settings)}\n")
        with app.redis_for(settings, embedded_allowed=True) as live:
            code = run_demo(live, out, root, err, keep=keep is not None)
        if keep is not None:
            _say_where_kept(root, not settings.uses_embedded_redis, out)
        return code


def _say_where_kept(root: Path, external_redis: bool, out: TextIO) -> None:
    out.write(f"\nKept in {root}: corpus/ (the cleaned articles), feeds.yaml")
    if external_redis:
        out.write(
            ".\nThe events stay in the Redis of TRADEWIRE_REDIS_URL; to read them again:\n"
            "  tradewire tail --from-start\n"
        )
        return
    port = 6390
    out.write(
        ", redis/ (the Redis data, append-only).\n"
        "To read the events again, start that Redis and tail it:\n"
        f"  {redis_server_binary()} --dir {root / 'redis'} --appendonly yes "
        f"--bind 127.0.0.1 --port {port} &\n"
        f"  TRADEWIRE_REDIS_URL=redis://127.0.0.1:{port}/0 tradewire tail --from-start\n"
    )


def run_demo(
    settings: Settings, out: TextIO, root: Path, err: TextIO, *, keep: bool = False
) -> int:
    """Poll the demo site once, drain the queues with real workers, print the events;
    1 (with the workers' errors on ``err``) when a job failed or nothing came out."""
    with serve_site() as base:
        feeds_file = root / "feeds.yaml"
        feeds_file.write_text(yaml.safe_dump({"feeds": demo_feeds(base)}), encoding="utf-8")
        demo = settings.with_overrides(
            feeds_file=feeds_file,
            corpus_dir=root / "corpus",
            allow_private_hosts=True,
            host_min_delay_s=0.0,  # our own local site: no one to be polite to
            # A retry would come 10 s after the demo exited: fail now, with the error shown.
            job_retries=0,
        )
        out.write(f"Serving the demo news site at {base}\n")
        return _pipeline(demo, out, err, keep=keep)


def _pipeline(settings: Settings, out: TextIO, err: TextIO, *, keep: bool) -> int:
    text_redis = connect(settings, decode=True)
    rq_redis = connect(settings, decode=False)
    # Failed jobs of an earlier run against the same Redis are not this run's failures.
    failed_before = {job["job_id"] for job in queues.failed_jobs(rq_redis)}

    feeds = load_feeds(settings.feeds_file)
    queued = poll_feeds_once(settings, text_redis, rq_redis, feeds).new_items
    out.write(f"Polled {len(feeds)} feeds: {queued} new articles queued\n")
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
    cleaned = len(list(settings.corpus_dir.glob("*.txt")))
    # The folder is named only when it outlives the demo.
    out.write(f"{cleaned} cleaned articles" + (f" in {settings.corpus_dir}\n" if keep else "\n"))
    failed = [job for job in queues.failed_jobs(rq_redis) if job["job_id"] not in failed_before]
    return _verdict(failed, queued, len(entries), cleaned, err)


def _verdict(
    failed: list[dict[str, Any]], queued: int, events: int, cleaned: int, err: TextIO
) -> int:
    """0 when the pipeline worked; else 1, with what went wrong on ``err``."""
    for job in failed:
        err.write(f"tradewire demo: job {job['job_id']} failed: {job['error'] or '(no error)'}\n")
    if not failed and events and cleaned:
        return 0
    if not queued:
        err.write(
            "tradewire demo: no new article was queued (the feeds failed, or an earlier "
            "demo on this Redis took them; see the log lines above)\n"
        )
    elif not failed:
        err.write(
            f"tradewire demo: {queued} articles queued but {events} events and {cleaned} "
            "cleaned articles came out (see the log lines above)\n"
        )
    err.write("tradewire demo: FAILED\n")
    return 1
