"""Prometheus metrics.

Counters and histograms are written by every process of one ``tradewire`` command (the
poller and its supervised worker children) into prometheus-client's multiprocess
directory, which the CLI creates and names in PROMETHEUS_MULTIPROC_DIR before anything
imports this module; the command's /metrics sums them. Queue depths, failed jobs and the
stream length are read from Redis at scrape time, so every process shows the shared picture.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import redis
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
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
    MultiProcessCollector(registry, path=str(multiprocess_dir))  # type: ignore[no-untyped-call]
    return registry


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
