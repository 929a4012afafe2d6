"""Every Redis key, queue and stream name the service uses. No other module spells a key."""

from __future__ import annotations

from collections.abc import Sequence

PREFIX = "tradewire"

# RQ queues: one queue per worker process, because RQ's dequeue is crash-safe only then.
EXTRACT_QUEUE = "extract"
TAG_QUEUE = "tag"
QUEUES = (EXTRACT_QUEUE, TAG_QUEUE)

# Poller: a sorted set of feed ids scored by the next due time (a lease pushes it forward),
# a hash of each feed's definition and one of its polling state.
FEEDS_DUE = f"{PREFIX}:feeds:due"
FEEDS_DEFS = f"{PREFIX}:feeds:defs"
POLLER_HEARTBEAT = f"{PREFIX}:poller:heartbeat"
# When a feed poll last succeeded (200 or 304), for the feeds health check and `status`.
FEEDS_LAST_SUCCESS = f"{PREFIX}:feeds:last_success"


def feed_state(feed_id: str) -> str:
    return f"{PREFIX}:feed:{feed_id}"


def sitemap_state(feed_id: str) -> str:
    """A sitemap source's watermark, current children and their validators (expires)."""
    return f"{PREFIX}:sitemap:{feed_id}"


def backfill_state(source_id: str) -> str:
    """A backfill's progress: the child sitemaps done, so a restart resumes (expires)."""
    return f"{PREFIX}:backfill:{source_id}"


def seen_url(article_id: str) -> str:
    """Set once an article has been queued; its value says how far it got."""
    return f"{PREFIX}:seen:{article_id}"


def seen_guid(feed_id: str, guid_hash: str) -> str:
    return f"{PREFIX}:guid:{feed_id}:{guid_hash}"


# Corpus: the sequence counter behind NNN and the number given to each article.
CORPUS_SEQ = f"{PREFIX}:corpus:seq"
# Hash: each corpus directory a worker has written to (its id -> host:path); one shared
# directory means one field. Replay and retag refuse a corpus that is one of several.
CORPUS_DIRS = f"{PREFIX}:corpus:dirs"


def corpus_number(article_id: str) -> str:
    return f"{PREFIX}:corpus:num:{article_id}"


# Emitter: the entry id an article's created event got on a stream, the proof it was emitted.
def emitted(stream: str, article_id: str) -> str:
    return f"{PREFIX}:emitted:{{{stream}}}:{article_id}"


# Near-duplicates: article ids per sketch value, and the original each duplicate points to.
def sketch_value(value: int) -> str:
    return f"{PREFIX}:nd:{value}"


def duplicate_of(article_id: str) -> str:
    return f"{PREFIX}:dupof:{article_id}"


# Per-host politeness: the leased download slots of a host and when its last one started.
def host_slots(host: str) -> str:
    return f"{PREFIX}:host:{host}:slots"


def host_last_start(host: str) -> str:
    return f"{PREFIX}:host:{host}:last"


# The tagger's last verdict on an article, so a re-tag knows what changed.
def verdict(article_id: str) -> str:
    return f"{PREFIX}:verdict:{article_id}"


def job_id(queue: str, article_ids: Sequence[str]) -> str:
    """``extract-<id>`` for one article, ``extract-<first id>_x<n>`` for a batch of n, so a
    batch split into single jobs never reuses the batch's own id."""
    first, n = article_ids[0], len(article_ids)
    return f"{queue}-{first}" if n == 1 else f"{queue}-{first}_x{n}"


# WebSub: one hash per subscription (hub, topic, secret, state, lease end), living the lease
# plus a margin; and the feeds whose subscription is live, scored by when the lease ends.
WEBSUB_LEASES = f"{PREFIX}:websub:leases"


def websub_subscription(feed_id: str) -> str:
    return f"{PREFIX}:websub:sub:{feed_id}"


# Stories (workers/story_redis.py). Every one expires: document frequencies per week, posting
# lists and article profiles after the story window, stories after story_ttl_s unless they grow.
def story_df(week: int) -> str:
    return f"{PREFIX}:story:df:{week}"


def story_posting(index_key: str) -> str:
    # A sorted set by minute published; the lists that ``story:ix:`` named before expire
    # unread (a store of another type under the old name would refuse the new commands).
    return f"{PREFIX}:story:ixm:{index_key}"


def story_profile(article_id: str) -> str:
    return f"{PREFIX}:story:art:{article_id}"


def story(story_id: str) -> str:
    return f"{PREFIX}:story:{story_id}"


def story_sources(story_id: str) -> str:
    return f"{PREFIX}:story:{story_id}:sources"


def story_members(story_id: str) -> str:
    return f"{PREFIX}:story:{story_id}:members"


def story_update_gate(story_id: str) -> str:
    """Set while a story.updated for the story is being held back (the rate limit)."""
    return f"{PREFIX}:story:{story_id}:gate"


# Stories by last activity (sorted set, scored by Unix time), for `tradewire stories`.
STORIES_RECENT = f"{PREFIX}:stories:recent"
# Every story key but STORIES_RECENT: what `recluster` clears before it rebuilds.
STORY_KEYS_PATTERN = f"{PREFIX}:story:*"
