"""The poller benchmark's closed loops: our HTTP layer and raw clients without the poller.

``--raw-seconds`` each, ``--concurrency`` in flight, conditional GETs with the ETags the
poller stored, no Redis inside: ``Fetcher.get`` on the same mix as the poller; then, on the
304 feeds only, plain ``httpx.AsyncClient`` on the aiohttp transport the Fetcher uses, plain
httpx on its default httpcore transport with a pool of ``--concurrency`` and of 8
(httpcore's pool bookkeeping grows with the pool size), and bare aiohttp (the floor).
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx
import redis
from httpx_aiohttp import AiohttpTransport
from poller_feeds import group
from poller_marks import Mark, Row, ServerLog, make_row

from core import keys
from core.errors import FetchError
from core.fetch import Fetcher
from core.settings import Settings
from service.poller import FEED_TYPES

SMALL_POOL = 8
FetchOne = Callable[[int], Awaitable[str]]
Client = httpx.AsyncClient | aiohttp.ClientSession | None


async def closed_loop(
    fetch_one: FetchOne,
    indices: list[int],
    concurrency: int,
    seconds: float,
    pids: dict[str, int | None],
) -> tuple[Mark, Mark]:
    """Workers take feeds round-robin as fast as they can; marks at start and deadline."""
    counts: Counter[str] = Counter()
    order = itertools.cycle(indices)
    start = Mark.take(pids, counts)
    deadline = time.monotonic() + seconds

    async def worker() -> None:
        while time.monotonic() < deadline:
            counts[await fetch_one(next(order))] += 1

    async def marker() -> Mark:
        await asyncio.sleep(max(0.0, deadline - time.monotonic()))
        return Mark.take(pids, counts)

    workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
    end = await marker()
    await asyncio.gather(*workers)
    return start, end


async def every_feed_once(
    fetch_one: FetchOne,
    indices: list[int],
    concurrency: int,
    timeout: float,
    pids: dict[str, int | None],
) -> tuple[Mark, Mark, bool]:
    """Each feed once, ``concurrency`` in flight, capped at ``timeout`` s: the warm burst's
    own procedure without Redis or parsing. A closed loop of a few seconds is no measure of
    a burst on this mix: the slow feeds' four hosts serve 16 polls/s (8 connections each, 2 s
    a poll), so over a long window every client settles where the slots waiting on them
    fill up, whatever its own speed. Marks at start and end; whether every feed was done."""  # fmt: skip
    counts: Counter[str] = Counter()
    pending = iter(indices)

    async def worker() -> None:
        for i in pending:
            counts[await fetch_one(i)] += 1

    start = Mark.take(pids, counts)
    workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
    done, _ = await asyncio.wait(workers, timeout=timeout)
    end = Mark.take(pids, counts)
    for task in workers:
        task.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    return start, end, len(done) == len(workers)


@dataclass
class Clients:
    """Conditional GETs of feed i by each client kind, keeping the ETags up to date."""

    urls: list[str]
    etags: dict[int, str]
    fetcher: Fetcher
    settings: Settings

    def headers(self, i: int) -> dict[str, str]:
        return {"If-None-Match": self.etags[i]} if i in self.etags else {}

    def remember(self, i: int, status: int, etag: str | None) -> str:
        if status == 200 and etag:
            self.etags[i] = etag
        return str(status)

    def httpx_client(self, pool: int, aiohttp_wire: bool) -> httpx.AsyncClient:
        transport = None
        if aiohttp_wire:
            transport = AiohttpTransport(
                client=lambda: aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=pool, limit_per_host=8),
                    auto_decompress=False,
                )
            )
        return httpx.AsyncClient(
            transport=transport,
            timeout=self.fetcher.client.timeout,
            limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool),
            headers={"User-Agent": self.settings.user_agent, "Accept-Encoding": "gzip, deflate"},
        )

    def httpx_loop(self, client: httpx.AsyncClient) -> FetchOne:
        async def one(i: int) -> str:
            try:
                response = await client.get(self.urls[i], headers=self.headers(i))
            except httpx.HTTPError as exc:
                return type(exc).__name__
            return self.remember(i, response.status_code, response.headers.get("etag"))

        return one

    def aiohttp_loop(self, session: aiohttp.ClientSession) -> FetchOne:
        async def one(i: int) -> str:
            try:
                async with session.get(self.urls[i], headers=self.headers(i)) as response:
                    await response.read()
            except aiohttp.ClientError as exc:
                return type(exc).__name__
            return self.remember(i, response.status, response.headers.get("etag"))

        return one

    def fetcher_loop(self, _: Any) -> FetchOne:
        async def one(i: int) -> str:
            try:
                result = await self.fetcher.get(
                    self.urls[i], max_bytes=self.settings.max_feed_bytes,
                    headers=self.headers(i), accept_types=FEED_TYPES,
                )  # fmt: skip
            except FetchError as exc:
                return exc.kind
            return self.remember(i, result.status, result.headers.get("etag"))

        return one


def stored_etags(text_redis: redis.Redis, feed_ids: list[str]) -> dict[int, str]:
    pipe = text_redis.pipeline(transaction=False)
    for feed_id in feed_ids:
        pipe.hget(keys.feed_state(feed_id), "etag")
    return {i: e for i, e in enumerate(pipe.execute()) if e}


def variants(
    clients: Clients, c: int, n: int
) -> list[tuple[str, Callable[[], Client], Callable[[Any], FetchOne], list[int]]]:
    mix = list(range(n))
    random.Random(3).shuffle(mix)
    fast = [i for i in mix if group(i) == "conditional"]
    return [
        (f"Fetcher.get only, same mix, {c} in flight", lambda: None, clients.fetcher_loop, mix),
        (f"raw httpx on aiohttp (our wire), 304 feeds only, {c} in flight",
         lambda: clients.httpx_client(c, aiohttp_wire=True), clients.httpx_loop, fast),
        (f"raw httpx on httpcore (default), 304 feeds only, pool {c}",
         lambda: clients.httpx_client(c, aiohttp_wire=False), clients.httpx_loop, fast),
        (f"raw httpx on httpcore (default), 304 feeds only, pool {SMALL_POOL}",
         lambda: clients.httpx_client(SMALL_POOL, aiohttp_wire=False), clients.httpx_loop, fast),
        (f"bare aiohttp, 304 feeds only, {c} in flight",
         lambda: aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=c)),
         clients.aiohttp_loop, fast),
    ]  # fmt: skip


async def fetch_burst(
    clients: Clients, args: Any, n: int, pids: dict[str, int | None], server_log: ServerLog
) -> Row:
    """``Fetcher.get`` over every feed once in a random order: the warm burst's yardstick."""
    name = f"Fetcher.get burst: every feed once, same mix, {args.concurrency} in flight"
    print(f"{name} (cap {args.burst_timeout:.0f} s) ...", flush=True)
    mix = list(range(n))
    random.Random(4).shuffle(mix)
    a, b, finished = await every_feed_once(
        clients.fetcher_loop(None), mix, args.concurrency, args.burst_timeout, pids
    )
    server_log.fetch()
    row = make_row(name, a, b, len(server_log.window(a.wall, b.wall)))
    row.connections_opened = server_log.connections(a.wall, b.wall)
    row.extra = {"finished": finished, "capped_at_s": args.burst_timeout}
    return row


async def raw_loops(
    clients: Clients, args: Any, n: int, pids: dict[str, int | None], server_log: ServerLog
) -> list[Row]:
    """Every closed-loop variant in turn; one row each."""
    rows = []
    c = args.concurrency
    for name, make_client, make_loop, indices in variants(clients, c, n):
        print(f"{name} (closed loop): {args.raw_seconds:.0f} s ...", flush=True)
        client = make_client()
        in_flight = SMALL_POOL if name.endswith(f"pool {SMALL_POOL}") else c
        try:
            a, b = await closed_loop(make_loop(client), indices, in_flight, args.raw_seconds, pids)
        finally:
            if isinstance(client, httpx.AsyncClient):
                await client.aclose()
            elif client is not None:
                await client.close()
        server_log.fetch()
        row = make_row(name, a, b, len(server_log.window(a.wall, b.wall)))
        row.connections_opened = server_log.connections(a.wall, b.wall)
        rows.append(row)
    return rows
