"""Near-duplicates: the same wire story syndicated by several sites.

Fingerprints (pure): such copies arrive as nearly the same text with a different headline,
byline or closing line, and share most of their word 3-shingles; the ``SKETCH_SIZE``
smallest shingle hashes of each are then mostly the same values, so counting shared values
estimates their resemblance (Broder's bottom-k MinHash sketch). Independent reports of one
event (seeds 000 and 004) share almost no 3-shingles, as few as unrelated articles, and are
deliberately not duplicates: they are different stories about the same news.

The index (Redis): each sketch value is a set key holding the ids of the articles whose
sketch has it. One Lua script counts, per earlier article, how many of the new sketch's
values it shares, answers the best match at or over the threshold, and records the new
article if it matched none: atomic, so two workers handling two copies of one wire story
at once cannot both call theirs the original. Copies are not recorded (their matches
refresh the original's values instead): forty sites carrying one story would otherwise
make every later copy's lookup count forty ids per value. A value that ``max_members``
articles already share (a site's footer, a press-release formula) says nothing about which
story an article is: its set stops growing and is left out of the count, which also bounds
the script's work per lookup for months of articles.
"""

from __future__ import annotations

import heapq
import re
import zlib
from collections.abc import Sequence

import redis

from core import keys

SKETCH_SIZE = 32
# Shared sketch values out of SKETCH_SIZE above which two texts count as one story:
# half the sketch ~ resemblance >= 0.5, far above what different articles share (< 0.05).
DUPLICATE_SHARED = 16
_WORD = re.compile(r"\w+")


def sketch(text: str) -> list[int]:
    """The smallest 32-bit hashes of the text's lower-cased word 3-shingles."""
    words = _WORD.findall(text.lower())
    if len(words) < 3:
        return []
    hashes = {
        zlib.crc32(f"{words[i]} {words[i + 1]} {words[i + 2]}".encode())
        for i in range(len(words) - 2)
    }
    return heapq.nsmallest(SKETCH_SIZE, hashes)


_LOOKUP = """
local me = ARGV[1]
local threshold = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local max_members = tonumber(ARGV[5])
local counts = {}
local open = {}
for _, key in ipairs(KEYS) do
  if redis.call('SCARD', key) < max_members then
    open[#open + 1] = key
    for _, other in ipairs(redis.call('SMEMBERS', key)) do
      if other ~= me then counts[other] = (counts[other] or 0) + 1 end
    end
  end
end
local best, best_count = false, 0
for other, n in pairs(counts) do
  if n >= threshold and (n > best_count or (n == best_count and other < best)) then
    best, best_count = other, n
  end
end
-- A copy keeps its original's values alive but is not added: the sets then hold one id per
-- wire story however many sites carry it, and a later copy still finds the original.
for _, key in ipairs(open) do
  if not best then redis.call('SADD', key, me) end
  redis.call('EXPIRE', key, ttl)
end
if best then
  local root = redis.call('GET', ARGV[4] .. best)
  if root then best = root end
  if best == me then
    best = false  -- a retried job of the original meets its own copies
  else
    redis.call('SET', ARGV[4] .. me, best, 'EX', ttl)
  end
end
return best
"""


class DuplicateIndex:
    def __init__(
        self, client: redis.Redis, threshold: int, ttl_s: int, max_members: int = 1000
    ) -> None:
        self.redis = client
        self.threshold = threshold
        self.ttl_s = ttl_s
        self.max_members = max_members
        self._lookup = client.register_script(_LOOKUP)

    def originals_of(self, sketches: Sequence[tuple[str, list[int]]]) -> list[str | None]:
        """The id of the first article each one duplicates (or None), recording each, in
        one round trip and in order: a later one of them can be a copy of an earlier one."""
        pipe = self.redis.pipeline(transaction=False)
        looked_up = []
        for article_id, sketch in sketches:
            if sketch:
                self._lookup(
                    keys=[keys.sketch_value(value) for value in sketch],
                    args=[
                        article_id,
                        self.threshold,
                        self.ttl_s,
                        keys.duplicate_of(""),
                        self.max_members,
                    ],
                    client=pipe,
                )
                looked_up.append(article_id)
        found = dict(zip(looked_up, pipe.execute(), strict=True)) if looked_up else {}
        return [_text(found.get(article_id)) for article_id, _ in sketches]


def _text(value: object) -> str | None:
    if not value:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)
