"""Item claims: which articles were already queued, shared by the poller and the workers."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import redis
import redis.asyncio
import redis.exceptions

from core import keys
from core.urls import short_hash

# How long a claim on an article lasts before it is made durable by a successful enqueue.
CLAIM_TTL_S = 600

# A claim's value names its owner: "claimed:<owner>" while in hand, "seen:<owner>" once
# durable. The owner of a poller's claim is one poll; the owner of a worker's claim on a
# page's canonical URL is the queued article, which every retry of its job shares.
_CLAIM = """
local prior = redis.call('GET', KEYS[1])
if not prior then
  redis.call('SET', KEYS[1], 'claimed:' .. ARGV[1], 'EX', ARGV[2])
  return 1
end
if prior == 'claimed:' .. ARGV[1] or prior == 'seen:' .. ARGV[1] then return 1 end
if prior == 'claimed' or string.sub(prior, 1, 8) == 'claimed:' then return -1 end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == 'claimed:' .. ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclasses.dataclass(frozen=True)
class Claimed:
    """The outcome of ``ArticleClaims.claim``: the ids now ``mine``, and those another
    owner holds a claim on that is not yet durable (``in_flight``: queued by nobody yet,
    and maybe never, if that owner fails)."""

    mine: list[str]
    in_flight: list[str]


class ArticleClaims:
    """Which articles were already queued. A claim is taken before enqueueing (so two
    pollers never both queue one article) and made durable after, so a poller that dies
    in between loses nothing: its short claim expires and the next poll finds the item.
    Claims belong to an owner: the same owner claiming again (a retried job) gets its
    claim back instead of finding a duplicate."""

    def __init__(self, client: redis.Redis, claim_ttl_s: int, seen_ttl_s: int) -> None:
        self.redis = client
        self.claim_ttl_s = claim_ttl_s
        self.seen_ttl_s = seen_ttl_s
        self._claim = client.register_script(_CLAIM)
        self._release = client.register_script(_RELEASE)

    def claim(self, article_ids: Sequence[str], owner: str) -> Claimed:
        """Claim for ``owner`` the ids nobody else has claimed or seen."""
        pipe = self.redis.pipeline(transaction=False)
        for article_id in article_ids:
            self._claim(
                keys=[keys.seen_url(article_id)], args=[owner, self.claim_ttl_s], client=pipe
            )
        results = pipe.execute()
        pairs = list(zip(article_ids, results, strict=True))
        return Claimed(
            mine=[aid for aid, result in pairs if int(result) == 1],
            in_flight=[aid for aid, result in pairs if int(result) == -1],
        )

    def confirm(self, owned: Sequence[tuple[str, str]]) -> None:
        """Make claims durable (``seen_ttl_s``): (article id, its owner) pairs, one round trip."""
        if not owned:
            return
        pipe = self.redis.pipeline(transaction=False)
        for article_id, owner in owned:
            pipe.set(keys.seen_url(article_id), f"seen:{owner}", ex=self.seen_ttl_s)
        pipe.execute()

    def release(self, article_ids: Sequence[str], owner: str) -> None:
        """Give back ``owner``'s claims that are not yet durable (someone else's stay)."""
        if not article_ids:
            return
        pipe = self.redis.pipeline(transaction=False)
        for article_id in article_ids:
            self._release(keys=[keys.seen_url(article_id)], args=[owner], client=pipe)
        pipe.execute()

    def known_guids(self, feed_id: str, guids: Sequence[str]) -> set[str]:
        """The guids this feed already gave us: an entry whose link changed is not new."""
        pipe = self.redis.pipeline(transaction=False)
        for guid in guids:
            pipe.exists(keys.seen_guid(feed_id, short_hash(guid)))
        return {guid for guid, hit in zip(guids, pipe.execute(), strict=True) if hit}

    def remember_guids(self, feed_id: str, guids: Sequence[str]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for guid in guids:
            pipe.set(keys.seen_guid(feed_id, short_hash(guid)), "1", ex=self.seen_ttl_s)
        pipe.execute()


def script_sha(script: str) -> str:
    return hashlib.sha1(script.encode()).hexdigest()  # noqa: S324 - Redis names scripts so


async def execute_with_scripts(
    client: redis.asyncio.Redis, fill: Callable[[Any], None], scripts: Sequence[str]
) -> list[Any]:
    """Run the pipeline ``fill`` builds (EVALSHA of ``scripts`` among its commands), loading
    the scripts once when Redis does not know them (first use, a restart, a failover):
    no SCRIPT EXISTS round trip each time as redis-py's pipelines make, and no EVAL, which
    the service's Redis user may not run (deploy/redis/users.acl.template)."""
    for attempt in (1, 2):
        pipe = client.pipeline(transaction=False)
        fill(pipe)
        try:
            return list(await pipe.execute())
        except redis.exceptions.NoScriptError:
            if attempt == 2:
                raise
            for script in scripts:
                await client.script_load(script)
    raise AssertionError("unreachable")


_CLAIM_SHA, _RELEASE_SHA = script_sha(_CLAIM), script_sha(_RELEASE)


class AsyncArticleClaims:
    """``ArticleClaims`` on an asyncio client, for the poller's event loop: the same keys,
    values and scripts (both kinds of claims interoperate), one pipelined round trip per
    call."""

    def __init__(self, client: redis.asyncio.Redis, claim_ttl_s: int, seen_ttl_s: int) -> None:
        self.redis = client
        self.claim_ttl_s = claim_ttl_s
        self.seen_ttl_s = seen_ttl_s

    async def claim(self, article_ids: Sequence[str], owner: str) -> Claimed:
        if not article_ids:
            return Claimed(mine=[], in_flight=[])

        def fill(pipe: Any) -> None:
            for article_id in article_ids:
                pipe.evalsha(_CLAIM_SHA, 1, keys.seen_url(article_id), owner, self.claim_ttl_s)

        results = await execute_with_scripts(self.redis, fill, [_CLAIM])
        pairs = list(zip(article_ids, results, strict=True))
        return Claimed(
            mine=[aid for aid, result in pairs if int(result) == 1],
            in_flight=[aid for aid, result in pairs if int(result) == -1],
        )

    async def confirm(
        self, owned: Sequence[tuple[str, str]], feed_id: str = "", guids: Sequence[str] = ()
    ) -> None:
        """Make claims durable and remember the feed's guids, in one round trip."""
        if not owned and not guids:
            return
        pipe = self.redis.pipeline(transaction=False)
        for article_id, owner in owned:
            pipe.set(keys.seen_url(article_id), f"seen:{owner}", ex=self.seen_ttl_s)
        for guid in guids:
            pipe.set(keys.seen_guid(feed_id, short_hash(guid)), "1", ex=self.seen_ttl_s)
        await pipe.execute()

    async def release(self, article_ids: Sequence[str], owner: str) -> None:
        if not article_ids:
            return

        def fill(pipe: Any) -> None:
            for article_id in article_ids:
                pipe.evalsha(_RELEASE_SHA, 1, keys.seen_url(article_id), owner)

        await execute_with_scripts(self.redis, fill, [_RELEASE])

    async def known_guids(self, feed_id: str, guids: Sequence[str]) -> set[str]:
        if not guids:
            return set()
        pipe = self.redis.pipeline(transaction=False)
        for guid in guids:
            pipe.exists(keys.seen_guid(feed_id, short_hash(guid)))
        return {guid for guid, hit in zip(guids, await pipe.execute(), strict=True) if hit}
