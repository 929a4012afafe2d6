"""The poller benchmark's helper processes: the feed server and the ``next_poll_at``
snapshotter (see ``poller_bench.py``). Both are started with the "spawn" method and exit by
themselves when this process is gone or after ``CHILD_MAX_LIFETIME_S``."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import functools
import json
import os
import time
from array import array
from pathlib import Path
from typing import Any

import redis
from harness import free_port

from core import keys

SLOW_S = 2.0
CHANGE_PERIOD_S = 60.0  # the always-200 feeds gain one item this often
SNAPSHOT_PERIOD_S = 0.5
CHILD_MAX_LIFETIME_S = 900.0  # helpers exit by themselves even if this process is killed


def group(i: int) -> str:
    r = i % 100
    if r < 80:
        return "conditional"
    if r < 92:
        return "always_200"
    if r < 96:
        return "slow"
    return "failing"


# --------------------------------------------------------------------------- feed server


@functools.lru_cache(maxsize=4096)
def pub_date(j: int) -> str:
    """Story j of every feed is dated one hour after story j - 1."""
    return email.utils.formatdate(1_760_000_000 + 3600 * j, usegmt=True)


def content_version(i: int, now: float, epoch: float) -> int:
    """Which version of feed i is served at ``now`` (only always-200 feeds change)."""
    if group(i) != "always_200":
        return 0
    return int((now - epoch) / CHANGE_PERIOD_S + (i * 0.618034) % 1.0)


def item_link(i: int, j: int) -> str:
    return f"http://news{i % 97}.example/f{i}/story-{j}"


def item_guid(i: int, j: int) -> str:
    return f"f{i}-s{j}"


def rss(i: int, version: int) -> bytes:
    items = "".join(
        f"<item><title>Feed {i} story {j}: tariffs and trade talks</title>"
        f"<link>{item_link(i, j)}</link>"
        f'<guid isPermaLink="false">{item_guid(i, j)}</guid><pubDate>{pub_date(j)}</pubDate>'
        f"<description>Summary of story {j} of feed {i}.</description></item>"
        for j in range(version + 4, version - 1, -1)
    )
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>Bench feed {i}</title><link>http://news{i % 97}.example/</link>"
        f"<description>poller benchmark</description>{items}</channel></rss>"
    ).encode()


def sitemap_link(i: int, j: int) -> str:
    return f"http://news{i % 97}.example/s{i}/story-{j}"


def news_sitemap(i: int, version: int, epoch: float) -> bytes:
    """Sitemap i: the same five stories a feed of its group would list, as a Google News
    sitemap, dated within the last day (sitemap sources take two days)."""
    urls = "".join(
        f"<url><loc>{sitemap_link(i, j)}</loc><news:news><news:publication>"
        "<news:name>Bench</news:name><news:language>en</news:language></news:publication>"
        f"<news:publication_date>{_w3c(epoch - 86400 + 60 * j)}</news:publication_date>"
        f"<news:title>Sitemap {i} story {j}: tariffs and trade talks</news:title>"
        "</news:news></url>"
        for j in range(version + 4, version - 1, -1)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
        f'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">{urls}</urlset>'
    ).encode()


@functools.lru_cache(maxsize=4096)
def _w3c(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


class FeedServer:
    """Minimal HTTP/1.1 keep-alive server for /feed/<i>, plus /_log and /_quit."""

    def __init__(self, slow_s: float, epoch: float) -> None:
        self.slow_s = slow_s
        self.epoch = epoch
        self.log_t = array("d")
        self.log_i = array("l")
        self.log_s = array("h")  # status answered; 0 = connection closed without answer
        self.accepted = array("d")  # when each connection was accepted
        self.stop = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted.append(time.time())
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                arrived = time.time()
                sp1 = head.find(b" ")
                path = head[sp1 + 1 : head.find(b" ", sp1 + 1)]
                if path.startswith((b"/feed/", b"/sitemap/")):
                    sitemap = path.startswith(b"/sitemap/")
                    number = int(path[9:] if sitemap else path[6:])
                    if not await self.feed(number, head, arrived, writer, sitemap=sitemap):
                        return
                else:
                    self.control(path, writer)
                    await writer.drain()
                    return
        except ConnectionError:
            return
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def feed(
        self, i: int, head: bytes, arrived: float, writer: asyncio.StreamWriter,
        sitemap: bool = False,
    ) -> bool:  # fmt: skip
        """Feed (or sitemap) i, as its group behaves."""
        r = i % 100
        inm = b""
        at = head.lower().find(b"\r\nif-none-match:")
        if at >= 0:
            inm = head[at + 16 : head.find(b"\r\n", at + 2)].strip()
        if r >= 96:
            status = 500 if r < 98 else 0
            self._log(arrived, i, status)
            if status == 0:
                return False
            writer.write(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n")
            return True
        version = content_version(i, arrived, self.epoch)
        etag = b'"v%d"' % version
        status = 304 if inm == etag and not 80 <= r < 92 else 200
        self._log(arrived, i, status)
        if 92 <= r < 96:
            await asyncio.sleep(self.slow_s)
        if status == 304:
            writer.write(b"HTTP/1.1 304 Not Modified\r\nETag: " + etag + b"\r\n\r\n")
        else:
            body = news_sitemap(i, version, self.epoch) if sitemap else rss(i, version)
            ctype = b"application/xml" if sitemap else b"application/rss+xml"
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: " + ctype + b"; charset=utf-8\r\n"
                b"ETag: " + etag + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body
            )
        if writer.transport.get_write_buffer_size() > 65536:
            await writer.drain()
        return True

    def _log(self, arrived: float, i: int, status: int) -> None:
        self.log_t.append(arrived)
        self.log_i.append(i)
        self.log_s.append(status)

    def control(self, path: bytes, writer: asyncio.StreamWriter) -> None:
        if path.startswith(b"/_log"):
            since = int(path.partition(b"since=")[2] or 0)
            payload = {
                "t": self.log_t[since:].tolist(),
                "i": self.log_i[since:].tolist(),
                "s": self.log_s[since:].tolist(),
                "accepted": self.accepted.tolist(),
            }
            body = json.dumps(payload).encode()
            status = b"200 OK"
        elif path == b"/_quit":
            self.stop.set()
            body, status = b"bye", b"200 OK"
        else:
            body, status = b"", b"404 Not Found"
        writer.write(
            b"HTTP/1.1 " + status + b"\r\nConnection: close\r\nContent-Type: application/json"
            b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        )


def feed_host(i: int, hosts: int) -> str:
    """Feed i lives on one of ``hosts`` loopback addresses (127.0.1.1, 127.0.1.2, ...): to
    the poller they are distinct publishers, each with its own connection limit."""
    return f"127.0.1.{1 + i % hosts}"


async def _serve(conn: Any, parent_pid: int, slow_s: float, epoch: float, hosts: int) -> None:
    server = FeedServer(slow_s, epoch)
    port = free_port()
    addresses = ["127.0.0.1", *sorted({feed_host(i, hosts) for i in range(hosts)})]
    listener = await asyncio.start_server(
        server.handle, addresses, port, backlog=4096, limit=1 << 16
    )
    conn.send(port)
    conn.close()
    deadline = time.monotonic() + CHILD_MAX_LIFETIME_S
    async with listener:
        while not server.stop.is_set():
            if os.getppid() != parent_pid or time.monotonic() > deadline:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.stop.wait(), 1.0)


def serve_feeds(conn: Any, parent_pid: int, slow_s: float, epoch: float, hosts: int) -> None:
    """Entry point of the feed-server process."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(conn, parent_pid, slow_s, epoch, hosts))


# --------------------------------------------------------------------------- snapshotter

_NEXT_POLL_AT = """
local out = {}
for i, key in ipairs(KEYS) do
  out[i] = redis.call('HGET', key, 'next_poll_at') or ''
end
return out
"""


def snapshot_next_poll_at(
    redis_url: str, feed_ids: list[str], out_path: str, stop: Any, ready: Any, parent_pid: int
) -> None:
    """Entry point of the snapshotter process: every distinct next_poll_at of every feed."""
    with contextlib.suppress(KeyboardInterrupt):
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        script = client.register_script(_NEXT_POLL_AT)
        state_keys = [keys.feed_state(f) for f in feed_ids]
        seen: list[set[str]] = [set() for _ in feed_ids]
        count = 0
        deadline = time.monotonic() + CHILD_MAX_LIFETIME_S
        while True:
            for values, value in zip(seen, script(keys=state_keys), strict=True):
                if value:
                    values.add(value)
            count += 1
            ready.set()
            if stop.wait(SNAPSHOT_PERIOD_S) or os.getppid() != parent_pid:
                break
            if time.monotonic() > deadline:
                break
        for values, value in zip(seen, script(keys=state_keys), strict=True):
            if value:
                values.add(value)
        data = {"snapshots": count + 1, "values": [sorted(map(float, v)) for v in seen]}
        Path(out_path).write_text(json.dumps(data))
        client.close()
