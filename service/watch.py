"""``tradewire status --watch``: the dashboard's key figures, live in the terminal.

For an operator without Grafana. Each refresh reads what ``tradewire status`` reads from
Redis (queues, workers, poller heartbeat, feeds, stream) plus Redis's memory, and, when the
health port of a local ``tradewire run``/``poll``/``worker`` answers, its /metrics: polls by
result, stale feeds, articles by status, events by outcome, discovery-to-event latency and
worker restarts, totals since that process started. Rates are the change since the last refresh.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import redis
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from core.connection import connect
from core.settings import Settings
from service.status import status_report

LATENCY = "tradewire_event_latency_seconds_bucket"
QUEUE_COLUMNS = {"waiting": "waiting", "running": "running", "retries": "scheduled_retries",
                 "failed": "failed", "workers": "workers"}  # fmt: skip
# Gauges summed over the processes of the scraped command.
GAUGES = ("tradewire_feeds_listed", "tradewire_feeds_stale")


@dataclasses.dataclass
class Snapshot:
    at: float
    report: dict[str, Any] | None  # None: Redis did not answer (``error`` says why)
    memory: dict[str, float] | None
    metrics: dict[str, Any] | None  # None: the metrics endpoint did not answer
    error: str = ""


def metric_figures(text: str) -> dict[str, Any]:
    """Totals by label from a /metrics page, and discovery-to-event latency quantiles."""
    totals: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    buckets: dict[float, float] = defaultdict(float)
    wanted = {
        "tradewire_feed_polls_total": "result", "tradewire_articles_total": "status",
        "tradewire_events_total": "outcome", "tradewire_worker_restarts_total": "reason",
    }  # fmt: skip
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in wanted:
                totals[sample.name][sample.labels.get(wanted[sample.name], "")] += sample.value
            elif sample.name in GAUGES:
                totals[sample.name][""] += sample.value
            elif sample.name == LATENCY and sample.labels.get("since") == "discovered":
                buckets[float(sample.labels["le"])] += sample.value
    figures: dict[str, Any] = {name: dict(totals[name]) for name in wanted}
    figures |= {name: totals[name][""] for name in GAUGES}
    ordered = sorted(buckets.items())
    figures["latency_p50_s"] = bucket_quantile(0.5, ordered)
    figures["latency_p99_s"] = bucket_quantile(0.99, ordered)
    return figures


def bucket_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Prometheus's histogram_quantile over cumulative ``(le, count)`` buckets, sorted; None
    without observations."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower  # in the open-ended bucket: its lower bound is all one can say
            return lower + (bound - lower) * (rank - below) / max(count - below, 1e-9)
        lower, below = bound, count
    return lower


def take_snapshot(
    text_redis: redis.Redis,
    rq_redis: redis.Redis,
    stream: str,
    degraded_after_s: float,
    metrics_url: str | None,
) -> Snapshot:
    now = time.time()
    metrics = _scrape(metrics_url) if metrics_url else None
    try:
        report = status_report(text_redis, rq_redis, stream, now, degraded_after_s)
        memory = _memory(text_redis)
    except redis.RedisError as exc:
        return Snapshot(now, None, None, metrics, error=f"Redis unreachable: {exc}"[:200])
    return Snapshot(now, report, memory, metrics)


def _memory(client: redis.Redis) -> dict[str, float] | None:
    """Redis's used and max memory; None where INFO is refused (an ACL user without it)."""
    try:
        info = client.info("memory")
    except redis.ResponseError:
        return None
    return {"used": float(info["used_memory"]), "max": float(info.get("maxmemory", 0))}


def _scrape(url: str) -> dict[str, Any] | None:
    try:
        reply = httpx.get(url, timeout=0.5)
        reply.raise_for_status()
    except httpx.HTTPError:
        return None
    return metric_figures(reply.text)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never (or too long ago)"
    return f"{seconds:.0f} s ago" if seconds < 120 else f"{seconds / 60:.0f} min ago"


def _bytes(value: float) -> str:
    return f"{value / 2**20:.1f} MiB"


def _labels(totals: dict[str, float]) -> str:
    shown = [f"{name or '-'} {value:.0f}" for name, value in sorted(totals.items()) if value]
    return ", ".join(shown) or "0"


def _rate(now: Snapshot, before: Snapshot | None, value: Callable[[Snapshot], float | None]) -> str:
    if before is None:
        return ""
    current, previous = value(now), value(before)
    if current is None or previous is None or now.at <= before.at:
        return ""
    return f"  ({max(0.0, current - previous) / (now.at - before.at):.1f}/s)"


def _stream_length(snapshot: Snapshot) -> float | None:
    return float(snapshot.report["stream"]["length"]) if snapshot.report else None


def _extracted(snapshot: Snapshot) -> float | None:
    if snapshot.metrics is None:
        return None
    return float(snapshot.metrics["tradewire_articles_total"].get("extracted", 0.0))


def render(now: Snapshot, before: Snapshot | None, metrics_url: str | None) -> Group:
    stamp = datetime.fromtimestamp(now.at, UTC).strftime("%H:%M:%S UTC")
    figures = Table(title=f"tradewire — {stamp}", show_header=False, title_justify="left")
    figures.add_column("figure", style="bold")
    figures.add_column("value")
    if now.report is None:
        figures.add_row("redis", f"[red]{now.error}[/red]")
        return Group(figures)
    _redis_rows(figures, now, before)
    _metric_rows(figures, now, before, metrics_url)
    queues = Table("queue", *QUEUE_COLUMNS)
    for name, q in now.report["queues"].items():
        queues.add_row(name, *(str(q[column]) for column in QUEUE_COLUMNS.values()))
    return Group(figures, queues)


def _redis_rows(figures: Table, now: Snapshot, before: Snapshot | None) -> None:
    assert now.report is not None
    report, memory = now.report, now.memory
    if memory is None:
        figures.add_row("redis", "up, memory not readable (INFO refused)")
    else:
        limit = _bytes(memory["max"]) if memory["max"] else "no maxmemory"
        figures.add_row("redis", f"up, memory {_bytes(memory['used'])} of {limit}")
    figures.add_row("poller cycle", _age(report["poller_heartbeat_age_s"]))
    check = report["checks"]["feeds"]
    degraded = "" if check["ok"] else f"  [yellow]DEGRADED: {check['error']}[/yellow]"
    figures.add_row("last feed poll ok", _age(check["last_success_age_s"]) + degraded)
    feeds = report["feeds"]
    figures.add_row("feeds", f"{feeds['total']} listed, {feeds['in_backoff']} in backoff")
    stream = report["stream"]
    figures.add_row("events on stream", f"{stream['length']}{_rate(now, before, _stream_length)}")


def _metric_rows(
    figures: Table, now: Snapshot, before: Snapshot | None, metrics_url: str | None
) -> None:
    metrics = now.metrics
    if metrics is None:
        figures.add_row("metrics", f"[dim]not reachable at {metrics_url or '(none given)'}[/dim]")
        return
    figures.add_row("feed polls", _labels(metrics["tradewire_feed_polls_total"]))
    stale, listed = metrics["tradewire_feeds_stale"], metrics["tradewire_feeds_listed"]
    figures.add_row("stale feeds", f"{stale:.0f} of {listed:.0f} this poller polls")
    articles = _labels(metrics["tradewire_articles_total"])
    figures.add_row("articles", articles + _rate(now, before, _extracted))
    figures.add_row("events", _labels(metrics["tradewire_events_total"]))
    p50, p99 = metrics["latency_p50_s"], metrics["latency_p99_s"]
    latency = "no events yet" if p99 is None else f"p50 {p50:.1f} s, p99 {p99:.1f} s"
    figures.add_row("discovery → event", latency)
    figures.add_row("worker restarts", _labels(metrics["tradewire_worker_restarts_total"]))


def watch(
    take: Callable[[], Snapshot],
    console: Console,
    metrics_url: str | None,
    interval_s: float = 1.0,
    count: int | None = None,
) -> int:
    """Refresh every ``interval_s`` until Ctrl-C, or ``count`` times (for scripts, tests)."""
    before: Snapshot | None = None
    now = take()
    shown = 1
    with Live(render(now, None, metrics_url), console=console, auto_refresh=False) as live:
        try:
            while count is None or shown < count:
                time.sleep(interval_s)
                before, now = now, take()
                live.update(render(now, before, metrics_url), refresh=True)
                shown += 1
        except KeyboardInterrupt:
            pass
    return 0


def watch_command(
    settings: Settings, metrics_url: str | None, interval_s: float, count: int | None
) -> int:
    """The CLI's entry: the metrics of this host's health port unless told otherwise.
    Fail-fast clients: a Redis that goes away shows as such at the next refresh, instead
    of the table freezing through the retries a worker's client makes."""
    url = metrics_url or f"http://127.0.0.1:{settings.health_port}/metrics"
    text_redis = connect(settings, decode=True, probe=True)
    rq_redis = connect(settings, decode=False, probe=True)

    def take() -> Snapshot:
        return take_snapshot(
            text_redis, rq_redis, settings.stream_name, settings.feeds_degraded_after_s, url
        )

    return watch(take, Console(), url, max(0.1, interval_s), count)
