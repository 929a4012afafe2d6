"""Stories in Redis: the service's store behind ``workers.stories.assign``, and each story's
bookkeeping (first seen, articles, distinct sources, representative title).

Bounds: document frequencies are one hash per week, kept ``DF_WEEKS`` + 1 weeks; a posting
list keeps the ``posting_limit`` most recently published article ids (a sorted set by minute)
and expires a window after its last write; an article's profile expires a window after it
was stored; a story's keys expire ``story_ttl_s`` after it last grew, and its member list
keeps the newest ``MEMBERS_KEPT``. Work per article, whatever the store holds: three round
trips (``assign``: frequencies, candidates, store). The tag job (``Stories.place``) pays
three in all: its retry check rides with the frequencies, and the article is stored in the
pipeline of its story's bookkeeping (one script each). A near-duplicate pays two: its own
record and its original's in one read, then the same pipeline.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import sys
from array import array
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import redis

from core import keys
from core.connection import script_line
from core.models import Article, TagResult
from core.settings import Settings
from core.urls import domain_of
from workers.stories import (
    Candidate,
    Model,
    Profile,
    choose,
    posting_minute,
    posting_range,
    raw_features,
)
from workers.story_store import DF_WEEKS, day_of, load_model, week_of

DOCS_FIELD = "#docs"  # the week's document count, beside its terms (no term starts with #)
MEMBERS_KEPT = 200
DF_TTL_S = (DF_WEEKS + 1) * 7 * 86400

# Document frequencies summed over the week keys (KEYS) server-side: one reply of numbers,
# the first the document count.
# Terms travel as one newline-joined argument and the counts come back as one string: a
# few hundred separate arguments and replies cost the client more than Redis's whole work.
# With ARGV[2] == '1', KEYS[1] is the article's own record: if it is there (a retried job)
# the reply is '=' and the record, and nothing is counted.
_DF = """
local weeks = {}
if ARGV[2] == '1' then
  local record = redis.call('GET', KEYS[1])
  if record then return '=' .. record end
  for i = 2, #KEYS do weeks[#weeks + 1] = KEYS[i] end
else
  weeks = KEYS
end
local terms = {}
for term in string.gmatch(ARGV[1], '[^\\n]+') do terms[#terms + 1] = term end
local out = {}
for i = 1, #terms do out[i] = 0 end
for _, key in ipairs(weeks) do
  for start = 1, #terms, 1000 do
    local last = math.min(start + 999, #terms)
    local counts = redis.call('HMGET', key, unpack(terms, start, last))
    for i = start, last do
      local c = counts[i - start + 1]
      if c then out[i] = out[i] + tonumber(c) end
    end
  end
end
return table.concat(out, ',')
"""

# Candidates ranked server-side (most shared index keys first, then the most recently
# published), and their stored records, each as stored (``RedisStories`` parses only those it
# has not parsed lately): one round trip, and only ``limit`` records cross the wire. Each
# posting list (a sorted set by minute published) is read only inside the window's minutes
# (ARGV[6], ARGV[7]): what was published outside it costs nothing. A record starts with its
# article's day, so one outside the exact window (a minute's rounding) takes its place but
# is not sent.
_CANDIDATES = """
local me, limit, prefix = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local day, window = tonumber(ARGV[4]), tonumber(ARGV[5])
-- first[id]: the order it was found in; more[id]: how many keys hold it, for an id found
-- under two or more (the few ranked first). Two table writes per id found: most are
-- found once. The article itself counts as found already.
local first, more, found, n = {[me] = 0}, {[me] = 0}, {}, 0
local shared, s = {}, 0
for _, key in ipairs(KEYS) do
  local ids = redis.call('ZREVRANGEBYSCORE', key, ARGV[7], ARGV[6])
  for j = 1, #ids do
    local id = ids[j]
    if first[id] == nil then
      n = n + 1; found[n] = id; first[id] = n
    else
      local c = more[id]
      if c == nil then s = s + 1; shared[s] = id; more[id] = 2 else more[id] = c + 1 end
    end
  end
end
-- Most keys shared first, ties in the order found: the shared few sorted, then the ids
-- found under one key, in their order, read only as far as the limit needs.
table.sort(shared, function(a, b)
  if more[a] ~= more[b] then return more[a] > more[b] end
  return first[a] < first[b]
end)
local si, fi = 0, 0
local function next_names(k)
  local names, m = {}, 0
  while m < k do
    local id
    if si < s then
      si = si + 1
      id = shared[si]
    else
      repeat fi = fi + 1 until fi > n or more[found[fi]] == nil
      if fi > n then break end
      id = found[fi]
    end
    m = m + 1
    names[m] = prefix .. id
  end
  return names, m
end
local out, o, taken = {}, 0, 0
while taken < limit do
  local names, m = next_names(limit - taken)
  if m == 0 then break end
  for _, record in ipairs(redis.call('MGET', unpack(names))) do
    if record then
      taken = taken + 1
      local d = tonumber(string.match(record, '^%[?([^,\\31]+)'))
      if d == nil or math.abs(d - day) <= window then o = o + 1; out[o] = record end
    end
  end
end
return out
"""

# ARGV[6] is the article's terms, one a line; with ARGV[10] '1' it counts as a document
# holding them ('0': a near-duplicate, whose text its original counted).
# With ARGV[7] > 0, KEYS[3] and KEYS[4] are the story's summary and member list: the article
# is counted in its story here, with its record or not at all (a retried job whose record
# write failed counts it once), and those keys expire ARGV[7] seconds after. Posting lists
# follow: the article goes in at its minute (ARGV[9]), the earliest published beyond
# ``limit`` leave.
_ADD = """
local df_key, profile_key = KEYS[1], KEYS[2]
local me, profile, profile_ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local df_ttl, limit, story_ttl = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[7])
if redis.call('SET', profile_key, profile, 'EX', profile_ttl, 'NX') == false then
  return 0  -- a retried job: counted already
end
local first = 3
if story_ttl > 0 then
  redis.call('HINCRBY', KEYS[3], 'article_count', 1)
  redis.call('LPUSH', KEYS[4], me)
  redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[8]) - 1)
  redis.call('EXPIRE', KEYS[3], story_ttl)
  redis.call('EXPIRE', KEYS[4], story_ttl)
  first = 5
end
if ARGV[10] == '1' then
  for term in string.gmatch(ARGV[6], '[^\\n]+') do redis.call('HINCRBY', df_key, term, 1) end
  redis.call('HINCRBY', df_key, '#docs', 1)
  redis.call('EXPIRE', df_key, df_ttl)
end
for i = first, #KEYS do
  redis.call('ZADD', KEYS[i], ARGV[9], me)
  redis.call('ZREMRANGEBYRANK', KEYS[i], 0, -limit - 1)
  redis.call('EXPIRE', KEYS[i], profile_ttl)
end
return 1
"""


# Records parsed lately, by their stored text: a record never changes once written (SET NX),
# so the text is the key and nothing can go stale. Parsing a record is most of what a
# candidate costs the client, and the same recent articles (a growing story's members,
# the articles this worker stored itself) are candidates again and again. About 12 KiB
# each, parsed.
PARSED_KEPT = 1024


class RedisStories:
    """The ``StoryStore`` of the service."""

    def __init__(
        self, client: redis.Redis, *, posting_limit: int, window_s: int,
        parsed_kept: int = PARSED_KEPT,
    ) -> None:  # fmt: skip
        self.redis = client
        self.posting_limit = posting_limit
        self.window_s = window_s
        self.parsed_kept = parsed_kept
        self._parsed: dict[str, tuple[Profile, str]] = {}
        line = script_line(client)  # three calls per article: redis-py's path per call is dear
        self._add = line.register(_ADD)
        self._df = line.register(_DF)
        self._candidates = line.register(_CANDIDATES)

    def document_frequencies(self, terms: Sequence[str], day: float) -> tuple[dict[str, int], int]:
        return _frequencies(self._frequencies(None, terms, day), terms)

    def placed_or_frequencies(
        self, article_id: str, terms: Sequence[str], day: float
    ) -> str | tuple[dict[str, int], int]:
        """The story ``article_id`` was given if it is stored already (a retried job), else
        the document frequencies of ``terms``: one round trip either way."""
        reply = self._frequencies(article_id, terms, day)
        return self._parse(reply[1:])[1] if reply.startswith("=") else _frequencies(reply, terms)

    def _frequencies(self, article_id: str | None, terms: Sequence[str], day: float) -> str:
        weeks = [keys.story_df(week_of(day) - i) for i in range(DF_WEEKS)]
        record = [keys.story_profile(article_id)] if article_id is not None else []
        args = ["\n".join([DOCS_FIELD, *terms]), "1" if record else "0"]
        return _text(self._df(keys=[*record, *weeks], args=args))

    def candidates_with_profiles(
        self, index_keys: Sequence[str], me: str, limit: int, window: tuple[float, float]
    ) -> list[tuple[Profile, str]]:
        """The ranking of ``rank_candidates`` and the records, in one round trip (Lua)."""
        found = self.lookup(index_keys, me, limit, window)
        return [(candidate.parsed(), story_id) for candidate, story_id in found]

    def lookup(
        self, index_keys: Sequence[str], me: str, limit: int, window: tuple[float, float]
    ) -> list[tuple[Candidate, str]]:
        """``candidates_with_profiles``; a record not parsed lately comes back as it was
        stored, to be parsed only if the decision needs it (``StoredRecord``)."""
        low, high = posting_range(*window)
        found = self._candidates(
            keys=[keys.story_posting(k) for k in index_keys],
            args=[me, limit, keys.story_profile(""), repr(window[0]), repr(window[1]), low, high],
        )
        out: list[tuple[Candidate, str]] = []
        for record in found:
            text = _text(record)
            parsed = self._parsed.pop(text, None)
            if parsed is None:
                data = _decoded(text)
                if isinstance(data, list) and len(data) == len(RECORD_FIELDS):
                    out.append((StoredRecord(data, text, self._keep), data[2]))
                    continue
                parsed = _profile(data)
            self._keep(text, parsed)  # last: the least recently read goes first
            out.append(parsed)
        return out

    def _parse(self, record: str | bytes) -> tuple[Profile, str]:
        text = _text(record)
        parsed = self._parsed.pop(text, None) or _record(text)
        self._keep(text, parsed)  # last: the least recently read goes first
        return parsed

    def _keep(self, record: str, parsed: tuple[Profile, str]) -> None:
        """Also what this worker stores: it reads that back without parsing it."""
        self._parsed[record] = parsed
        if len(self._parsed) > self.parsed_kept:
            del self._parsed[next(iter(self._parsed))]

    def add(
        self, me: Profile, story_id: str, index_keys: Sequence[str], terms: Sequence[str]
    ) -> None:
        keys_, args = self._add_call(me, story_id, index_keys, terms)
        self._add(keys=keys_, args=args)

    def queue_add(
        self, pipe: redis.client.Pipeline, me: Profile, story_id: str,
        index_keys: Sequence[str], terms: Sequence[str], *, story_ttl_s: int,
    ) -> Callable[[Any], bool]:  # fmt: skip
        """``add`` as one command of ``pipe``, counting the article in its story (summary
        and members, kept ``story_ttl_s``) in the same script as its record. The function
        returned checks the reply once the pipeline ran (``raise_on_error=False``): a server
        that lost the script (restarted, failed over) gets it and the article is stored
        then, after the pipeline's later commands (it returns True: they read too early)."""
        keys_, args = self._add_call(me, story_id, index_keys, terms, story_ttl_s)
        pipe.evalsha(self._add.sha, len(keys_), *keys_, *args)

        def check(reply: Any) -> bool:
            if isinstance(reply, redis.exceptions.NoScriptError):
                self._add(keys=keys_, args=args)
                return True
            if isinstance(reply, Exception):
                raise reply
            return False

        return check

    def _add_call(
        self, me: Profile, story_id: str, index_keys: Sequence[str], terms: Sequence[str],
        story_ttl_s: int = 0,
    ) -> tuple[list[str], list[Any]]:  # fmt: skip
        book = [keys.story(story_id), keys.story_members(story_id)] if story_ttl_s else []
        keys_ = [keys.story_df(week_of(me.day)), keys.story_profile(me.article_id), *book,
                 *(keys.story_posting(k) for k in index_keys)]  # fmt: skip
        record = encode_record(me, story_id)
        self._keep(record, (me, story_id))
        args = [me.article_id, record, self.window_s, DF_TTL_S, self.posting_limit,
                "\n".join(terms), story_ttl_s, MEMBERS_KEPT, posting_minute(me.day),
                int(bool(terms))]  # fmt: skip
        return keys_, args

    def stories_of(self, *article_ids: str) -> list[str | None]:
        """The story of each article, None where it has no record: one round trip."""
        records = self.redis.mget([keys.story_profile(a) for a in article_ids])
        return [self._parse(r)[1] if r else None for r in records]

    def story_of(self, article_id: str) -> str | None:
        return self.stories_of(article_id)[0]


@dataclasses.dataclass(frozen=True)
class StoryState:
    """What the event says about the story, and whether this article brought a new source
    to a relevant story when no ``story.updated`` was sent for it lately (``announce``)."""

    story_id: str
    first_seen: str
    article_count: int
    source_count: int
    title: str
    announce: bool = False

    def to_event(self) -> dict[str, Any]:
        return {"first_seen": self.first_seen, "article_count": self.article_count,
                "source_count": self.source_count, "title": self.title}  # fmt: skip


# An article joins its story's summary, sources and the recent-stories index; the reply is
# whether its source was new, the summary's first_seen, article_count, title and relevant,
# and the number of distinct sources. One command: a dozen in a pipeline cost the client
# more to pack and parse than Redis spends on them.
_JOIN = """
local key, sources, recent = KEYS[1], KEYS[2], KEYS[4]
local now, ttl = tonumber(ARGV[6]), tonumber(ARGV[7])
redis.call('HSETNX', key, 'first_seen', ARGV[1])
redis.call('HSETNX', key, 'title', ARGV[2])
if ARGV[3] == '1' then redis.call('HSET', key, 'relevant', 1) end
local added = redis.call('SADD', sources, ARGV[4])
redis.call('ZADD', recent, now, ARGV[5])
redis.call('ZREMRANGEBYSCORE', recent, 0, now - ttl)
for _, k in ipairs(KEYS) do redis.call('EXPIRE', k, ttl) end
local summary = redis.call('HMGET', key, 'first_seen', 'article_count', 'title', 'relevant')
return {added, summary[1], summary[2], summary[3], summary[4], redis.call('SCARD', sources)}
"""


class StoryBook:
    """Each story's summary in Redis, updated as articles join."""

    def __init__(self, client: redis.Redis, *, ttl_s: int, update_interval_s: int) -> None:
        self.redis = client
        self.ttl_s = ttl_s
        self.update_interval_s = update_interval_s
        self._join = client.register_script(_JOIN)

    def queue_join(
        self, pipe: redis.client.Pipeline, story_id: str, source: str, title: str, *,
        seen_at: str, relevant: bool, now_s: float,
    ) -> Callable[[list[Any]], StoryState]:  # fmt: skip
        """The story's summary, sources and activity as one command of ``pipe``, after the
        store's ``queue_add`` (which counts the article, once per article); the function
        returned reads the state from the pipeline's replies (a server that lost the script
        gets it then, and the article joins after the pipeline's other commands)."""
        at = len(pipe)
        keys_ = [keys.story(story_id), keys.story_sources(story_id),
                 keys.story_members(story_id), keys.STORIES_RECENT]  # fmt: skip
        args: list[str | int] = [seen_at, title, int(relevant), source or "?", story_id,
                                 repr(now_s), self.ttl_s]  # fmt: skip
        pipe.evalsha(self._join.sha, len(keys_), *keys_, *args)

        def read(results: list[Any]) -> StoryState:
            reply = results[at]
            if isinstance(reply, redis.exceptions.NoScriptError):
                reply = self._join(keys=keys_, args=args)
            elif isinstance(reply, Exception):
                raise reply
            added, first_seen, count, known_title, marked, sources = reply
            state = StoryState(story_id, _text(first_seen or seen_at), int(count or 1),
                               int(sources), _text(known_title or title))  # fmt: skip
            if added and int(sources) > 1 and marked and self._gate(story_id):
                return dataclasses.replace(state, announce=True)
            return state

        return read

    def _gate(self, story_id: str) -> bool:
        """True at most once per ``update_interval_s`` per story."""
        gate = keys.story_update_gate(story_id)
        return bool(self.redis.set(gate, 1, nx=True, ex=self.update_interval_s))

    def state(self, story_id: str) -> StoryState | None:
        summary = self.redis.hgetall(keys.story(story_id))
        if not summary:
            return None
        return StoryState(story_id, _text(summary.get("first_seen", "")),
                          int(summary.get("article_count", 0)),
                          int(self.redis.scard(keys.story_sources(story_id))),
                          _text(summary.get("title", "")))  # fmt: skip

    def recent(self, since_s: float, limit: int) -> list[tuple[StoryState, list[str]]]:
        """Stories active since ``since_s`` (Unix time), most distinct sources first."""
        ids = [_text(s) for s in self.redis.zrangebyscore(keys.STORIES_RECENT, since_s, "+inf")]
        states = [s for s in (self.state(i) for i in ids) if s is not None]
        states.sort(key=lambda s: (-s.source_count, -s.article_count, s.story_id))
        return [(s, [_text(m) for m in self.redis.lrange(keys.story_members(s.story_id), 0, -1)])
                for s in states[:limit]]  # fmt: skip


class Stories:
    """What the tag job asks: which story an article belongs to, and that story's state."""

    def __init__(self, client: redis.Redis, settings: Settings, model: Model) -> None:
        self.model = model
        self.store = RedisStories(
            client, posting_limit=settings.story_posting_limit,
            window_s=int(model.window_days * 86400) + 86400,
        )  # fmt: skip
        self.book = StoryBook(
            client, ttl_s=settings.story_ttl_s, update_interval_s=settings.story_update_interval_s
        )

    def place(
        self, article: Article, tags: TagResult, now: datetime,
        also: Callable[[redis.client.Pipeline], object] | None = None,
    ) -> StoryState:  # fmt: skip
        """Idempotent per article: a retried job finds the story it was given. Three round
        trips: the retry check with the frequencies, the candidates, then the article stored
        in the same pipeline as its story's bookkeeping. ``also`` queues the caller's own
        writes in that pipeline (a reply that is an error raises)."""
        source = article.site_name or domain_of(article.canonical_url)
        seen_at = article.published_at or article.fetched_at
        day = day_of(seen_at)
        pipe = self.store.redis.pipeline(transaction=False)
        stored: Callable[[Any], bool] | None = None
        placed = self._placed_with_original(article, pipe, day, source)
        if placed is not None:
            story_id, stored = placed
        else:
            raw = raw_features(article.title, article.text, tags.entities)
            terms = raw.sorted_df_terms()
            found = self.store.placed_or_frequencies(article.article_id, terms, day)
            if isinstance(found, str):
                story_id = found
            else:
                decision, me, index_keys = choose(self.store, self.model, article.article_id,
                                                  day, raw, source, found)  # fmt: skip
                story_id = decision.story_id
                stored = self.store.queue_add(pipe, me, story_id, index_keys, terms,
                                              story_ttl_s=self.book.ttl_s)  # fmt: skip
        read = self.book.queue_join(
            pipe, story_id, source, article.title, seen_at=seen_at,
            relevant=tags.us_china_trade, now_s=now.timestamp(),
        )  # fmt: skip
        if also is not None:
            also(pipe)
        results = pipe.execute(raise_on_error=False)
        late = stored is not None and stored(results[0])  # raises first: no gate taken then
        if also is not None and isinstance(results[-1], Exception):
            raise results[-1]  # likewise before ``read`` may take the story.updated gate
        state = read(results)
        if late:
            count = self.store.redis.hget(keys.story(story_id), "article_count")
            state = dataclasses.replace(state, article_count=int(count or 0))
        return state

    def _placed_with_original(
        self, article: Article, pipe: redis.client.Pipeline, day: float, source: str
    ) -> tuple[str, Callable[[Any], bool] | None] | None:
        """A near-duplicate (``duplicate_of``: the same text, syndicated) tells its
        original's event: it joins the original's story, without comparing anything, and
        its words are not counted again (forty copies of one wire story would otherwise
        make that story's own words look common, and independent reports of it harder to
        join). Its record holds only its story, and it is in no posting list: the original
        stands for the text. None when there is no original's story to join (not placed
        yet, or expired): the article is then placed as any other."""
        if not article.duplicate_of:
            return None
        mine, original = self.store.stories_of(article.article_id, article.duplicate_of)
        if mine is not None:
            return mine, None  # a retried job: placed already
        if original is None:
            return None
        me = Profile(article.article_id, day, {}, {}, {}, source, {}, "")
        stored = self.store.queue_add(pipe, me, original, [], [], story_ttl_s=self.book.ttl_s)
        return original, stored


def story_placer(client: redis.Redis, settings: Settings) -> Stories | None:
    """The service's story clustering, or None when ``stories_enabled`` is off."""
    return Stories(client, settings, load_model()) if settings.stories_enabled else None


def encode_record(me: Profile, story_id: str) -> str:
    """An article's stored record: its ``RECORD_FIELDS`` joined by ``FIELD_SEP``, its day
    first (the candidates script reads it unparsed). The weights of its four term lists
    travel as one base64 string of integers in ten-thousandths, their keys as four
    newline-joined strings, and their norms beside them: a candidate's record is read on
    every lookup that finds it, ``could_join`` needs only its keys and norms, and parsing a
    hundred decimal floats, then a JSON array, was most of a record's cost (a split is a
    fifth of ``json.loads``). Profiles round their weights to four decimals or fewer, so
    ``k / 10000`` is exactly the float the in-memory store keeps; a weight that is not (a
    hand-made profile), or a text holding the separator, makes the record the plain JSON
    form, read alike."""
    groups = (me.terms, me.title, me.anchors, me.lead)
    weights = [v for group in groups for v in group.values()]
    scaled = array("i", [round(v * WEIGHT_SCALE) for v in weights])
    texts = [me.article_id, story_id, me.source, me.script, *("\n".join(g) for g in groups)]
    if any(FIELD_SEP in text for text in texts) or any(
        k / WEIGHT_SCALE != v for k, v in zip(scaled, weights, strict=True)
    ):
        return json.dumps(
            [me.day, me.article_id, story_id, me.source, me.script, *groups],
            ensure_ascii=False, separators=(",", ":"),
        )  # fmt: skip
    if sys.byteorder == "big":
        scaled.byteswap()  # stored little-endian: workers on any machine read it
    norms = ",".join(map(repr, [me.terms_norm, *me.norms]))  # repr: the float itself
    return FIELD_SEP.join([repr(me.day), *texts, base64.b64encode(scaled).decode(), norms])


WEIGHT_SCALE = 10_000  # a record's weights are whole ten-thousandths (``encode_record``)
FIELD_SEP = "\x1f"  # ASCII's unit separator: no word, name, id or host holds it
RECORD_FIELDS = ("day", "article_id", "story_id", "source", "script", "term_keys",
                 "title_keys", "anchor_keys", "lead_keys", "weights", "norms")  # fmt: skip


def _decoded(text: str) -> Any:
    """A record's fields in ``RECORD_FIELDS`` order (the day a float, the norms a list of
    floats); for a record in JSON (the plain form, or an array or object an earlier
    release wrote, read until it expires), what the JSON holds."""
    if text[:1] in ("[", "{"):
        return json.loads(text)
    fields: list[Any] = text.split(FIELD_SEP)
    fields[0] = float(fields[0])
    fields[-1] = [float(n) for n in fields[-1].split(",")]
    return fields


class StoredRecord:
    """A candidate's record as stored (``encode_record``'s form), read only as far as asked:
    the keys and norms for ``could_join``, the whole profile when it may join (then kept
    with the store's parsed records)."""

    __slots__ = ("_data", "_keep", "_key_lists", "_text")

    def __init__(
        self, data: list[Any], text: str, keep: Callable[[str, tuple[Profile, str]], None]
    ) -> None:
        self._data, self._text, self._keep = data, text, keep
        self._key_lists: tuple[list[str], list[str], list[str], list[str]] | None = None

    @property
    def article_id(self) -> str:
        return str(self._data[1])

    @property
    def day(self) -> float:
        return float(self._data[0])

    @property
    def script(self) -> str:
        return str(self._data[4])

    @property
    def terms_norm(self) -> float:
        return float(self._data[10][0])

    def key_lists(self) -> tuple[list[str], list[str], list[str], list[str]]:
        found = self._key_lists
        if found is None:  # split once: ``parsed`` reads them again
            terms, title, anchors, lead = self._data[5:9]
            found = self._key_lists = (_split(terms), _split(title), _split(anchors), _split(lead))
        return found

    def parsed(self) -> Profile:
        found = _packed(self._data, self.key_lists())
        self._keep(self._text, found)
        return found[0]


def _packed(data: list[Any], key_lists: Sequence[list[str]] | None = None) -> tuple[Profile, str]:
    day, article_id, story_id, source, script, *groups, packed, norms = data
    scaled = array("i", base64.b64decode(packed))
    if sys.byteorder == "big":
        scaled.byteswap()
    weights = [k / WEIGHT_SCALE for k in scaled]
    if key_lists is None:
        key_lists = [_split(keys_) for keys_ in groups]
    dicts, start = [], 0
    for names in key_lists:
        dicts.append(dict(zip(names, weights[start : start + len(names)], strict=True)))
        start += len(names)
    terms, title, anchors, lead = dicts
    found = Profile(article_id, day, terms, title, anchors, source, lead, script)
    return found.with_norms(norms[0], norms[1:]), story_id


def _split(keys_: str) -> list[str]:
    return keys_.split("\n") if keys_ else []


def _frequencies(reply: str, terms: Sequence[str]) -> tuple[dict[str, int], int]:
    counts = reply.split(",")
    return dict(zip(terms, map(int, counts[1:]), strict=True)), int(counts[0])


def _record(raw: str | bytes) -> tuple[Profile, str]:
    return _profile(_decoded(_text(raw)))


def _profile(data: Any) -> tuple[Profile, str]:
    if isinstance(data, dict):  # written before the array form; expires within a window
        return Profile.from_dict(data["profile"]), str(data["story_id"])
    if len(data) == len(RECORD_FIELDS):
        return _packed(data)
    # Weights as JSON objects: a hand-made profile, or a record written before the packed form.
    day, article_id, story_id, source, script, terms, title, anchors, lead = data
    return Profile(article_id, day, terms, title, anchors, source, lead, script), story_id


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
