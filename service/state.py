"""Feed registry, per-feed polling state and article claims in Redis (the poller's edge).

Feeds live in a sorted set scored by when each is next due. A poller *claims* due feeds
with one Lua script that also pushes their score forward by a lease, so several pollers on
one Redis never take the same feed in one cycle, and a feed whose poller died is due again
when the lease runs out.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import random
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

import redis
import redis.asyncio

from core import keys
from core.claims import execute_with_scripts, script_sha
from core.models import Feed

_CLAIM_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], 'XX', ARGV[2], member)
end
return due
"""


# The definitions and states of claimed feeds as ONE JSON reply: redis-py's asyncio parser
# costs ~5 us of Python per reply element, and a state hash is 26 of them, so a pipeline of
# HGETALLs for 256 feeds parsed ~7,000 elements in one stretch that blocked the event loop.
# KEYS: the definitions hash, then each feed's state hash; ARGV: the feed ids.
_LOAD = """
local defs = redis.call('HMGET', KEYS[1], unpack(ARGV))
local states = {}
for i = 2, #KEYS do states[i - 1] = redis.call('HGETALL', KEYS[i]) end
return cjson.encode({defs, states})
"""
# Feeds' states and due times from one JSON argument (one packed argument instead of 27
# per feed): ARGV[1] = [[feed id, next_poll_at, field, value, ...], ...], in KEYS' order
# after the due set.
_SAVE = """
local rows = cjson.decode(ARGV[1])
for i, row in ipairs(rows) do
  redis.call('HSET', KEYS[i + 1], unpack(row, 3))
  redis.call('ZADD', KEYS[1], 'XX', row[2], row[1])
end
return #rows
"""

_CLAIM_DUE_SHA, _LOAD_SHA, _SAVE_SHA = map(script_sha, (_CLAIM_DUE, _LOAD, _SAVE))


@dataclasses.dataclass(frozen=True)
class FeedState:
    """What the poller remembers about one feed between polls (survives restarts)."""

    etag: str = ""
    last_modified: str = ""
    consecutive_errors: int = 0
    last_status: str = ""  # "200", "304" or an error kind
    last_error: str = ""
    last_polled_at: float = 0.0
    last_new_item_at: float = 0.0
    next_poll_at: float = 0.0
    cadence_s: float = 0.0  # the interval learnt from the feed's rhythm (0: not yet known)
    title: str = ""
    # The last 200 body whose items were all settled (a hash, 32 hex digits) and the
    # feed's own polling hint then: the same body again is not parsed again.
    body_hash: str = ""
    hint_s: float = 0.0

    def to_redis(self) -> dict[str, str]:
        # Not dataclasses.asdict: its deep copy costs ~9x this, once per poll.
        return {name: str(getattr(self, name)) for name in _STATE_FIELDS}

    @classmethod
    def from_redis(cls, raw: dict[str, str]) -> FeedState:
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            if field.name not in raw:
                continue
            text = raw[field.name]
            if field.type in ("int",):
                values[field.name] = int(float(text or 0))
            elif field.type in ("float",):
                values[field.name] = float(text or 0)
            else:
                values[field.name] = text
        return cls(**values)


_STATE_FIELDS = tuple(field.name for field in dataclasses.fields(FeedState))


class FeedStore:
    """Reads and writes the feed registry and state with a decoded (str) Redis client."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._claim = client.register_script(_CLAIM_DUE)

    def register(
        self,
        feeds: Sequence[Feed],
        now: float,
        spread_s: float = 0.0,
        rng: random.Random | None = None,
    ) -> int:
        """Make Redis hold exactly this feed list. New feeds become due over the next
        ``spread_s`` seconds (100,000 new feeds must not all be due in the same second);
        known feeds keep their schedule, so a restart does not re-poll everything at once.
        Returns how many feeds were new."""
        wanted = {feed.feed_id: feed for feed in feeds}
        known = set(cast(list[str], self.redis.hkeys(keys.FEEDS_DEFS)))
        pick = rng or random.Random()
        pipe = self.redis.pipeline(transaction=False)
        for feed_id, feed in wanted.items():
            pipe.hset(keys.FEEDS_DEFS, feed_id, json.dumps(dataclasses.asdict(feed)))
            pipe.zadd(keys.FEEDS_DUE, {feed_id: now + pick.uniform(0, spread_s)}, nx=True)
        for gone in known - set(wanted):
            pipe.hdel(keys.FEEDS_DEFS, gone)
            pipe.zrem(keys.FEEDS_DUE, gone)
            pipe.delete(keys.feed_state(gone))
        pipe.execute()
        return len(set(wanted) - known)

    def claim_due(self, now: float, lease_s: float, limit: int) -> list[str]:
        """Atomically take up to ``limit`` due feeds, leasing them for ``lease_s`` seconds."""
        result: list[str] = self._claim(keys=[keys.FEEDS_DUE], args=[now, now + lease_s, limit])
        return result

    def feeds(self, feed_ids: Iterable[str]) -> list[Feed | None]:
        ids = list(feed_ids)
        if not ids:
            return []
        raws = self.redis.hmget(keys.FEEDS_DEFS, ids)
        return [Feed(**json.loads(raw)) if raw else None for raw in raws]

    def state(self, feed_id: str) -> FeedState:
        raw = cast(dict[str, str], self.redis.hgetall(keys.feed_state(feed_id)))
        return FeedState.from_redis(raw)

    def all_states(self) -> list[tuple[Feed, FeedState]]:
        out: list[tuple[Feed, FeedState]] = []
        defs = cast(dict[str, str], self.redis.hgetall(keys.FEEDS_DEFS))
        for feed_id, raw in sorted(defs.items()):
            out.append((Feed(**json.loads(raw)), self.state(feed_id)))
        return out


def _state_of(flat: Any) -> FeedState:
    """A state from HGETALL's flat field/value list as cjson encodes it (an empty Lua table,
    a feed never polled, comes out as a JSON object)."""
    return FeedState.from_redis(dict(zip(flat[::2], flat[1::2], strict=True)) if flat else {})


class AsyncFeedStore:
    """The poller's side of ``FeedStore`` on an asyncio client (decoded): what its event
    loop reads and writes each turn, each call one pipelined round trip."""

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self.redis = client

    async def claim_due(self, now: float, lease_s: float, limit: int) -> list[str]:
        """Atomically take up to ``limit`` due feeds, leasing them for ``lease_s`` seconds."""

        def fill(pipe: Any) -> None:
            pipe.evalsha(_CLAIM_DUE_SHA, 1, keys.FEEDS_DUE, now, now + lease_s, limit)

        [due] = await execute_with_scripts(self.redis, fill, [_CLAIM_DUE])
        return [str(feed_id) for feed_id in due]

    async def load(self, feed_ids: Sequence[str]) -> list[tuple[str, Feed | None, FeedState]]:
        """The definitions and states of claimed feeds, in one round trip."""
        if not feed_ids:
            return []
        state_keys = [keys.feed_state(feed_id) for feed_id in feed_ids]

        def fill(pipe: Any) -> None:
            pipe.evalsha(_LOAD_SHA, 1 + len(state_keys), keys.FEEDS_DEFS, *state_keys, *feed_ids)

        [reply] = await execute_with_scripts(self.redis, fill, [_LOAD])
        raws, states = json.loads(reply)
        return [
            (feed_id, Feed(**json.loads(raw)) if raw else None, _state_of(flat))
            for feed_id, raw, flat in zip(feed_ids, raws, states, strict=True)
        ]

    async def save_many(self, states: Mapping[str, FeedState]) -> None:
        """Several feeds' states and due times in one round trip."""
        if not states:
            return
        rows = []
        for feed_id, state in states.items():
            fields = state.to_redis()
            rows.append([feed_id, fields["next_poll_at"], *itertools.chain(*fields.items())])
        state_keys = [keys.feed_state(feed_id) for feed_id in states]

        payload = json.dumps(rows, ensure_ascii=False)  # once, though fill may run twice

        def fill(pipe: Any) -> None:
            pipe.evalsha(_SAVE_SHA, 1 + len(state_keys), keys.FEEDS_DUE, *state_keys, payload)

        await execute_with_scripts(self.redis, fill, [_SAVE])

    async def next_due_at(self) -> float | None:
        first = await self.redis.zrange(keys.FEEDS_DUE, 0, 0, withscores=True)
        return float(first[0][1]) if first else None
