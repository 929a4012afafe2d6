"""Prometheus metrics.

Counters and histograms are written by every process of one ``tradewire`` command (the
poller and its supervised worker children) into prometheus-client's multiprocess
directory, which the CLI creates and names in PROMETHEUS_MULTIPROC_DIR before anything
imports this module; the command's /metrics sums them. Queue depths, failed jobs and the
stream length are read from Redis at scrape time, so every process shows the shared picture.

Each process writes its own files, so a recycled worker would leave its files behind
forever (thousands of them slow every scrape): the supervisor retires a dead child's files,
folding its counters and histograms into one file per kind (totals never go backwards) and
dropping its live gauges. Every gauge here is a ``live*`` one, so nothing else piles up.
"""

from __future__ import annotations

import struct
import threading
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

from core.queues import queue_counts

REGISTRY = CollectorRegistry()

FEED_POLLS = Counter(
    "tradewire_feed_polls", "Feed polls by result (200, 304 or an error kind).", ["result"],
    registry=REGISTRY,
)  # fmt: skip
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
    """Queue depths, failed jobs and stream length, read from Redis on each scrape."""

    def __init__(self, rq_redis: redis.Redis, stream_name: str) -> None:
        self.redis = rq_redis
        self.stream_name = stream_name

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily(
            "tradewire_queue_depth", "Jobs waiting per queue.", labels=["queue"]
        )
        failed = GaugeMetricFamily(
            "tradewire_failed_jobs", "Jobs in the failed registry.", labels=["queue"]
        )
        stream = GaugeMetricFamily("tradewire_stream_length", "Entries on the event stream.")
        try:
            for name, counts in queue_counts(self.redis, with_workers=False).items():
                depth.add_metric([name], counts.waiting)
                failed.add_metric([name], counts.failed)
            stream.add_metric([], self.redis.xlen(self.stream_name))
        except redis.RedisError:
            return  # Redis down: readiness says so; metrics just omit these gauges
        yield depth
        yield failed
        yield stream
