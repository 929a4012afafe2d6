"""The reference consumer behind ``tradewire tail``: a consumer group, acknowledged after
each event is handled, and entries left pending by a dead consumer claimed back.

It outlives Redis restarts: on a lost connection it waits (with backoff) and starts over
from the group's position, which Redis keeps, so nothing is skipped and nothing acknowledged
is shown again.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any, cast

import redis
import structlog

Entry = tuple[str, dict[str, str]]

log = structlog.get_logger("tradewire.consumer")

# Waits between reconnection attempts: quick for a restart, capped for a long outage.
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 10.0


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


class _Backoff:
    """Waits between attempts to reach Redis, doubling up to a cap; back to the first
    wait as soon as a command succeeds again."""

    def __init__(self, sleep: Callable[[float], None], **context: str) -> None:
        self.sleep = sleep
        self.context = context
        self.delay = RETRY_FIRST_S

    def wait(self, exc: redis.RedisError) -> None:
        # Expected while Redis restarts: one warning line with the wait, no traceback.
        log.warning("consumer.redis_unavailable", **self.context, retry_in_s=self.delay,
                    error=str(exc))  # fmt: skip
        self.sleep(self.delay)
        self.delay = min(self.delay * 2, RETRY_MAX_S)

    def reset(self) -> None:
        self.delay = RETRY_FIRST_S


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
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Handle entries until ``limit`` (0: forever); ack each one after ``handle`` returns,
    so a consumer killed mid-batch leaves the rest pending for another to claim.

    A lost connection is waited out: each new attempt reads the group's position afresh
    (entries abandoned by others, then this consumer's pending ones, then new ones). A
    group that Redis lost (restarted without persistence) is created again at the start
    of the stream, so events added since the restart are not skipped.
    """
    done = 0
    backoff = _Backoff(sleep, stream=stream, group=group, consumer=consumer)
    group_lost = False
    while True:
        try:
            if group_lost:
                ensure_group(client, stream, group, from_start=True)
                group_lost = False
            entries = _entries(client, stream, group, consumer, claim_idle_ms, block_ms)
            backoff.reset()  # the first command of the attempt got an answer
            for entry in entries:
                handle(entry)
                client.xack(stream, group, entry[0])
                done += 1
                if limit and done >= limit:
                    return done
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            backoff.wait(exc)
        except redis.ResponseError as exc:
            if not str(exc).startswith("NOGROUP"):
                raise
            log.warning("consumer.group_lost", stream=stream, group=group, error=str(exc))
            group_lost = True


def wait_for_group(
    client: redis.Redis, stream: str, group: str, from_start: bool,
    sleep: Callable[[float], None] = time.sleep,
) -> None:  # fmt: skip
    """``ensure_group``, waiting (with backoff) while Redis cannot be reached."""
    backoff = _Backoff(sleep, stream=stream, group=group)
    while True:
        try:
            ensure_group(client, stream, group, from_start)
            return
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            backoff.wait(exc)


def _entries(
    client: redis.Redis, stream: str, group: str, consumer: str, claim_idle_ms: int, block_ms: int
) -> Iterator[Entry]:
    """Abandoned entries, then our own pending ones (after a restart of this consumer or
    of Redis), then new ones. The claim runs before the first entry is asked for, so a
    caller knows Redis answers once this returns."""
    claimed = claim_abandoned(client, stream, group, consumer, claim_idle_ms)
    return itertools.chain(
        claimed, _own_pending(client, stream, group, consumer),
        _new(client, stream, group, consumer, block_ms),
    )  # fmt: skip


def _new(
    client: redis.Redis, stream: str, group: str, consumer: str, block_ms: int
) -> Iterator[Entry]:
    while True:
        batch = cast(
            list[Any], client.xreadgroup(group, consumer, {stream: ">"}, count=100, block=block_ms)
        )
        for _name, entries in batch or []:
            yield from entries


def _own_pending(client: redis.Redis, stream: str, group: str, consumer: str) -> Iterator[Entry]:
    """Entries delivered to this consumer and not acknowledged, all of them, in order."""
    after = "0"
    while True:
        backlog = cast(list[Any], client.xreadgroup(group, consumer, {stream: after}, count=100))
        entries = [entry for _name, batch in backlog or [] for entry in batch]
        if not entries:
            return
        # An entry trimmed from the stream comes back without fields: nothing to show.
        yield from ((entry_id, fields) for entry_id, fields in entries if fields)
        after = entries[-1][0]
