"""What an operator asks: ``tradewire status`` and ``tradewire failed list|retry``."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, cast

import redis

from core import keys, queues
from service.state import FeedStore


def status_report(
    text_redis: redis.Redis, rq_redis: redis.Redis, stream: str, now: float
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
