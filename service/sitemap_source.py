"""Sitemap sources in the poller: a (news) sitemap or sitemap index polled like a feed.

A source of ``kind: sitemap`` is scheduled like a feed (one lease, learnt cadence,
backoff, conditional GET on its URL). When its URL is a sitemap index, the index is
fetched at most every ``sitemap_index_interval_s``; in between, each poll fetches only the
index's *current* children (the newest by lastmod), each with its own validators. Only
entries dated at or after the source's watermark and within ``sitemap_max_age_s`` are
considered, oldest first; undated entries are taken once (their loc is remembered like a
feed guid). What is left goes through the poller's own claim and enqueue path, so dedup,
canonicalisation, politeness and the SSRF guard are those of feed items.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, cast

import redis.asyncio
import structlog

from core import keys
from core.errors import FetchError
from core.fetch import FetchResult
from core.models import Feed, FeedItem
from core.times import rfc3339
from core.urls import article_id_for, canonicalize_url, is_web_url, resolve_link
from service.feeds import MAX_TITLE_CHARS, ParsedFeed
from service.sitemaps import (
    NotASitemapError,
    ParsedSitemap,
    SitemapEntry,
    SitemapRef,
    parse_sitemap,
)
from service.state import FeedState

if TYPE_CHECKING:
    from service.poller import CycleReport, Poller, _Failure

log = structlog.get_logger("tradewire.poller")

# Children of an index polled each time: today's and yesterday's, with room for sites that
# split a day (by section or by count).
CURRENT_CHILDREN = 4
# A removed source's state goes after this; a live one is written every poll (at most a
# day apart: poll_max_interval_s).
SITEMAP_STATE_TTL_S = 30 * 24 * 3600
# Content types a sitemap comes with: XML, gzip (application/x-gzip), and text/plain from
# servers that know no better. The same prefixes as feeds.
SITEMAP_TYPES = ("application/", "text/xml", "text/html", "text/plain")


@dataclasses.dataclass
class SitemapState:
    """What the poller remembers about a sitemap source beyond its FeedState."""

    watermark: float = 0.0  # the newest entry date taken so far
    index_at: float = 0.0  # when the index was last fetched (0: never, or no index)
    children: list[str] = dataclasses.field(default_factory=list)
    validators: dict[str, list[str]] = dataclasses.field(default_factory=dict)  # etag, l-m

    @classmethod
    def from_json(cls, raw: str | None) -> SitemapState:
        if not raw:
            return cls()
        try:
            data = json.loads(raw)
            return cls(
                watermark=float(data.get("watermark", 0.0)),
                index_at=float(data.get("index_at", 0.0)),
                children=[str(c) for c in data.get("children", [])],
                validators={str(k): list(v) for k, v in data.get("validators", {}).items()},
            )
        except (ValueError, TypeError, AttributeError):
            return cls()  # unreadable state costs one full poll, nothing more


class SitemapStore:
    """Sitemap source states, one JSON string per source with a bounded lifetime."""

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self.redis = client  # the poll loop's asyncio client

    async def load(self, feed_id: str) -> tuple[SitemapState, str]:
        """The state, and its JSON as stored ("" when there is none)."""
        raw = cast(str | None, await self.redis.get(keys.sitemap_state(feed_id))) or ""
        return SitemapState.from_json(raw), raw

    async def save(self, feed_id: str, state: SitemapState, unless: str = "") -> None:
        """Write the state, unless it is still ``unless`` (a 304 of a urlset changes
        nothing: one round trip less per poll; a live source is written at least each
        time it has news, a quiet one re-reads its sitemap after SITEMAP_STATE_TTL_S)."""
        payload = json.dumps(dataclasses.asdict(state), separators=(",", ":"))
        if payload != unless:
            await self.redis.set(keys.sitemap_state(feed_id), payload, ex=SITEMAP_STATE_TTL_S)


def current_children(
    refs: Sequence[SitemapRef], now: float, max_age_s: float, limit: int = CURRENT_CHILDREN
) -> list[str]:
    """The children of an index worth polling now: those changed within ``max_age_s``,
    newest first; if none is dated, the first and the last listed (indexes list by date,
    one way or the other); if all are older, the newest one."""
    if not refs:
        return []
    dated = sorted((r for r in refs if r.lastmod is not None), key=lambda r: -(r.lastmod or 0))
    recent = [r.loc for r in dated if (r.lastmod or 0) >= now - max_age_s]
    if recent:
        return recent[:limit]
    if len(dated) < len(refs):
        return list(dict.fromkeys([refs[0].loc, refs[-1].loc]))
    return [dated[0].loc]


def select_entries(
    entries: Sequence[SitemapEntry], floor: float, known: set[str], cap: int
) -> list[SitemapEntry]:
    """The entries to queue: dated at or after ``floor`` (oldest first, so a capped poll
    moves the watermark forward without skipping any), then undated ones not yet taken."""
    dated = sorted((e for e in entries if e.when is not None and e.when >= floor),
                   key=lambda e: e.when or 0.0)  # fmt: skip
    undated = [e for e in entries if e.when is None]
    chosen = [e for e in dated if e.loc not in known]
    chosen += [e for e in undated if e.loc not in known]
    return chosen[:cap]


def to_parsed_feed(
    title: str, base_url: str, entries: Sequence[SitemapEntry], rhythm: Sequence[float]
) -> ParsedFeed:
    """Sitemap entries as the poller's parsed feed: absolute and canonical URLs, the loc
    as guid, so the same claim/enqueue path queues them."""
    items: list[FeedItem] = []
    skipped: list[str] = []
    seen: set[str] = set()
    for entry in entries:
        absolute = resolve_link(base_url, entry.loc)
        canonical = canonicalize_url(absolute) if absolute and is_web_url(absolute) else None
        if absolute is None or canonical is None:
            skipped.append(entry.loc)
            continue
        if canonical in seen:
            continue
        seen.add(canonical)
        when = entry.when
        items.append(FeedItem(
            url=absolute, canonical_url=canonical, article_id=article_id_for(canonical),
            guid=entry.loc, title=entry.title[:MAX_TITLE_CHARS],
            published_at=rfc3339(datetime.fromtimestamp(when, UTC)) if when else None,
        ))  # fmt: skip
    return ParsedFeed(
        title=title, items=tuple(items), problem=None, hint_s=None,
        published_times=tuple(rhythm), skipped_links=len(skipped),
        first_skipped=skipped[0][:200] if skipped else None,
    )  # fmt: skip


@dataclasses.dataclass
class _Fetched:
    """What the documents of one poll gave: entries, the children seen, new validators."""

    entries: list[SitemapEntry] = dataclasses.field(default_factory=list)
    validators: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    fetched: int = 0
    failed: int = 0
    loaded: str = ""  # the source's state as read at the start of the poll
    # Listed as a feed: its validators are not kept, since the feed path would take a 304
    # for "nothing new" and never poll an index's children.
    detected: bool = False


def _headers(validators: Sequence[str]) -> dict[str, str]:
    etag, modified = [*validators, "", ""][:2]
    if etag:
        return {"If-None-Match": etag}
    return {"If-Modified-Since": modified} if modified else {}


async def _parse(poller: Poller, body: bytes, since: float) -> ParsedSitemap:
    # In a thread, like feeds: a 50,000-entry sitemap takes a while to read.
    return await asyncio.to_thread(parse_sitemap, body, poller.settings.max_feed_bytes, since)


async def _poll_child(
    poller: Poller, url: str, validators: Sequence[str], floor: float, out: _Fetched
) -> None:
    """Fetch one child sitemap conditionally and add its entries; a failing child is
    logged and tried again next poll (the index and the other children still count)."""
    try:
        result = await poller.fetcher.get(
            url, max_bytes=poller.settings.max_feed_bytes, headers=_headers(validators),
            accept_types=SITEMAP_TYPES,
        )  # fmt: skip
        out.fetched += 1
        if result.not_modified:
            out.validators[url] = list(validators)
            return
        parsed = await _parse(poller, result.body, floor)
    except (FetchError, NotASitemapError) as exc:
        out.failed += 1
        log.warning("poller.sitemap_child_failed", child=url, error=str(exc)[:300])
        return
    if parsed.is_index:
        log.info("poller.sitemap_child_is_index", child=url, reason="nested indexes not polled")
        return
    out.entries.extend(parsed.entries)
    out.validators[url] = [result.headers.get("etag", ""), result.headers.get("last-modified", "")]


def _children_of(root: ParsedSitemap, base_url: str, now: float, max_age_s: float) -> list[str]:
    refs = []
    for ref in root.children:
        absolute = resolve_link(base_url, ref.loc)
        if absolute and is_web_url(absolute):
            refs.append(SitemapRef(absolute, ref.lastmod))
    return current_children(refs, now, max_age_s)


async def _fetch_root(
    poller: Poller, feed_id: str, feed: Feed, state: FeedState,
    report: CycleReport, failures: list[_Failure], conditional: bool,
) -> FetchResult | None:  # fmt: skip
    """GET the source's own URL (with its validators if ``conditional``); failures are
    recorded as a feed's."""
    from service.poller import NETWORK_KINDS, _Failure

    validators = [state.etag, state.last_modified] if conditional else []
    try:
        return await poller.fetcher.get(
            feed.url, max_bytes=poller.settings.max_feed_bytes,
            headers=_headers(validators), accept_types=SITEMAP_TYPES,
        )  # fmt: skip
    except FetchError as exc:
        report.failed += 1
        if exc.kind in NETWORK_KINDS:
            failures.append(_Failure(feed_id, feed, state, exc))
        else:
            poller._record_failure(feed_id, feed, state, exc.kind, str(exc), exc.retry_after_s)
        return None


async def poll_sitemap(
    poller: Poller, feed_id: str, feed: Feed, state: FeedState, report: CycleReport,
    failures: list[_Failure], fetched: FetchResult | None = None,
) -> None:  # fmt: skip
    """One poll of a sitemap source (``fetched``: its URL's response, already in hand
    when the source was configured as a feed and turned out to be a sitemap)."""
    memory, loaded = await SitemapStore(poller.aio.text).load(feed_id)
    now = poller.now()
    floor = max(memory.watermark, now - poller.settings.sitemap_max_age_s)
    index_due = now - memory.index_at >= poller.settings.sitemap_index_interval_s
    if fetched is None and memory.children and not index_due:
        # The index is not due: poll its current children only, as a 304 of the index.
        root: FetchResult | None = FetchResult(feed.url, 304, {}, b"")
    else:
        # Without the sitemap state (new, expired, lost) a 304 would say nothing about
        # which children to poll: fetch the document whole.
        root = fetched or await _fetch_root(
            poller, feed_id, feed, state, report, failures, conditional=bool(loaded)
        )
    if root is None:
        return
    out = _Fetched(loaded=loaded, detected=fetched is not None)
    if fetched is not None:
        log.info("poller.sitemap_detected", hint="list it with `kind: sitemap`: its index "
                 "is then fetched hourly, conditionally")  # fmt: skip
    try:
        children = await _read_root(poller, root, memory, floor, now, out)
    except NotASitemapError as exc:
        report.failed += 1
        poller._record_failure(feed_id, feed, state, "not_a_sitemap", str(exc), None)
        return
    await asyncio.gather(*(
        _poll_child(poller, url, memory.validators.get(url, []), floor, out) for url in children
    ))  # fmt: skip
    if children and out.failed == len(children) and root.not_modified:
        report.failed += 1
        poller._record_failure(feed_id, feed, state, "sitemap_children", "every child failed", None)
        return
    await _queue(poller, feed_id, feed, state, root, memory, floor, out, report)


async def _read_root(
    poller: Poller, root: FetchResult, memory: SitemapState, floor: float, now: float,
    out: _Fetched,
) -> list[str]:  # fmt: skip
    """Read the source's own document; return the children to poll (none for a urlset)."""
    if root.not_modified:
        return list(memory.children)
    parsed = await _parse(poller, root.body, floor)
    if not parsed.is_index:
        memory.children, memory.index_at = [], 0.0
        out.entries.extend(parsed.entries)
        return []
    memory.children = _children_of(parsed, root.url, now, poller.settings.sitemap_max_age_s)
    memory.index_at = now
    log.info("poller.sitemap_index", children=len(parsed.children), current=memory.children)
    return list(memory.children)


async def _queue(
    poller: Poller, feed_id: str, feed: Feed, state: FeedState, root: FetchResult,
    memory: SitemapState, floor: float, out: _Fetched, report: CycleReport,
) -> None:  # fmt: skip
    """Queue the new entries through the poller's claim path; advance the watermark and
    the children's validators only when nothing was left unsettled."""
    undated = [e.loc for e in out.entries if e.when is None]
    dated_new = [e.loc for e in out.entries if e.when is not None and e.when >= floor]
    candidates = undated + dated_new
    known = await poller.aio.claims.known_guids(feed.feed_id, candidates)
    chosen = select_entries(out.entries, floor, known, poller.settings.max_items_per_feed)
    rhythm = [e.when for e in out.entries if e.when is not None]
    parsed = to_parsed_feed(feed.title, root.url, chosen, rhythm)
    new_items, unsettled = await poller._aqueue_new(feed, parsed) if parsed.items else (0, False)
    report.new_items += new_items
    if not unsettled:
        taken = [e.when for e in chosen if e.when is not None]
        memory.watermark = max([memory.watermark, *taken])
        memory.validators = {u: v for u, v in out.validators.items() if u in memory.children}
    await SitemapStore(poller.aio.text).save(feed_id, memory, unless=out.loaded)
    if parsed.skipped_links:
        log.info("poller.links_skipped", skipped=parsed.skipped_links,
                 example=parsed.first_skipped, reason="not a fetchable http(s) URL")  # fmt: skip
    # Nothing read (every document unchanged): the learnt cadence stays as it was.
    read = parsed if out.entries or not root.not_modified else None
    poller._record_success(feed_id, feed, state, root, read, new_items,
                           keep_validators=unsettled or out.detected)  # fmt: skip


def as_sitemap(feed: Feed) -> Feed:
    """A source configured as a feed whose URL serves a sitemap."""
    return dataclasses.replace(feed, kind="sitemap")
