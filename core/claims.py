"""Item claims: which articles were already queued, shared by the poller and the workers."""

from __future__ import annotations

from collections.abc import Sequence

import redis

from core import keys
from core.urls import short_hash

# How long a claim on an article lasts before it is made durable by a successful enqueue.
CLAIM_TTL_S = 600


class ArticleClaims:
    """Which articles were already queued. A claim is taken before enqueueing (so two
    pollers never both queue one article) and made durable after, so a poller that dies
    in between loses nothing: its short claim expires and the next poll finds the item."""

    def __init__(self, client: redis.Redis, claim_ttl_s: int, seen_ttl_s: int) -> None:
        self.redis = client
        self.claim_ttl_s = claim_ttl_s
        self.seen_ttl_s = seen_ttl_s

    def claim(self, article_ids: Sequence[str]) -> list[str]:
        """The ids among ``article_ids`` that nobody had seen; they are now claimed."""
        pipe = self.redis.pipeline(transaction=False)
        for article_id in article_ids:
            pipe.set(keys.seen_url(article_id), "claimed", nx=True, ex=self.claim_ttl_s)
        results = pipe.execute()
        return [aid for aid, ok in zip(article_ids, results, strict=True) if ok]

    def confirm(self, article_ids: Sequence[str]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for article_id in article_ids:
            pipe.set(keys.seen_url(article_id), "queued", ex=self.seen_ttl_s)
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

    def release(self, article_ids: Sequence[str]) -> None:
        if article_ids:
            self.redis.delete(*(keys.seen_url(a) for a in article_ids))
