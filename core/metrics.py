"""Prometheus metrics.

Counters and histograms are written by every process of one ``tradewire`` command (the
poller and its supervised worker children) into prometheus-client's multiprocess
directory, which the CLI creates and names in PROMETHEUS_MULTIPROC_DIR before anything
imports this module; the command's /metrics sums them. Queue depths, failed jobs, the
stream length, the poller's and the feeds' ages and Redis's memory are read from Redis at
scrape time, so every process shows the shared picture. deploy/prometheus/alerts.yml and
deploy/grafana/tradewire.json are written against these names.

Each process writes its own files, so a recycled worker would leave its files behind
forever (thousands of them slow every scrape): the supervisor retires a dead child's files,
folding its counters and histograms into one file per kind (totals never go backwards) and
dropping its live gauges. Every gauge here is a ``live*`` one, so nothing else piles up.
"""

from __future__ import annotations

import math
import struct
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path

import redis
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from core import keys
from core.queues import queue_counts

REGISTRY = CollectorRegistry()

FEED_POLLS = Counter(
    "tradewire_feed_polls", "Feed polls by result (200, 304 or an error kind).", ["result"],
    registry=REGISTRY,
)  # fmt: skip
FEED_BODY_UNCHANGED = Counter(
    "tradewire_feed_body_unchanged",
    "200 answers whose body equals the feed's last one: not parsed again.",
    registry=REGISTRY,
)
ITEMS_DISCOVERED = Counter(
    "tradewire_items_discovered", "New feed items queued for extraction.", registry=REGISTRY
)
ARTICLES = Counter(
    "tradewire_articles", "Articles by outcome (extracted, or refused with a reason).",
    ["status", "reason"], registry=REGISTRY,
)  # fmt: skip
EVENTS = Counter(
    "tradewire_events", "Events appended to the stream, and duplicates suppressed.", ["outcome"],
    registry=REGISTRY,
)  # fmt: skip
EXTRACT_SECONDS = Histogram(
    "tradewire_extract_seconds", "Time to extract one page (decode, trafilatura, clean).",
    buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10), registry=REGISTRY,
)  # fmt: skip

EVENT_LATENCY = Histogram(
    "tradewire_event_latency_seconds",
    "Time from publication (feed or page date) and from discovery (poller) to the event.",
    ["since"], buckets=(1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, 7 * 24 * 3600),
    registry=REGISTRY,
)  # fmt: skip
FEEDS_IN_BACKOFF = Gauge(
    "tradewire_feeds_in_backoff", "Feeds of this poller whose last poll failed.",
    registry=REGISTRY, multiprocess_mode="livesum",
)  # fmt: skip
WEBSUB_NOTIFICATIONS = Counter(
    "tradewire_websub_notifications",
    "WebSub pushes by result (queued, bad_signature, not_a_feed, no_subscription, too_large).",
    ["result"], registry=REGISTRY,
)  # fmt: skip
FEEDS_STALE = Gauge(
    "tradewire_feeds_stale",
    "Feeds of this poller silent for over 3x their usual cadence (min. 1 day).",
    registry=REGISTRY, multiprocess_mode="livesum",
)  # fmt: skip
# The denominator of the stale share that deploy/prometheus/alerts.yml alerts on.
FEEDS_LISTED = Gauge(
    "tradewire_feeds_listed", "Feeds in this poller's feed list.",
    registry=REGISTRY, multiprocess_mode="livesum",
)  # fmt: skip
WORKER_RESTARTS = Counter(
    "tradewire_worker_restarts",
    "Supervised worker processes that exited: recycled (planned, after max_jobs) or crashed.",
    ["child", "reason"], registry=REGISTRY,
)  # fmt: skip

# A labelled series exists only once a value is set, and rate() counts no increase into a
# series' first sample: the first polls, articles and events after a start would be missing
# from every rate and the dashboards would say "No data" for an idle but healthy pipeline.
# The label values every healthy run produces are therefore there from the start, at zero.
for _result in ("200", "304"):
    FEED_POLLS.labels(result=_result)
ARTICLES.labels(status="extracted", reason="")
for _outcome in ("emitted", "duplicate_suppressed", "near_duplicate"):
    EVENTS.labels(outcome=_outcome)
for _since in ("published", "discovered"):
    EVENT_LATENCY.labels(since=_since)
WEBSUB_NOTIFICATIONS.labels(result="queued")


def exposition_registry(multiprocess_dir: Path | None) -> CollectorRegistry:
    """The registry /metrics serves: this process's, or the sum over all processes of the
    command when they share a multiprocess directory."""
    if multiprocess_dir is None:
        return REGISTRY
    registry = CollectorRegistry()
    registry.register(_MultiProcessFiles(multiprocess_dir))
    return registry


# Held while a scrape reads the directory and while a dead process's files are folded into
# the totals, so a scrape never sees a process counted twice (or not at all) mid-fold.
_FILES_LOCK = threading.Lock()
# Files of kinds whose samples add up across processes, and the file their dead fold into.
_SUMMED_KINDS = ("counter", "histogram", "summary")
_RETIRED = "retired"


class _MultiProcessFiles(Collector):
    """prometheus-client's multiprocess sum, read under ``_FILES_LOCK``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def collect(self) -> Iterable[Metric]:
        with _FILES_LOCK:
            # A starting process creates its file empty and sizes it a moment later; it
            # holds no values yet, and reading it then would fail the whole scrape.
            files = [str(f) for f in self.directory.glob("*.db") if _size(f) >= 8]
            return list(MultiProcessCollector.merge(files, accumulate=True))  # type: ignore[no-untyped-call]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def retire_process(directory: Path, pid: int) -> None:
    """After process ``pid`` died: drop its live gauges and fold its counter, histogram and
    summary values into the directory's ``<kind>_retired.db``, then delete its files."""
    with _FILES_LOCK:
        mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]
        for kind in _SUMMED_KINDS:
            dead = directory / f"{kind}_{pid}.db"
            if dead.exists():
                _fold(dead, directory / f"{kind}_{_RETIRED}.db")
                dead.unlink()


def _fold(dead: Path, total: Path) -> None:
    """``total`` += ``dead``, key by key (per-process values of these kinds simply add up:
    histogram buckets are stored per bucket, not cumulative). Written aside and renamed in,
    so a failed write leaves the old total whole."""
    sums: dict[str, float] = defaultdict(float)
    for path in (total, dead):
        if _size(path) >= 8:
            for key, value, _, _ in MmapedDict.read_all_values_from_file(str(path)):  # type: ignore[no-untyped-call]
                sums[key] += value
    aside = total.with_suffix(".tmp")  # not *.db: scrapes never read it
    aside.unlink(missing_ok=True)
    out = MmapedDict(str(aside))  # type: ignore[no-untyped-call]
    try:
        for key, value in sums.items():
            out.write_value(key, value, 0.0)  # type: ignore[no-untyped-call]
    finally:
        out.close()  # type: ignore[no-untyped-call]
    aside.replace(total)


# What folding a damaged or vanished file raises; the caller logs it and carries on.
RETIRE_ERRORS = (OSError, RuntimeError, struct.error, UnicodeDecodeError)


class RedisStateCollector(Collector):
    """Queue depths, failed jobs, stream length, poller and feed ages and Redis's memory,
    read from Redis on each scrape (``rq_redis`` should fail fast: a probe client), so
    every process shows the shared picture. ``tradewire_redis_up`` is always there: 0 when
    Redis did not answer, and the other gauges are then left out."""

    def __init__(self, rq_redis: redis.Redis, stream_name: str) -> None:
        self.redis = rq_redis
        self.stream_name = stream_name

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("tradewire_redis_up", "1 when Redis answered this scrape.")
        try:
            families = [*self._queues(), *self._ages(), *self._memory()]
        except redis.RedisError:
            up.add_metric([], 0)  # readiness says what is wrong; metrics say that it is
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _queues(self) -> list[GaugeMetricFamily]:
        depth = GaugeMetricFamily(
            "tradewire_queue_depth", "Jobs waiting per queue.", labels=["queue"]
        )
        failed = GaugeMetricFamily(
            "tradewire_failed_jobs", "Jobs in the failed registry.", labels=["queue"]
        )
        stream = GaugeMetricFamily("tradewire_stream_length", "Entries on the event stream.")
        for name, counts in queue_counts(self.redis, with_workers=False).items():
            depth.add_metric([name], counts.waiting)
            failed.add_metric([name], counts.failed)
        stream.add_metric([], self.redis.xlen(self.stream_name))
        return [depth, failed, stream]

    def _ages(self) -> list[GaugeMetricFamily]:
        """Ages rather than timestamps: a key that expired (no poller for ten cycles, no
        successful poll for a week) reads as +Inf, which an alert's ``>`` catches, where a
        missing timestamp series would silence it."""
        now = time.time()
        heartbeat, success = self.redis.mget([keys.POLLER_HEARTBEAT, keys.FEEDS_LAST_SUCCESS])
        families = []
        for name, doc, raw in (
            ("tradewire_poller_heartbeat_age_seconds",
             "Seconds since a poller last finished a cycle (+Inf: none recently).", heartbeat),
            ("tradewire_feeds_last_success_age_seconds",
             "Seconds since a feed poll last succeeded (+Inf: none in a week).", success),
        ):  # fmt: skip
            family = GaugeMetricFamily(name, doc)
            family.add_metric([], math.inf if raw is None else max(0.0, now - float(raw)))
            families.append(family)
        return families

    def _memory(self) -> list[GaugeMetricFamily]:
        """Redis's own memory figures, so the dashboard needs no redis_exporter; left out
        where INFO is refused (an ACL user without it)."""
        try:
            info = self.redis.info("memory")
        except redis.ResponseError:
            return []
        used = GaugeMetricFamily("tradewire_redis_used_memory_bytes", "Redis used_memory.")
        used.add_metric([], float(info["used_memory"]))
        limit = GaugeMetricFamily(
            "tradewire_redis_maxmemory_bytes", "Redis maxmemory (0: no limit)."
        )
        limit.add_metric([], float(info.get("maxmemory", 0)))
        return [used, limit]
