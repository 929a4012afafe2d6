"""`tradewire backfill SOURCE --since DATE`: queue what a site published since a date.

Walks a sitemap index's children changed since the date (oldest first) and, with
``--archive``, a site's date-archive sitemaps (a URL template with strftime codes, one
per day or month since the date); every entry dated since then (or undated) goes through
the poller's claim and enqueue path, so what was queued or emitted before is skipped and
canonicalisation, SSRF and politeness are the feed items' own. Sitemaps are fetched one
at a time, ``host_min_delay_s`` apart, and queueing pauses while the extract queue holds
more than ``MAX_BACKLOG`` jobs (the workers download at the per-host limits).

Progress is kept in Redis (``keys.backfill_state``, expiring): the sitemaps finished are
skipped when the same backfill runs again, after a crash or a kill -9. An index is always
read again (it is small and says which children are left).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis
import structlog
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from core import keys
from core.connection import connect
from core.errors import ConfigError, FetchError
from core.fetch import Fetcher
from core.models import Feed
from core.queues import queue_counts
from core.settings import Settings
from core.urls import is_web_url, short_hash
from service.feedlist import load_feeds
from service.poller import Poller
from service.sitemap_source import SITEMAP_TYPES, to_parsed_feed
from service.sitemaps import NotASitemapError, ParsedSitemap, SitemapEntry, parse_sitemap

log = structlog.get_logger("tradewire.backfill")

# A backfill's progress is kept this long after its last step.
BACKFILL_STATE_TTL_S = 7 * 24 * 3600
# Extract jobs waiting (of up to job_batch_size articles) before queueing pauses.
MAX_BACKLOG = 500
# Entries claimed and queued per round trip.
CHUNK = 100
# Indexes inside indexes are followed this deep.
MAX_DEPTH = 3
# Date-archive URLs generated at most (ten years of days).
MAX_ARCHIVE_URLS = 3660


@dataclasses.dataclass
class BackfillReport:
    indexes: int = 0  # sitemap indexes read
    sitemaps: int = 0  # urlsets read
    resumed: int = 0  # urlsets skipped, finished by an earlier run
    failed: int = 0  # sitemaps that could not be fetched or read
    entries: int = 0  # entries dated since the date (or undated)
    queued: int = 0
    unsettled: int = 0  # urlsets left unfinished: another owner's claims not yet durable


OnProgress = Callable[[BackfillReport, int], None]  # (report, sitemaps known so far)


def archive_urls(template: str, since: datetime, until: datetime) -> list[str]:
    """The template (``https://x.com/sitemap/%Y-%m-%d.xml``) for every day from ``since``
    to ``until``, without repeats (a monthly template gives one URL a month)."""
    urls: dict[str, None] = {}
    day = since
    while day <= until and len(urls) < MAX_ARCHIVE_URLS:
        urls[day.strftime(template)] = None
        day += timedelta(days=1)
    return list(urls)


class BackfillState:
    """The urlsets a backfill finished, in one expiring hash."""

    def __init__(self, client: redis.Redis, source: Feed, since: float) -> None:
        self.redis = client
        self.key_id = short_hash(f"{source.url}|{since:.0f}")
        self.key = keys.backfill_state(self.key_id)

    def done(self, url: str) -> bool:
        return bool(self.redis.hexists(self.key, short_hash(url)))

    def finish(self, url: str, queued: int) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self.key, short_hash(url), str(queued))
        pipe.expire(self.key, BACKFILL_STATE_TTL_S)
        pipe.execute()


class Backfill:
    def __init__(
        self, settings: Settings, poller: Poller, source: Feed, since: float,
        on_progress: OnProgress | None = None,
    ) -> None:  # fmt: skip
        self.settings = settings
        self.poller = poller
        self.source = source
        self.since = since
        self.state = BackfillState(poller.text_redis, source, since)
        self.report = BackfillReport()
        self.on_progress = on_progress or (lambda report, known: None)
        self.known = 0
        self._last_fetch = 0.0

    async def run(self, urls: list[str]) -> BackfillReport:
        """Read every sitemap of ``urls`` (and their children), depth first, oldest first."""
        stack = [(url, 0) for url in reversed(urls)]
        self.known = len(stack)
        while stack:
            url, depth = stack.pop()
            children = await self._visit(url, depth)
            self.known += len(children)
            stack.extend((child, depth + 1) for child in reversed(children))
            self.on_progress(self.report, self.known)
        return self.report

    async def _visit(self, url: str, depth: int) -> list[str]:
        if self.state.done(url):
            self.report.resumed += 1
            return []
        parsed = await self._read(url)
        if parsed is None:
            return []
        if parsed.is_index:
            self.report.indexes += 1
            if depth >= MAX_DEPTH:
                return []
            refs = [r for r in parsed.children if r.lastmod is None or r.lastmod >= self.since]
            refs.sort(key=lambda r: (r.lastmod is None, r.lastmod or 0.0))
            return [r.loc for r in refs if is_web_url(r.loc)]
        self.report.sitemaps += 1
        self.report.entries += len(parsed.entries)
        if await self._queue(url, list(parsed.entries)):
            self.state.finish(url, len(parsed.entries))
        return []

    async def _read(self, url: str) -> ParsedSitemap | None:
        """Fetch and parse one sitemap, ``host_min_delay_s`` after the previous fetch."""
        wait = self._last_fetch + self.settings.host_min_delay_s - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self._last_fetch = time.monotonic()
        try:
            result = await self.poller.fetcher.get(
                url, max_bytes=self.settings.max_feed_bytes, accept_types=SITEMAP_TYPES
            )
            return await asyncio.to_thread(
                parse_sitemap, result.body, self.settings.max_feed_bytes, self.since
            )
        except (FetchError, NotASitemapError) as exc:
            self.report.failed += 1
            log.warning("backfill.sitemap_failed", sitemap=url, error=str(exc)[:300])
            return None

    async def _queue(self, url: str, entries: list[SitemapEntry]) -> bool:
        """Queue a urlset's entries in chunks; False when some were left unsettled."""
        settled = True
        for start in range(0, len(entries), CHUNK):
            await self._wait_for_backlog()
            parsed = to_parsed_feed(self.source.title, url, entries[start : start + CHUNK], [])
            owner = f"backfill:{self.state.key_id}:{short_hash(url)}"
            queued, unsettled = self.poller._queue_new(self.source, parsed, owner)
            self.report.queued += queued
            settled = settled and not unsettled
            self.on_progress(self.report, self.known)
        if not settled:
            self.report.unsettled += 1
        return settled

    async def _wait_for_backlog(self) -> None:
        while True:
            waiting = queue_counts(self.poller.rq_redis, with_workers=False)[keys.EXTRACT_QUEUE]
            if waiting.waiting <= MAX_BACKLOG:
                return
            await asyncio.sleep(1.0)


def resolve_source(settings: Settings, source: str) -> Feed:
    """A sitemap source named by its URL or by the title of a feed-list entry."""
    listed = load_feeds(settings.feeds_file) if Path(settings.feeds_file).exists() else []
    for feed in listed:
        if source in (feed.url, feed.title):
            return dataclasses.replace(feed, kind="sitemap")
    if not is_web_url(source):
        raise ConfigError(f"backfill: {source!r} is neither an http(s) URL nor a listed source")
    return Feed(url=source, kind="sitemap")


@dataclasses.dataclass(frozen=True)
class BackfillRequest:
    source: str
    since: datetime
    archive: str | None = None


def backfill_command(settings: Settings, request: BackfillRequest) -> int:
    """The CLI command: a progress bar on stderr, a summary line on stdout."""
    source = resolve_source(settings, request.source)
    since = request.since.astimezone(UTC)
    now = datetime.now(UTC)
    if since >= now:
        raise ConfigError("backfill: --since must be in the past")
    urls = [source.url]
    if request.archive:
        urls += archive_urls(request.archive, since, now)
    with _progress_bar() as on_progress:
        report = asyncio.run(_run(settings, source, since.timestamp(), urls, on_progress))
    print(
        f"backfill {source.url} since {since:%Y-%m-%d}: {report.queued} queued of "
        f"{report.entries} entries in {report.sitemaps} sitemaps ({report.resumed} done "
        f"before, {report.failed} failed, {report.unsettled} to finish by a later run)"
    )
    return 0 if not report.failed and not report.unsettled else 1


async def _run(
    settings: Settings, source: Feed, since: float, urls: list[str], on_progress: OnProgress
) -> BackfillReport:
    fetcher = Fetcher(settings)
    try:
        poller = Poller(settings, connect(settings, decode=True), connect(settings, decode=False),
                        fetcher)  # fmt: skip
        return await Backfill(settings, poller, source, since, on_progress).run(urls)
    finally:
        await fetcher.aclose()


@contextlib.contextmanager
def _progress_bar() -> Iterator[OnProgress]:
    """A rich progress bar (sitemaps read of those known, articles queued) on stderr."""
    console = Console(stderr=True)
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"), TimeElapsedColumn(), console=console,
        disable=not console.is_terminal,
    )  # fmt: skip
    task = progress.add_task("sitemaps", total=1, detail="")

    def update(report: BackfillReport, known: int) -> None:
        detail = f"{report.queued} queued, {report.entries} entries, {report.failed} failed"
        done = report.indexes + report.sitemaps + report.resumed + report.failed
        progress.update(task, completed=done, total=max(known, done), detail=detail)

    with progress:
        yield update
