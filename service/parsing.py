"""Feed parsing off the event loop: a small pool of worker processes with a deadline.

feedparser costs ~300 µs of CPU per item (and more for hostile input: its author regex is
quadratic). In a thread it holds the GIL and so the poller's event loop; in a process it
runs beside it, and a parse past its deadline (``parse_timeout_s`` per MiB of body, one
MiB's worth at least: a legitimate 50,000-item feed of 3.4 MiB takes ~16 s of CPU, a hostile
30 KB one as long) is ended by killing its worker (a new one replaces it), which no thread
allows. Bodies up to ``parse_inline_max_bytes`` are
parsed on the loop itself: sending them to a worker costs more than their parse (see
benchmarks/results/history.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import multiprocessing
import os
from collections.abc import Callable, Mapping
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import structlog

from core.settings import Settings
from service.feeds import ParsedFeed, parse_feed

log = structlog.get_logger("tradewire.parsing")

# parse(body, headers, feed_url, max_items): a module-level function (workers import it).
ParseFunction = Callable[[bytes, Mapping[str, str], str, int], ParsedFeed]


SPAWN_TIMEOUT_S = 60.0
# Linux's default pipe capacity, less room for the request's pickled headers.
PIPE_BUFFER_BYTES = 60 * 1024


class ParseTimeoutError(Exception):
    """The parse ran past its deadline; its worker was killed."""


def _serve(conn: Connection, parse: ParseFunction) -> None:
    """A worker's loop: one request, one answer, until its pipe closes. It says first that
    it is ready (its imports done), so a deadline never counts a worker's start."""
    with contextlib.suppress(AttributeError, OSError):  # Linux only; no privilege needed
        # A waking SCHED_BATCH task never preempts the one running: a worker woken by a
        # request took the core from the poller that sent it (the pipe write showed 3-5 ms
        # of wall per hand-off on a busy machine, and the event loop stalled as long). It
        # keeps its fair share of CPU; it just waits for the poller's next pause to run.
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    conn.send(("ready", None))
    while True:
        try:
            body, headers, url, max_items = conn.recv()
        except (EOFError, OSError):
            return
        try:
            answer: tuple[str, Any] = ("ok", parse(body, headers, url, max_items))
        except ValueError as exc:
            answer = ("not_a_feed", str(exc))
        except Exception as exc:  # reported to the poller, which logs it
            answer = ("crash", f"{type(exc).__name__}: {exc}")
        conn.send(answer)


def _settle(ready: asyncio.Future[None]) -> None:
    if not ready.done():
        ready.set_result(None)


@dataclasses.dataclass
class _Worker:
    process: BaseProcess
    conn: Connection


class FeedParsers:
    """Up to ``workers`` parse processes, started when first needed, one parse each at a
    time. ``parse`` raises ``ValueError`` for a body that is no feed, ``ParseTimeoutError``
    past the deadline."""

    def __init__(self, settings: Settings, parse: ParseFunction = parse_feed) -> None:
        self.size = settings.parse_workers or os.cpu_count() or 1
        self.timeout_s = settings.parse_timeout_s
        self.inline_max_bytes = settings.parse_inline_max_bytes
        self._parse = parse
        # forkserver: a fork of a clean process that has imported feedparser once (not of
        # the poller, whose threads may hold locks), each start then a quick fork.
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(["service.feeds"])
        self._idle: list[_Worker] = []
        self._free: asyncio.Semaphore | None = None

    async def parse(
        self, body: bytes, headers: Mapping[str, str], url: str, max_items: int
    ) -> ParsedFeed:
        if len(body) <= self.inline_max_bytes:
            return self._parse(body, headers, url, max_items)
        if self._free is None:
            self._free = asyncio.Semaphore(self.size)
        async with self._free:
            worker = self._idle.pop() if self._idle else await asyncio.to_thread(self._spawn)
            try:
                deadline = self.timeout_s * max(1.0, len(body) / 2**20)
                request = (body, dict(headers), url, max_items)
                kind, value = await self._ask(worker, request, deadline)
            except BaseException:
                # Timed out or cancelled: the worker may still be busy; it is not reused.
                await asyncio.to_thread(self._kill, worker)
                raise
            self._idle.append(worker)
        if kind == "ok":
            parsed: ParsedFeed = value
            return parsed
        if kind == "not_a_feed":
            raise ValueError(value)
        raise RuntimeError(f"feed parse failed in its worker: {value}")

    async def _ask(
        self, worker: _Worker, request: tuple[Any, ...], deadline: float
    ) -> tuple[str, Any]:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        fd = worker.conn.fileno()
        loop.add_reader(fd, _settle, ready)
        try:
            if len(request[0]) < PIPE_BUFFER_BYTES:
                worker.conn.send(request)  # fits the pipe's buffer: returns at once
            else:
                # A bigger body is written as the worker reads it: off the event loop.
                await asyncio.to_thread(worker.conn.send, request)
            try:
                await asyncio.wait_for(ready, deadline)
            except TimeoutError:
                raise ParseTimeoutError(
                    f"feed parse took longer than {deadline:.3g} s; its worker was killed"
                ) from None
        finally:
            loop.remove_reader(fd)
        try:
            answer: tuple[str, Any] = worker.conn.recv()
        except (EOFError, OSError) as exc:  # the worker died (killed, out of memory)
            raise RuntimeError(f"feed parse worker died: {exc!r}") from None
        return answer

    def _spawn(self) -> _Worker:
        parent, child = self._context.Pipe()
        process = self._context.Process(
            target=_serve, args=(child, self._parse), name="tradewire-parse", daemon=True
        )
        process.start()
        child.close()
        worker = _Worker(process, parent)
        if not parent.poll(SPAWN_TIMEOUT_S) or parent.recv() != ("ready", None):
            self._kill(worker)
            raise RuntimeError("feed parse worker did not start")
        return worker

    @staticmethod
    def _kill(worker: _Worker) -> None:
        worker.process.kill()
        worker.process.join(5)
        worker.conn.close()

    async def aclose(self) -> None:
        """End every idle worker (busy ones are killed by the parse that holds them)."""
        idle, self._idle = self._idle, []
        self._free = None  # bound to this event loop; the next poll may run on another
        for worker in idle:
            with contextlib.suppress(OSError):
                worker.conn.close()  # the worker's recv ends: it exits
        for worker in idle:
            await asyncio.to_thread(worker.process.join, 5)
            if worker.process.is_alive():
                await asyncio.to_thread(self._kill, worker)
