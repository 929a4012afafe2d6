"""The poller: claim due feeds, fetch them concurrently, queue every new article.

Orchestration only: fetching is ``fetch``, parsing ``feeds``, timing ``schedule``, Redis
``state`` and ``enqueue``. The clock and the random source are passed in.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import hashlib
import math
import random
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol

import redis
import redis.asyncio
import structlog

from core import keys
from core.claims import CLAIM_TTL_S, ArticleClaims, AsyncArticleClaims
from core.connection import async_twin
from core.errors import FetchError
from core.fetch import Fetcher, FetchResult
from core.metrics import (
    FEED_BODY_UNCHANGED,
    FEED_POLLS,
    FEEDS_IN_BACKOFF,
    FEEDS_LISTED,
    FEEDS_STALE,
    ITEMS_DISCOVERED,
)
from core.models import ArticleJob, Feed, FeedItem
from core.queues import enqueue_extracts, enqueue_extracts_async
from core.settings import Settings
from core.times import rfc3339
from service.feeds import ParsedFeed
from service.hints import adaptive_interval_s, combine_hints, http_cache_hint_s
from service.parsing import FeedParsers, ParseTimeoutError
from service.schedule import SchedulePolicy, error_delay, success_delay
from service.sitemap_source import as_sitemap, poll_sitemap
from service.sitemaps import looks_like_sitemap
from service.state import AsyncFeedStore, FeedState, FeedStore
from workers.jobs import extract_job

log = structlog.get_logger("tradewire.poller")

Clock = Callable[[], float]
FEED_TYPES = ("application/", "text/xml", "text/html", "text/plain", "text/rss", "text/atom")


# Fetch slots that must be free before the poller claims more feeds.
CLAIM_CHUNK = 16
# Polls started per event loop iteration: a poll's first step (the URL checked, the request
# built and sent) is about half a millisecond of CPU, and the loop serves nothing else meanwhile.
START_GROUP = 4
# Feed states are written once this many are buffered, or this long after the last write:
# one script call per finished poll was most of what a loop turn cost. Until then the
# feeds' leases hold them; a crash only re-polls them once the lease runs out.
FLUSH_STATES = CLAIM_CHUNK
FLUSH_EVERY_S = 0.25
# New feeds become due at this rate: what one poller sustains (see benchmarks/).
RAMP_POLLS_PER_S = 350.0
# A wall clock that moves forward by this much more than the monotonic clock between
# cycles (or back by more than a minute) jumped, or the host was paused without the
# monotonic clock seeing it.
CLOCK_JUMP_S = 600.0

# Failures that say nothing about the publisher when most feeds fail at once.
NETWORK_KINDS = frozenset({"connect", "dns", "timeout", "reset"})
OUTAGE_MIN_FEEDS = 10
OUTAGE_SHARE = 0.8
OUTAGE_WINDOW_MAX_S = 10.0
# The last successful feed poll is remembered this long: `status` can say "3 h ago".
LAST_SUCCESS_TTL_S = 7 * 24 * 3600
NO_NETWORK_HINT = "no feed reachable — no network? try `tradewire demo`"


class PushHook(Protocol):
    """WebSub (service/websub.py), told of every parsed poll: it subscribes to the feed's
    hub and answers how much slower to poll while the feed's subscription is live."""

    def after_poll(
        self, feed_id: str, feed: Feed, parsed: ParsedFeed | None, now: float
    ) -> float: ...


@dataclasses.dataclass(frozen=True)
class _Failure:
    feed_id: str
    feed: Feed
    state: FeedState
    error: FetchError


@dataclasses.dataclass(frozen=True)
class AsyncRedis:
    """The asyncio clients and stores of one running ``Poller._poll``: everything the poller
    asks Redis while its event loop runs goes through these (a blocking call would stall
    every fetch in flight)."""

    text: redis.asyncio.Redis
    rq: redis.asyncio.Redis
    store: AsyncFeedStore
    claims: AsyncArticleClaims

    @classmethod
    def of(cls, text: redis.Redis, rq: redis.Redis, settings: Settings) -> AsyncRedis:
        atext, arq = async_twin(text), async_twin(rq)
        claims = AsyncArticleClaims(atext, CLAIM_TTL_S, settings.seen_ttl_s)
        return cls(atext, arq, AsyncFeedStore(atext), claims)

    async def aclose(self) -> None:
        for client in (self.text, self.rq):
            with contextlib.suppress(redis.RedisError, OSError):
                await client.aclose()
                # A pool passed in is not closed with its client (async_twin passes one).
                await client.connection_pool.disconnect()


@dataclasses.dataclass
class CycleReport:
    """What one pass over the due feeds did."""

    polled: int = 0
    not_modified: int = 0
    failed: int = 0
    new_items: int = 0


def _log_parse_notes(parsed: ParsedFeed) -> None:
    """What a parse that still yielded a feed had to overlook, said once per poll."""
    if parsed.problem:
        log.info("poller.feed_malformed", problem=parsed.problem[:200], items=len(parsed.items))
    if parsed.skipped_links:
        # Entries whose link is no fetchable web URL (javascript:, file:, data:, a port out
        # of range, a broken IPv6 literal) are dropped; the feed's other items flow.
        log.info(
            "poller.links_skipped",
            skipped=parsed.skipped_links,
            example=parsed.first_skipped,
            reason="not a fetchable http(s) URL",
        )


class Poller:
    """Polls the feeds due now; several Pollers on one Redis share the feeds via leases."""

    def __init__(
        self,
        settings: Settings,
        text_redis: redis.Redis,
        rq_redis: redis.Redis,
        fetcher: Fetcher,
        clock: Clock = time.time,
        rng: random.Random | None = None,
        monotonic: Clock = time.monotonic,
        parsers: FeedParsers | None = None,
    ) -> None:
        self.settings = settings
        self.parsers = parsers or FeedParsers(settings)
        self._aio: AsyncRedis | None = None  # while polling
        self.store = FeedStore(text_redis)
        self.claims = ArticleClaims(text_redis, CLAIM_TTL_S, settings.seen_ttl_s)
        self.text_redis = text_redis
        self.rq_redis = rq_redis
        self.fetcher = fetcher
        self.clock = clock
        self.monotonic = monotonic
        self.rng = rng or random.Random()
        self.policy = SchedulePolicy.from_settings(settings)
        self.cycle_s = max(1.0, min(10.0, settings.poll_min_interval_s / 2))
        # Feeds this poller last saw failing or silent, for the gauges (several pollers sum).
        self._last_reading: tuple[float, float] | None = None  # (wall, monotonic)
        self._skew_at_start = 0.0  # Redis's clock minus ours, at the first cycle
        self._correction_s = 0.0  # added to our clock after a jump of its own
        self._unsaved: dict[str, FeedState] = {}
        self._in_backoff: set[str] = set()
        self._stale: set[str] = set()
        # Feed health: when a poll last succeeded (not yet written to Redis), and the feeds
        # that failed with network errors since, to say once when none is reachable.
        self._succeeded_at: float | None = None
        self._unreachable: set[str] = set()
        self._feed_count = 0
        self._said_unreachable = False
        self.push: PushHook | None = None  # set by the app when WebSub is configured

    def register(self, feeds: Sequence[Feed]) -> None:
        # New feeds enter at about the rate one poller sustains, not all at once.
        spread = min(self.policy.default_interval_s, len(feeds) / RAMP_POLLS_PER_S)
        spread = spread if spread >= 1.0 else 0.0  # a short list is polled at once
        added = self.store.register(feeds, self.now(), spread, self.rng)
        self._feed_count = len(feeds)
        FEEDS_LISTED.set(len(feeds))
        log.info("poller.feeds_registered", feeds=len(feeds), new=added)

    async def poll_once(self) -> CycleReport:
        """Poll every feed due now, ``poll_concurrency`` at a time, and return once none is
        due and none is in flight (the demo, the tests, the benchmark's bursts)."""
        return await self._poll(asyncio.Event(), until_idle=True)

    def _save(self, feed_id: str, state: FeedState) -> None:
        self._unsaved[feed_id] = state

    @property
    def aio(self) -> AsyncRedis:
        """The asyncio clients of the running poll loop."""
        if self._aio is None:
            raise RuntimeError("the poller's asyncio clients exist only while it polls")
        return self._aio

    async def aflush(self) -> None:
        """Write the buffered feed states (one round trip)."""
        if self._unsaved:
            pending, self._unsaved = self._unsaved, {}
            try:
                await self.aio.store.save_many(pending)
            except redis.RedisError:
                # Keep them for the next try; until then their leases hold the feeds.
                self._unsaved = {**pending, **self._unsaved}
                raise

    def _record_network_failures(self, failures: list[_Failure], polled: int) -> None:
        """Network-level failures of a batch are judged together: when most feeds failed at
        once, the outage is ours (no network, DNS down), not each publisher's, so no feed's
        error count grows and one line is logged instead of one per feed."""
        if not failures:
            return
        if polled >= OUTAGE_MIN_FEEDS and len(failures) >= OUTAGE_SHARE * polled:
            log.warning("poller.outage_suspected", failed=len(failures), polled=polled,
                        kinds=sorted({f.error.kind for f in failures}))  # fmt: skip
            now = self.now()
            for failure in failures:
                FEED_POLLS.labels(result="outage").inc()
                delay = error_delay(self.policy, 1, None, self.rng)
                self._save(failure.feed_id, dataclasses.replace(
                    failure.state, last_status="outage", last_error=str(failure.error)[:500],
                    last_polled_at=now, next_poll_at=now + delay,
                ))  # fmt: skip
            return
        for failure in failures:
            with structlog.contextvars.bound_contextvars(feed=failure.feed.url):
                error = failure.error
                self._record_failure(
                    failure.feed_id, failure.feed, failure.state, error.kind, str(error),
                    error.retry_after_s,
                )  # fmt: skip

    def now(self) -> float:
        """The time this poller schedules by: its clock, corrected for jumps of its own."""
        return self.clock() + self._correction_s

    async def _follow_clock_jump(self) -> None:
        """Notice a jump of this host's wall clock and correct for it here only.

        The schedule in Redis is shared by every poller: one host's jump, or one poller's
        pause (SIGSTOP, a VM paused), must never rewrite it. A pause moves the wall and
        the monotonic clock alike and is no jump. When the two disagree, Redis's clock
        decides: a jump of our own changes our distance to it (and is corrected for
        locally); a pause the monotonic clock did not see leaves it as it was.
        """
        wall, monotonic = self.clock(), self.monotonic()
        previous, self._last_reading = self._last_reading, (wall, monotonic)
        if previous is None:
            self._skew_at_start = await self._redis_skew(wall)
            return
        step = (wall - previous[0]) - (monotonic - previous[1])
        if step < -60.0 or step > CLOCK_JUMP_S:
            self._correction_s = await self._redis_skew(wall) - self._skew_at_start
            log.warning("poller.clock_jump", jump_s=round(step),
                        correction_s=round(self._correction_s))  # fmt: skip

    async def _redis_skew(self, wall: float) -> float:
        seconds, microseconds = await self.aio.text.time()
        return float(seconds) + microseconds / 1e6 - wall

    async def heartbeat(self) -> None:
        """Tell readiness checks this poller is alive, and when a feed poll last succeeded
        (written here, once a window, rather than once per feed polled)."""
        pipe = self.aio.text.pipeline(transaction=False)
        pipe.set(keys.POLLER_HEARTBEAT, f"{self.now():.3f}", ex=int(self.cycle_s * 10))
        if self._succeeded_at is not None:
            pipe.set(keys.FEEDS_LAST_SUCCESS, f"{self._succeeded_at:.3f}", ex=LAST_SUCCESS_TTL_S)
        await pipe.execute()
        self._succeeded_at = None

    def _note_unreachable(self, failures: list[_Failure]) -> None:
        """Say once, not every cycle, when every feed failed with a network error since the
        last success: most likely this host is offline, not every publisher down."""
        self._unreachable.update(failure.feed_id for failure in failures)
        if self._said_unreachable or not self._feed_count:
            return
        if len(self._unreachable) >= self._feed_count:
            self._said_unreachable = True
            log.warning(
                "poller.no_feed_reachable",
                hint=NO_NETWORK_HINT,
                feeds=self._feed_count,
                kinds=sorted({failure.error.kind for failure in failures}),
            )

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until ``stop`` is set; Redis outages are waited out."""
        # What the process holds when polling starts (modules, clients, settings) lives as
        # long as it does: a full garbage collection that walks it all again stalled the
        # loop 40-130 ms at a time, every few seconds of polling. Only here: frozen objects
        # are never collected, and poll_once runs many times in one process (tests, demo).
        gc.freeze()
        await self._poll(stop, until_idle=False)

    async def _poll(self, stop: asyncio.Event, *, until_idle: bool) -> CycleReport:
        """Keep ``poll_concurrency`` fetches in flight until ``stop`` (or, ``until_idle``,
        until nothing is due or in flight).

        Feeds are claimed as fetch slots free up, not in batches, so one slow feed never
        holds the others back. Network failures are judged per one-second window (an
        outage of ours shows as most of a window failing).
        """
        loop = _PollLoop(asyncio.Semaphore(self.settings.poll_concurrency))
        self._aio = AsyncRedis.of(self.text_redis, self.rq_redis, self.settings)
        stopped = asyncio.ensure_future(stop.wait())
        stopped.add_done_callback(lambda _: loop.wake())
        try:
            await self._loop(loop, stop, until_idle)
        finally:
            stopped.cancel()
            # Cancelled (shutdown, a capped poll_once): no poll may outlive the clients.
            for task in loop.in_flight:
                task.cancel()
            if loop.in_flight:
                await asyncio.wait(loop.in_flight)
            await self.parsers.aclose()
            aio, self._aio = self._aio, None
            await aio.aclose()
        return loop.report

    async def _loop(self, loop: _PollLoop, stop: asyncio.Event, until_idle: bool) -> None:
        outage_delay = 1.0
        while not stop.is_set():
            try:
                wait = await self._turn(loop, until_idle)
                if wait is None:
                    break
                outage_delay = 1.0
            except redis.RedisError as exc:
                loop.flushed_at = -math.inf  # the states kept are written on the next turn
                if until_idle:
                    await self._drain(loop.in_flight)
                    raise
                log.warning("poller.redis_unavailable", error=str(exc), retry_in_s=outage_delay)
                wait = outage_delay
                outage_delay = min(outage_delay * 2, 30.0)
            await loop.wait_for_progress(wait)
        await self._drain(loop.in_flight)

    async def _turn(self, loop: _PollLoop, until_idle: bool) -> float | None:
        """One turn of the polling loop: claim what is due into the free fetch slots, judge
        the failure window when it is over, flush state. Returns how long to wait before
        the next turn, or None when ``until_idle`` and nothing is left."""
        loop.progressed = False
        await self._follow_clock_jump()
        now = self.now()
        free = self.settings.poll_concurrency - len(loop.in_flight)
        # Claim in chunks: three Redis round trips per claim are cheap for 16 feeds and
        # most of a poll's cost for one.
        worth_it = free >= min(CLAIM_CHUNK, self.settings.poll_concurrency) or not loop.in_flight
        store = self.aio.store
        due = await store.claim_due(now, self.settings.poll_lease_s, free) if worth_it else []
        await self._start_polls(loop, due)
        idle = until_idle and not due and not loop.in_flight
        if idle or loop.window_over(loop.report.polled):
            await self._judge_window(loop)
        elif loop.beat_due():
            # Liveness is not held back by a failure window waiting for enough polls.
            await self.heartbeat()
            loop.beaten_at = time.monotonic()
        if idle or loop.flush_due(len(self._unsaved)):
            await self.aflush()
            loop.flushed_at = time.monotonic()
        if idle:
            return None
        wait = 0.5  # woken sooner by the next fetches to finish
        if worth_it and len(due) < free and not until_idle:
            # Nothing more is due now: sleep until the next one.
            next_due = await store.next_due_at()
            wait = self.cycle_s if next_due is None else max(next_due - self.now(), 0.02)
        # States still buffered are written within FLUSH_EVERY_S, polls finishing or not.
        return min(wait, self.cycle_s, FLUSH_EVERY_S if self._unsaved else math.inf)

    async def _start_polls(self, loop: _PollLoop, due: list[str]) -> None:
        started = 0
        for feed_id, feed, state in await self.aio.store.load(due):
            if feed is None:
                continue
            task = asyncio.create_task(
                self._poll_guarded(loop.semaphore, feed_id, feed, state, loop.report, loop.failures)
            )
            loop.in_flight.add(task)
            task.add_done_callback(loop.finished)
            started += 1
            if started % START_GROUP == 0:
                # Each new poll's first step runs in the loop's next iteration; a claimed
                # chunk's all at once held timers and I/O 10-20 ms (about 0.6 ms each).
                await asyncio.sleep(0)

    async def _judge_window(self, loop: _PollLoop) -> None:
        """Close the failure window (tasks still running report into the next one)."""
        judged = list(loop.failures)
        loop.failures.clear()
        self._note_unreachable(judged)
        self._record_network_failures(judged, polled=loop.report.polled - loop.window_polled)
        loop.window_started, loop.window_polled = time.monotonic(), loop.report.polled
        await self.heartbeat()
        loop.beaten_at = loop.window_started

    async def _drain(self, in_flight: set[asyncio.Task[None]]) -> None:
        """On stop: let fetches in flight finish briefly, then cancel (their leases expire
        and another poller, or this one restarted, polls them)."""
        if in_flight:
            await asyncio.wait(in_flight, timeout=5.0)
            for task in in_flight:
                task.cancel()
        try:
            await self.aflush()
        except redis.RedisError:
            log.warning("poller.state_not_saved", feeds=len(self._unsaved))

    async def _poll_guarded(
        self,
        semaphore: asyncio.Semaphore,
        feed_id: str,
        feed: Feed,
        state: FeedState,
        report: CycleReport,
        network_failures: list[_Failure],
    ) -> None:
        async with semaphore:
            with structlog.contextvars.bound_contextvars(feed=feed.url):
                try:
                    await self._poll_feed(feed_id, feed, state, report, network_failures)
                except redis.RedisError:
                    raise
                except Exception:
                    # One broken feed must never stop the others; its lease runs out and
                    # it is retried later.
                    log.exception("poller.feed_crashed")

    async def _poll_feed(
        self,
        feed_id: str,
        feed: Feed,
        state: FeedState,
        report: CycleReport,
        network_failures: list[_Failure],
    ) -> None:
        headers = {}
        # One validator is enough; ETag is the stronger one.
        if state.etag:
            headers["If-None-Match"] = state.etag
        elif state.last_modified:
            headers["If-Modified-Since"] = state.last_modified
        report.polled += 1
        if feed.kind == "sitemap":
            await poll_sitemap(self, feed_id, feed, state, report, network_failures)
            return
        try:
            result = await self.fetcher.get(
                feed.url,
                max_bytes=self.settings.max_feed_bytes,
                headers=headers,
                accept_types=FEED_TYPES,
            )
        except FetchError as exc:
            report.failed += 1
            if exc.kind in NETWORK_KINDS:
                network_failures.append(_Failure(feed_id, feed, state, exc))
            else:
                self._record_failure(feed_id, feed, state, exc.kind, str(exc), exc.retry_after_s)
            return
        if result.not_modified:
            report.not_modified += 1
            self._record_success(feed_id, feed, state, result, None, new_items=0)
            return
        digest = hashlib.blake2b(result.body, digest_size=16).hexdigest()
        if digest == state.body_hash:
            # A 200 with the very body whose items were all settled last time (the server
            # ignores conditional GET): nothing in it can be new, so it is not parsed.
            FEED_BODY_UNCHANGED.inc()
            self._record_success(feed_id, feed, state, result, None, new_items=0)
            return
        parsed = await self._parse(feed_id, feed, state, result, report, network_failures)
        if parsed is None:
            return
        _log_parse_notes(parsed)
        new_items, unsettled = await self._aqueue_new(feed, parsed)
        report.new_items += new_items
        self._record_success(
            feed_id, feed, state, result, parsed, new_items, keep_validators=unsettled,
            body_hash="" if unsettled else digest,
        )  # fmt: skip

    async def _parse(
        self,
        feed_id: str,
        feed: Feed,
        state: FeedState,
        result: FetchResult,
        report: CycleReport,
        network_failures: list[_Failure],
    ) -> ParsedFeed | None:
        """The feed a 200 holds; None when it holds none (recorded, or polled as the
        sitemap it turned out to be)."""
        try:
            # In worker processes (service/parsing.py): a big feed takes seconds to parse,
            # and in the event loop, or a thread holding the GIL, it would stall every
            # other fetch in flight past its deadline.
            return await self.parsers.parse(
                result.body, result.headers, result.url, self.settings.max_items_per_feed
            )
        except ParseTimeoutError as exc:
            report.failed += 1
            self._record_failure(feed_id, feed, state, "parse_timeout", str(exc), None)
        except ValueError as exc:
            if looks_like_sitemap(result.body):  # a sitemap listed as a feed
                sitemap = as_sitemap(feed)
                await poll_sitemap(self, feed_id, sitemap, state, report, network_failures, result)
            else:
                report.failed += 1
                self._record_failure(feed_id, feed, state, "not_a_feed", str(exc), None)
        return None

    def _fresh(self, parsed: ParsedFeed, known: set[str]) -> dict[str, FeedItem]:
        """The items to claim: those whose guid this feed did not give before."""
        return {
            item.article_id: item
            for item in parsed.items
            if item.guid not in known or not item.guid
        }

    def _jobs(
        self, feed: Feed, parsed: ParsedFeed, by_id: dict[str, FeedItem], fresh: list[str]
    ) -> list[ArticleJob]:
        discovered_at = rfc3339(datetime.fromtimestamp(self.now(), UTC))
        return [
            ArticleJob(
                article_id=aid,
                url=by_id[aid].url,
                canonical_url=by_id[aid].canonical_url,
                feed_url=feed.url,
                feed_title=feed.title or parsed.title,
                title=by_id[aid].title,
                published_at=by_id[aid].published_at,
                discovered_at=discovered_at,
                source_kind=feed.kind,
            )
            for aid in fresh
        ]

    @staticmethod
    def _queued(jobs: list[ArticleJob]) -> None:
        ITEMS_DISCOVERED.inc(len(jobs))
        for job in jobs:
            log.info("poller.article_queued", url=job.url, article_id=job.article_id)

    async def _aqueue_new(
        self, feed: Feed, parsed: ParsedFeed, owner: str | None = None
    ) -> tuple[int, bool]:
        """Claim the items nobody has queued yet, queue them, then make the claims durable;
        returns how many were queued and whether some items are claimed by another owner
        but not yet queued (then this poll must not advance the feed's validators: if that
        owner fails, only a full fetch brings those items back). A failed enqueue releases
        this poll's claims, so the next poll tries again. Four pipelined round trips at
        most, on the poll loop's asyncio clients."""
        aio = self.aio
        guids = [item.guid for item in parsed.items if item.guid]
        by_id = self._fresh(parsed, await aio.claims.known_guids(feed.feed_id, guids))
        # A backfill names its owner (one per sitemap), so a run resumed after a crash
        # takes back the claims of the run that died instead of waiting for them to expire.
        owner = owner or f"poll:{uuid.uuid4().hex}"
        claimed = await aio.claims.claim(list(by_id), owner)
        fresh, unsettled = claimed.mine, bool(claimed.in_flight)
        if not fresh:
            return 0, unsettled
        jobs = self._jobs(feed, parsed, by_id, fresh)
        try:
            await enqueue_extracts_async(aio.rq, self.settings, extract_job, jobs)
        except Exception:
            # Best effort: when Redis itself failed, the claims expire and the feed's
            # validators were not advanced, so a later poll still finds the items.
            with contextlib.suppress(redis.RedisError):
                await aio.claims.release(fresh, owner)
            raise
        await aio.claims.confirm(
            [(article_id, owner) for article_id in fresh],
            feed.feed_id,
            [by_id[aid].guid for aid in fresh if by_id[aid].guid],
        )
        self._queued(jobs)
        return len(jobs), unsettled

    def _queue_new(
        self, feed: Feed, parsed: ParsedFeed, owner: str | None = None
    ) -> tuple[int, bool]:
        """``_aqueue_new`` for callers outside the poll loop (WebSub's notifications, the
        backfill command), on the blocking clients."""
        guids = [item.guid for item in parsed.items if item.guid]
        known = self.claims.known_guids(feed.feed_id, guids) if guids else set()
        by_id = self._fresh(parsed, known)
        owner = owner or f"poll:{uuid.uuid4().hex}"
        claimed = self.claims.claim(list(by_id), owner)
        fresh, unsettled = claimed.mine, bool(claimed.in_flight)
        if not fresh:
            return 0, unsettled
        jobs = self._jobs(feed, parsed, by_id, fresh)
        try:
            enqueue_extracts(self.rq_redis, self.settings, extract_job, jobs)
        except Exception:
            with contextlib.suppress(redis.RedisError):
                self.claims.release(fresh, owner)
            raise
        self.claims.confirm([(article_id, owner) for article_id in fresh])
        self.claims.remember_guids(
            feed.feed_id, [by_id[aid].guid for aid in fresh if by_id[aid].guid]
        )
        self._queued(jobs)
        return len(jobs), unsettled

    def queue_pushed(self, feed: Feed, parsed: ParsedFeed) -> int:
        """A WebSub content notification is a poll result: the same notes, dedup, claims
        and enqueue as ``_poll_feed``'s; returns how many articles were queued."""
        _log_parse_notes(parsed)
        return self._queue_new(feed, parsed)[0]

    def _record_success(
        self,
        feed_id: str,
        feed: Feed,
        state: FeedState,
        result: FetchResult,
        parsed: ParsedFeed | None,
        new_items: int,
        *,
        keep_validators: bool = False,
        body_hash: str | None = None,
    ) -> None:
        """``body_hash``: of a body whose items are all settled ("": unsettled, None: keep
        the last one). An unchanged body not parsed again keeps its last hint."""
        FEED_POLLS.labels(result=str(result.status)).inc()
        now = self.now()
        self._succeeded_at = now
        self._unreachable.clear()
        self._said_unreachable = False
        cadence = state.cadence_s
        if parsed is not None:
            cadence = adaptive_interval_s(
                parsed.published_times, now, self.policy.default_interval_s,
                self.policy.min_interval_s, self.policy.max_interval_s,
            )  # fmt: skip
        feed_hint = parsed.hint_s if parsed else None if result.not_modified else state.hint_s
        hint = combine_hints(feed_hint or None, http_cache_hint_s(result.headers, now))
        # A configured interval wins over the learnt one; the publisher's hints over both.
        slow = self.push.after_poll(feed_id, feed, parsed, now) if self.push else 1.0
        delay = success_delay(self.policy, feed.interval_s or cadence, hint, self.rng, slow)
        self._save(
            feed_id,
            dataclasses.replace(
                state,
                etag=state.etag if keep_validators else _validator(result, "etag", state.etag),
                last_modified=state.last_modified
                if keep_validators
                else _validator(result, "last-modified", state.last_modified),
                consecutive_errors=0,
                last_status=str(result.status),
                last_error="",
                last_polled_at=now,
                last_new_item_at=now if new_items else state.last_new_item_at,
                next_poll_at=now + delay,
                cadence_s=cadence,
                title=parsed.title if parsed else state.title,
                body_hash=state.body_hash if body_hash is None else body_hash,
                hint_s=(parsed.hint_s or 0.0) if parsed else state.hint_s,
            ),
        )
        if state.consecutive_errors:
            log.info("poller.feed_recovered", after_errors=state.consecutive_errors)
        last_new = now if new_items else state.last_new_item_at
        # Stale: silent for three times the feed's usual gap between items (twice the
        # learnt polling cadence, which polls twice per gap), a day at least.
        usual = 2 * cadence if cadence else feed.interval_s or self.settings.poll_interval_s
        self._track(
            feed_id, failing=False, stale=bool(last_new) and now - last_new > max(3 * usual, 86400)
        )

    def _track(self, feed_id: str, *, failing: bool, stale: bool) -> None:
        for members, flag in ((self._in_backoff, failing), (self._stale, stale)):
            if flag:
                members.add(feed_id)
            else:
                members.discard(feed_id)
        FEEDS_IN_BACKOFF.set(len(self._in_backoff))
        FEEDS_STALE.set(len(self._stale))

    def _record_failure(
        self,
        feed_id: str,
        feed: Feed,
        state: FeedState,
        kind: str,
        detail: str,
        retry_after_s: float | None,
    ) -> None:
        FEED_POLLS.labels(result=kind).inc()
        now = self.now()
        errors = state.consecutive_errors + 1
        delay = error_delay(self.policy, errors, retry_after_s, self.rng)
        self._save(
            feed_id,
            dataclasses.replace(
                state,
                consecutive_errors=errors,
                last_status=kind,
                last_error=detail[:500],
                last_polled_at=now,
                next_poll_at=now + delay,
            ),
        )
        self._track(feed_id, failing=True, stale=feed_id in self._stale)
        # One line per failing poll is one per backoff step: the backoff spaces them out.
        log.warning(
            "poller.feed_failed",
            kind=kind,
            error=detail[:300],
            errors=errors,
            retry_in_s=round(delay),
        )


def poll_feeds_once(
    settings: Settings,
    text_redis: redis.Redis,
    rq_redis: redis.Redis,
    feeds: Sequence[Feed],
    *,
    clock: Clock = time.time,
    rng: random.Random | None = None,
    register: bool = True,
) -> CycleReport:
    """One pass over the feeds due now, with a fetcher of its own (demo, tests, benchmarks):
    register ``feeds`` (unless told not to), poll, close the fetcher."""

    async def go() -> CycleReport:
        fetcher = Fetcher(settings)
        try:
            poller = Poller(settings, text_redis, rq_redis, fetcher, clock=clock, rng=rng)
            if register:
                poller.register(feeds)
            return await poller.poll_once()
        finally:
            await fetcher.aclose()

    return asyncio.run(go())


def _validator(result: FetchResult, header: str, previous: str) -> str:
    """The ETag or Last-Modified to send next time (a 304 may omit it: keep the last one)."""
    return result.headers.get(header, previous if result.not_modified else "")


@dataclasses.dataclass
class _PollLoop:
    """The running state of one ``Poller._poll``."""

    semaphore: asyncio.Semaphore
    in_flight: set[asyncio.Task[None]] = dataclasses.field(default_factory=set)
    report: CycleReport = dataclasses.field(default_factory=CycleReport)
    failures: list[_Failure] = dataclasses.field(default_factory=list)
    window_started: float = dataclasses.field(default_factory=time.monotonic)
    window_polled: int = 0
    beaten_at: float = -math.inf
    flushed_at: float = dataclasses.field(default_factory=time.monotonic)
    # A poll finished since the turn began; the waiting turn's wake-up (one future, not a
    # wait on every task in flight: adding and removing 256 callbacks each turn).
    progressed: bool = False
    waker: asyncio.Future[None] | None = None

    def finished(self, task: asyncio.Task[None]) -> None:
        self.in_flight.discard(task)
        self.wake()

    def wake(self) -> None:
        self.progressed = True
        if self.waker is not None and not self.waker.done():
            self.waker.set_result(None)

    async def wait_for_progress(self, wait: float) -> None:
        """Sleep up to ``wait`` (at most a second), waking when a poll finishes or on stop."""
        if self.progressed:
            return
        self.waker = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(self.waker, min(wait, 1.0))
        except TimeoutError:
            pass
        finally:
            self.waker = None

    def flush_due(self, unsaved: int) -> bool:
        return unsaved >= FLUSH_STATES or (
            unsaved > 0 and time.monotonic() - self.flushed_at >= FLUSH_EVERY_S
        )

    def beat_due(self) -> bool:
        """A heartbeat once a second at most: the first turn beats at once."""
        return time.monotonic() - self.beaten_at >= 1.0

    def window_over(self, polled: int) -> bool:
        """A failure window lasts a second, and longer until it holds enough polls to tell an
        outage of ours (on a loaded machine twelve refusals can take more than a second to
        come back, and split in two windows neither would look like an outage), at most 10 s."""
        age = time.monotonic() - self.window_started
        enough = polled - self.window_polled >= OUTAGE_MIN_FEEDS
        return age >= OUTAGE_WINDOW_MAX_S or (age >= 1.0 and enough)
