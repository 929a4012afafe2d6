"""The reference consumer behind ``tradewire tail``: a consumer group, acknowledged after
each event is handled, and entries left pending by a dead consumer claimed back."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, cast

import redis

Entry = tuple[str, dict[str, str]]


def ensure_group(client: redis.Redis, stream: str, group: str, from_start: bool) -> None:
    """Create the group (and the stream) unless it exists; a new group starts at the end,
    or at the beginning with ``from_start``."""
    try:
        client.xgroup_create(stream, group, id="0" if from_start else "$", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def claim_abandoned(
    client: redis.Redis, stream: str, group: str, consumer: str, idle_ms: int
) -> list[Entry]:
    """Take over entries another consumer read but did not acknowledge for ``idle_ms``."""
    claimed: list[Entry] = []
    start = "0-0"
    while True:
        reply: list[Any] = client.xautoclaim(stream, group, consumer, idle_ms, start, count=100)
        next_start, entries = reply[0], reply[1]
        claimed.extend((entry_id, fields) for entry_id, fields in entries if fields is not None)
        if next_start in ("0-0", b"0-0"):
            return claimed
        start = next_start


def consume(
    client: redis.Redis,
    stream: str,
    group: str,
    consumer: str,
    handle: Callable[[Entry], None],
    *,
    claim_idle_ms: int = 60_000,
    block_ms: int = 5_000,
    limit: int = 0,
) -> int:
    """Handle entries until ``limit`` (0: forever); ack each one after ``handle`` returns,
    so a consumer killed mid-batch leaves the rest pending for another to claim."""
    done = 0
    for entry in _entries(client, stream, group, consumer, claim_idle_ms, block_ms):
        handle(entry)
        client.xack(stream, group, entry[0])
        done += 1
        if limit and done >= limit:
            break
    return done


def _entries(
    client: redis.Redis, stream: str, group: str, consumer: str, claim_idle_ms: int, block_ms: int
) -> Iterator[Entry]:
    yield from claim_abandoned(client, stream, group, consumer, claim_idle_ms)
    # Our own pending entries first (a restart of this consumer), then new ones.
    backlog = cast(list[Any], client.xreadgroup(group, consumer, {stream: "0"}, count=100))
    for _name, entries in backlog or []:
        yield from ((entry_id, fields) for entry_id, fields in entries if fields)
    while True:
        batch = cast(
            list[Any], client.xreadgroup(group, consumer, {stream: ">"}, count=100, block=block_ms)
        )
        for _name, entries in batch or []:
            yield from entries
