"""WebSub push latency: from a hub's content notification to the article's event on the stream.

    .venv/bin/python benchmarks/websub_latency.py [--pushes 20] [--workers 1]

`tradewire run` (poller with WebSub, extract and tag workers, the health server serving
the callback) on a private redis-server, subscribed at the local test hub
(tests/websub_hub.py); a local site serves pages about US-China trade, one new URL per
push. Each push is signed (sha256), sent, and timed to its XADD (the stream entry id's
milliseconds). The first push is reported apart (cold worker: imports, first connection).
Polling is slowed (poll_interval_s 3600), so every article comes by push.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import harness
import redis
import yaml
from harness import ROOT, free_port, md_table, median, pct, private_redis

from service.demo import SITE_DIR
from tests.websub_hub import serve_hub

GOAL_S = 1.0
RELEVANT = ("tariff-truce-extended.html", "fentanyl-tariffs-cut.html",
            "geneva-talks-greer-he-lifeng.html", "nvidia-huawei-chip-export-controls.html",
            "soybean-purchases-stall.html")  # fmt: skip
log = harness.logger("websub")


def rss(hub: str, feed_url: str, links: list[str]) -> bytes:
    items = "".join(f"<item><title>{u}</title><link>{u}</link></item>" for u in links)
    return (
        "<rss version='2.0' xmlns:atom='http://www.w3.org/2005/Atom'><channel><title>Push</title>"
        f"<atom:link rel='hub' href='{hub}'/><atom:link rel='self' href='{feed_url}'/>"
        f"{items}</channel></rss>"
    ).encode()


@contextmanager
def site(hub_url: str) -> Iterator[str]:
    """/feed.xml (no items: articles come by push) and /p/<n>/<page>: a demo page whose
    canonical URL is its own path, with a paragraph of its own (n) so no two are alike."""
    base = ""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = self.path.split("/")
            if self.path == "/feed.xml":
                body, ctype = rss(hub_url, base + "/feed.xml", []), "application/rss+xml"
            elif len(parts) == 4 and parts[1] == "p" and parts[3] in RELEVANT:
                html = (SITE_DIR / "articles" / parts[3]).read_bytes()
                html = html.replace(f"{{{{BASE}}}}/articles/{parts[3]}".encode(),
                                    (base + self.path).encode())  # fmt: skip
                unique = f"<p>Dispatch {parts[2]}: reported from desk number {parts[2]}.</p>"
                body, ctype = (
                    html.replace(b"</article>", unique.encode() + b"</article>"),
                    "text/html",
                )
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield base
    finally:
        server.shutdown()


def run_env(tmp: Path, redis_url: str, feeds: Path, port: int, workers: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWIRE_")}
    env |= {
        "TRADEWIRE_CONFIG": str(ROOT / "config" / "settings.yaml"),
        "TRADEWIRE_REDIS_URL": redis_url, "TRADEWIRE_FEEDS_FILE": str(feeds),
        "TRADEWIRE_CORPUS_DIR": str(tmp / "corpus"), "TRADEWIRE_HEALTH_PORT": str(port),
        "TRADEWIRE_TAXONOMY_FILE": str(ROOT / "config" / "taxonomy.yaml"),
        "TRADEWIRE_ALLOW_PRIVATE_HOSTS": "1", "TRADEWIRE_HOST_MIN_DELAY_S": "0",
        "TRADEWIRE_RESPECT_ROBOTS_TXT": "0", "TRADEWIRE_WORKERS": str(workers),
        "TRADEWIRE_POLL_INTERVAL_S": "3600", "TRADEWIRE_LOG_LEVEL": "WARNING",
        "TRADEWIRE_WEBSUB_CALLBACK_URL": f"http://127.0.0.1:{port}/websub",
        "PYTHONPATH": str(ROOT),
    }  # fmt: skip
    return env


def measure(pushes: int, workers: int) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp_dir, serve_hub() as hub, site(hub.url) as base:
        tmp = Path(tmp_dir)
        with private_redis(tmp / "redis", appendonly=False) as server:
            feeds = tmp / "feeds.yaml"
            feed_url = base + "/feed.xml"
            feeds.write_text(yaml.safe_dump({"feeds": [{"url": feed_url}]}))
            env = run_env(tmp, server.url, feeds, free_port(), workers)
            with (tmp / "run.log").open("wb") as out:
                proc = subprocess.Popen([sys.executable, "-m", "service", "run"], env=env,
                                        cwd=tmp, stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
            client = redis.Redis.from_url(server.url, decode_responses=True)
            try:
                deadline = time.monotonic() + 60
                while feed_url not in hub.subscriptions and time.monotonic() < deadline:
                    time.sleep(0.2)
                if feed_url not in hub.subscriptions:
                    raise harness.BenchError(
                        "no subscription: " + (tmp / "run.log").read_text()[-2000:]
                    )
                time.sleep(2.0)  # workers up
                try:
                    return [push(hub, client, feed_url, f"{base}/p/{n}/{RELEVANT[n % len(RELEVANT)]}")
                            for n in range(pushes)]  # fmt: skip
                except harness.BenchError:
                    log((tmp / "run.log").read_text()[-4000:])
                    raise
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(60)
                client.close()


def push(hub: Any, client: redis.Redis, feed_url: str, link: str) -> float:
    time.sleep(0.3)
    started = time.time()
    answer = hub.publish(feed_url, rss(hub.url, feed_url, [link]))
    if answer.status_code != 202:
        raise harness.BenchError(f"push answered {answer.status_code}")
    try:
        read = client.xread({"tradewire:events": after(started)}, count=1, block=20_000)
    except redis.TimeoutError:
        read = []
    if not read:
        raise harness.BenchError(f"no event for {link} within 20 s")
    entry_id, fields = read[0][1][0]
    if json.loads(fields["data"])["url"] != link:
        raise harness.BenchError(f"unexpected event for {fields['article_id']}")
    return int(str(entry_id).split("-")[0]) / 1000 - started


def after(started: float) -> str:
    """The stream id just before ``started``: the event may be there before we ask."""
    return f"{int(started * 1000) - 1}-99999"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=20)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    latencies = measure(args.pushes + 1, args.workers)
    cold, warm = latencies[0], latencies[1:]
    p50, p90 = median(warm), pct(warm, 0.9)
    rows = [["push → XADD (warm workers)", f"{p50:.3f} s", f"{p90:.3f} s", f"{max(warm):.3f} s",
             str(len(warm))],
            ["first push (cold worker)", f"{cold:.3f} s", "—", "—", "1"]]  # fmt: skip
    print("\n".join(md_table(["measure", "p50", "p90", "max", "n"], rows)))
    met = p90 is not None and p90 < GOAL_S
    print(f"\nverdict: p90 push → event {p90:.3f} s, goal < {GOAL_S:.0f} s: {'met' if met else 'NOT met'}"
          f" (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")  # fmt: skip
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
