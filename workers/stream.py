"""The emitter: one event per article on the Redis stream, idempotently.

One Lua script checks the article's "emitted" key, XADDs and records the entry id, so a
retried job, two racing workers or a worker killed between XADD and its bookkeeping can
never put a second ``article.created`` for one article on the stream (``MULTI`` cannot make
the append conditional). Entry fields stay flat strings: ``event_type``, ``article_id``,
``data`` (the JSON event).

Trimming is by age (``MINID``, default 7 days) so entries a slow consumer group has not
read yet survive a burst, with an approximate ``MAXLEN`` as a hard ceiling.
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

import redis
import structlog

from core import keys
from core.connection import REPLICA_ACK_TIMEOUT_MS, replicas_to_wait
from core.settings import Settings
from workers.events import ARTICLE_CREATED

log = structlog.get_logger("tradewire.stream")
# Without an acknowledging replica, emit alone for this long before asking again.
ALONE_RECHECK_S = 10.0

_EMIT = """
local once = ARGV[1] == '1'
if once then
  local prior = redis.call('GET', KEYS[2])
  if prior then return {0, prior} end
end
local id = redis.call('XADD', KEYS[1], '*',
                      'event_type', ARGV[5], 'article_id', ARGV[6], 'data', ARGV[7])
if ARGV[2] == 'minid' then
  -- Age is measured on Redis's clock, never the emitting host's: a worker whose clock
  -- runs days ahead must not trim what consumer groups have not read. The entry just
  -- added has an id at or after Redis's now, so it is never trimmed here.
  local now = redis.call('TIME')
  local min_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - tonumber(ARGV[3])
  redis.call('XTRIM', KEYS[1], 'MINID', '~', string.format('%d-0', min_ms))
end
redis.call('XTRIM', KEYS[1], 'MAXLEN', '~', ARGV[4])
if once then redis.call('SET', KEYS[2], id, 'EX', ARGV[8]) end
return {1, id}
"""


@dataclasses.dataclass(frozen=True)
class EmitResult:
    entry_id: str
    created: bool  # False when the article's event was already on the stream


class Emitter:
    """Appends events to a stream; ``article.created`` at most once per article id."""

    def __init__(self, client: redis.Redis, settings: Settings, stream: str | None = None) -> None:
        self.redis = client
        self.settings = settings
        self.stream = stream or settings.stream_name
        self._script = client.register_script(_EMIT)
        self.replicas = replicas_to_wait(settings)
        # Until when WAIT is left out: set when no replica answered (WAIT would only block
        # for its whole timeout on every event while the deployment has none).
        self._alone_until = 0.0

    def emit(self, event: dict[str, Any]) -> EmitResult:
        """Append ``event``; under Sentinel, return once a replica holds it too.

        Replication is asynchronous: a primary killed right after the XADD takes the entry
        (and the article's "emitted" key) with it, while the caller would go on to record
        on disk that the article was announced, and the event would never come again.
        WAIT is sent on the same connection as the script (one pipeline), so a connection
        lost in between fails the pipeline, and the retry runs the script again on the
        promoted replica, where a lost entry is appended anew and a kept one is found.
        """
        once = event["event_type"] == ARTICLE_CREATED
        pipe = self.redis.pipeline(transaction=False)
        self._script(
            keys=[self.stream, keys.emitted(self.stream, event["article_id"])],
            args=[
                "1" if once else "0",
                self.settings.stream_trim,
                self.settings.stream_retention_s * 1000,
                self.settings.stream_maxlen,
                event["event_type"],
                event["article_id"],
                json.dumps(event, ensure_ascii=False, separators=(",", ":")),
                self.settings.emitted_ttl_s,
            ],
            client=pipe,
        )
        waits = self.replicas > 0 and time.monotonic() >= self._alone_until
        if waits:
            pipe.wait(self.replicas, REPLICA_ACK_TIMEOUT_MS)
        replies = pipe.execute()
        created, entry_id = replies[0]
        if waits and replies[1] < self.replicas:
            # No replica (the other server is down or far behind): go on, as a lone
            # server would; the event is on the primary, which is all that is left.
            self._alone_until = time.monotonic() + ALONE_RECHECK_S
            log.warning("stream.replica_ack_missing", article_id=event["article_id"],
                        replicas=replies[1], wanted=self.replicas)  # fmt: skip
        return EmitResult(entry_id=_text(entry_id), created=bool(created))


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def record_verdict(client: redis.Redis, article_id: str, tags: dict[str, Any], ttl_s: int) -> None:
    """Remember the tagger's last verdict (after the event is on the stream), for retagging."""
    client.set(keys.verdict(article_id), json.dumps(tags, ensure_ascii=False), ex=ttl_s)


def last_verdict(client: redis.Redis, article_id: str) -> dict[str, Any] | None:
    raw = client.get(keys.verdict(article_id))
    return json.loads(raw) if raw else None
