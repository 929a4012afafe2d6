"""What an operator asks: ``tradewire status`` and ``tradewire failed list|retry``."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from typing import Any, cast

import redis

from core import keys, queues
from service.state import FeedStore


def feeds_problem(
    text_redis: redis.Redis, now: float, degraded_after_s: float, up_since: float | None = None
) -> str | None:
    """None while some feed poll succeeded (200/304) within ``degraded_after_s``; else what
    is wrong. A process up for less than that (``up_since``) is given the time to try."""
    raw = text_redis.get(keys.FEEDS_LAST_SUCCESS)
    limit = _span(degraded_after_s)
    if raw is None:
        if up_since is not None and now - up_since < degraded_after_s:
            return None
        return f"no feed poll has succeeded in the last {limit} (no network, or every feed down?)"
    age = now - float(raw)
    if age > degraded_after_s:
        return f"no feed poll has succeeded for {_span(age)} (limit {limit})"
    return None


def _span(seconds: float) -> str:
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.0f} min"


def feeds_check(client: redis.Redis, degraded_after_s: float) -> Callable[[], str | None]:
    """Degraded when no feed poll succeeded for ``degraded_after_s`` (counted from now at
    start, so a fresh process is given that long)."""
    up_since = time.time()

    def check() -> str | None:
        return feeds_problem(client, time.time(), degraded_after_s, up_since)

    return check


def status_report(
    text_redis: redis.Redis,
    rq_redis: redis.Redis,
    stream: str,
    now: float,
    feeds_degraded_after_s: float = 900.0,
) -> dict[str, Any]:
    """Queues, workers, feeds in backoff, poller heartbeat and the last events."""
    counts = {name: dataclasses.asdict(c) for name, c in queues.queue_counts(rq_redis).items()}
    feeds = FeedStore(text_redis).all_states()
    backoff = [
        {"url": feed.url, "errors": state.consecutive_errors, "last_status": state.last_status,
         "retry_in_s": round(state.next_poll_at - now)}
        for feed, state in feeds if state.consecutive_errors
    ]  # fmt: skip
    heartbeat = text_redis.get(keys.POLLER_HEARTBEAT)
    last_success = text_redis.get(keys.FEEDS_LAST_SUCCESS)
    problem = feeds_problem(text_redis, now, feeds_degraded_after_s)
    last = cast(list[tuple[str, dict[str, str]]], text_redis.xrevrange(stream, count=5))
    events = []
    for entry_id, fields in last:
        event = json.loads(fields["data"])
        events.append({
            "entry_id": entry_id, "event_type": fields["event_type"],
            "article_id": fields["article_id"], "title": event.get("title", "")[:80],
        })  # fmt: skip
    return {
        "queues": counts,
        "feeds": {"total": len(feeds), "in_backoff": len(backoff), "backoff": backoff[:20]},
        "checks": {
            "feeds": {
                "ok": problem is None,
                "degraded": problem is not None,
                "error": problem or "",
                "last_success_age_s": round(now - float(last_success), 1) if last_success else None,
            }
        },
        "poller_heartbeat_age_s": round(now - float(heartbeat), 1) if heartbeat else None,
        "stream": {"name": stream, "length": text_redis.xlen(stream)},
        "last_events": events,
    }


def render_status(report: dict[str, Any]) -> str:
    lines = ["queue      waiting  running  retries  failed  workers"]
    for name, q in report["queues"].items():
        lines.append(f"{name:<10}{q['waiting']:>8}{q['running']:>9}{q['scheduled_retries']:>9}"
                     f"{q['failed']:>8}{q['workers']:>9}")  # fmt: skip
    age = report["poller_heartbeat_age_s"]
    lines.append("")
    lines.append(f"poller: {'no heartbeat' if age is None else f'last cycle {age}s ago'}")
    feeds = report["feeds"]
    lines.append(f"feeds: {feeds['total']} total, {feeds['in_backoff']} in backoff")
    check = report["checks"]["feeds"]
    lines.append(f"feeds check: {'ok' if check['ok'] else 'DEGRADED: ' + check['error']}")
    for feed in feeds["backoff"]:
        lines.append(f"  {feed['last_status']:<14} errors={feed['errors']:<3} "
                     f"retry in {feed['retry_in_s']}s  {feed['url']}")  # fmt: skip
    stream = report["stream"]
    lines.append(f"stream {stream['name']}: {stream['length']} entries; last events:")
    for event in report["last_events"]:
        lines.append(
            f"  {event['entry_id']}  {event['event_type']:<16} {event['article_id']}  "
            f"{event['title']}"
        )
    return "\n".join(lines)
