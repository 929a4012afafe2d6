"""Prometheus metrics. Counters are per process; queue depths and stream length are read
from Redis at scrape time, so any process's /metrics shows the shared picture."""

from __future__ import annotations

from collections.abc import Iterator

import redis
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from rq import Queue
from rq.registry import FailedJobRegistry

from service import keys

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
            for name in keys.QUEUES:
                queue = Queue(name, connection=self.redis)
                depth.add_metric([name], queue.count)
                failed.add_metric([name], FailedJobRegistry(queue=queue).count)
            stream.add_metric([], self.redis.xlen(self.stream_name))
        except redis.RedisError:
            return  # Redis down: readiness says so; metrics just omit these gauges
        yield depth
        yield failed
        yield stream
