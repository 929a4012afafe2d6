"""Stories through Redis: the service's store gives the same stories as ``tradewire
cluster``; events carry them; story.updated is rate-limited; recluster reports changes."""

from __future__ import annotations

import base64
import dataclasses
import json
from array import array
from datetime import UTC, datetime, timedelta

import jsonschema
import pytest
import redis

from core import keys
from core.models import Article
from core.settings import Settings
from core.urls import short_hash
from service.stories import cluster_lines, stories_command
from tests.conftest import DATA, ROOT
from workers.announce import Announcer
from workers.corpus import Corpus
from workers.pipeline import tag_document
from workers.recluster import recluster
from workers.stories import (
    Profile,
    assign,
    new_story_id,
    posting_minute,
    posting_range,
    profile,
    raw_features,
)
from workers.story_redis import RedisStories, StoredRecord, Stories, encode_record
from workers.story_store import MemoryStories, day_of, load_model
from workers.stream import Emitter
from workers.tagging import load_taxonomy

ROWS = sorted(
    (json.loads(line) for line in (DATA / "stories" / "articles.jsonl").read_text().splitlines()),
    key=lambda r: r["published_at"],
)
TAXONOMY = load_taxonomy(ROOT / "config" / "taxonomy.yaml")
MODEL = load_model()
SCHEMA = json.loads((ROOT / "schemas" / "event-v1.json").read_text())
NOW = datetime(2026, 5, 15, tzinfo=UTC)


def article(row: dict[str, str]) -> Article:
    article_id = short_hash(row["id"])
    url = f"https://{row['source']}/news/{row['id']}"
    return Article(
        article_id=article_id, url=url, canonical_url=url, feed_url=f"https://{row['source']}/rss",
        feed_title=row["source"], title=row["title"], text=f"{row['title']}\n\n{row['text']}",
        authors=(), published_at=row["published_at"], fetched_at=row["published_at"],
        discovered_at=row["published_at"], language=row["lang"], site_name=None,
    )  # fmt: skip


def test_redis_store_gives_the_stories_of_the_cluster_command(text_redis: redis.Redis) -> None:
    lines = [json.dumps(r, ensure_ascii=False) for r in ROWS]
    offline = {d["id"]: d["story_id"] for d in cluster_lines(lines, TAXONOMY, MODEL, 100)}
    store = RedisStories(text_redis, posting_limit=100, window_s=8 * 86400)
    online = {}
    for row in ROWS:
        entities = tag_document(TAXONOMY, row["text"], row["title"]).entities
        raw = raw_features(row["title"], row["text"], entities)
        online[row["id"]] = assign(store, MODEL, row["id"], day_of(row["published_at"]), raw,
                                   row["source"]).story_id  # fmt: skip
    assert online == offline
    assert len(set(online.values())) < len(online)  # some joined: the comparison means something
    assert all(text_redis.ttl(k) > 0 for k in text_redis.scan_iter(match="tradewire:story*"))


def announcer(client: redis.Redis, settings: Settings) -> Announcer:
    return Announcer(TAXONOMY, Emitter(client, settings), verdicts=client, verdict_ttl_s=3600,
                     stories=Stories(client, settings, MODEL))  # fmt: skip


def test_events_carry_the_story_and_story_updated_is_rate_limited(
    text_redis: redis.Redis, settings: Settings
) -> None:
    teller = announcer(text_redis, settings)
    tariff_rows = [r for r in ROWS if r["event"] == "ev-tariffs"]
    results = [teller.announce(article(r), NOW) for r in tariff_rows]
    assert all(r.story is not None for r in results)
    story_ids = {r.story.story_id for r in results if r.story}
    entries = text_redis.xrange(settings.stream_name)
    events = [json.loads(fields["data"]) for _, fields in entries]
    for event in events:
        jsonschema.validate(event, SCHEMA)
        assert event["story_id"] in story_ids
    updates = [e for e in events if e["event_type"] == "story.updated"]
    # Four outlets joined one relevant story within the hour: one story.updated, not three.
    assert len(story_ids) == 1
    assert len(updates) == 1 and updates[0]["story"]["source_count"] == 2
    last = results[-1].story
    assert last is not None and last.source_count == 4 and last.article_count == 4
    again = teller.announce(article(tariff_rows[0]), NOW)  # a retried job
    assert again.story is not None and again.story.article_count == 4
    assert all(text_redis.ttl(k) > 0 for k in text_redis.scan_iter(match="tradewire:stor*"))


def test_a_not_relevant_verdict_is_written_with_the_story_and_its_failure_raises(
    text_redis: redis.Redis, redis_url: str, settings: Settings
) -> None:
    """The verdict of an article that is not relevant goes in the story step's last round
    trip; a verdict Redis refuses fails the article (its job retries) instead of vanishing."""
    quiet = [r for r in ROWS if not tag_document(TAXONOMY, r["text"], r["title"]).us_china_trade]
    assert len(quiet) >= 2
    first = article(quiet[0])
    result = announcer(text_redis, settings).announce(first, NOW)
    assert result.outcome == "not_relevant" and result.story is not None
    verdict = keys.verdict(first.article_id)
    assert json.loads(text_redis.get(verdict) or "{}")["us_china_trade"] is False
    assert 0 < text_redis.ttl(verdict) <= 3600
    # A client that may write the story keys but only read verdicts.
    text_redis.execute_command("ACL", "SETUSER", "stories-only", "on", "nopass", "+@all",
                               "~tradewire:stor*", "%R~tradewire:verdict:*", "&*")  # fmt: skip
    limited = redis.Redis.from_url(redis_url, username="stories-only", password="x",
                                   decode_responses=True)  # fmt: skip
    try:
        second = article(quiet[1])
        with pytest.raises(redis.exceptions.NoPermissionError):
            announcer(limited, settings).announce(second, NOW)
        assert text_redis.exists(keys.story_profile(second.article_id))  # placed: a retry finds it
        assert not text_redis.exists(keys.verdict(second.article_id))
    finally:
        limited.close()
        text_redis.execute_command("ACL", "DELUSER", "stories-only")


def test_stories_command_lists_by_distinct_sources(
    text_redis: redis.Redis, settings: Settings, capsys: object
) -> None:
    teller = announcer(text_redis, settings)
    for row in ROWS:
        teller.announce(article(row), datetime.now(UTC))
    import io

    out = io.StringIO()
    stories_command(settings, 86400, 3, out)
    listed = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(listed) == 3
    counts = [s["source_count"] for s in listed]
    assert counts == sorted(counts, reverse=True) and counts[0] >= 3
    assert len(listed[0]["articles"]) == listed[0]["article_count"]


def test_recluster_emits_only_where_membership_changed(
    text_redis: redis.Redis, settings: Settings
) -> None:
    corpus = Corpus(settings.corpus_dir, text_redis)
    articles = [dataclasses.replace(article(r), fetched_at="2026-05-14T00:00:00Z") for r in ROWS]
    corpus.write_many([(a.article_id, a.text, {k: v for k, v in a.to_dict().items() if k != "text"})
                       for a in articles])  # fmt: skip
    never_joins = dataclasses.replace(MODEL, threshold=1.1, cross_threshold=1.1)
    alone = Announcer(TAXONOMY, Emitter(text_redis, settings), verdicts=None, verdict_ttl_s=60,
                      stories=Stories(text_redis, settings, never_joins))  # fmt: skip
    for a in articles:
        alone.announce(a, NOW)
    before = text_redis.xlen(settings.stream_name)
    since = datetime(2026, 5, 1, tzinfo=UTC)
    report = recluster(settings, text_redis, TAXONOMY, MODEL, since=since, now=NOW)
    joined = report.articles - report.stories
    assert report.articles == len(ROWS) and joined > 0 and report.changed >= joined
    emitted = text_redis.xrange(settings.stream_name)[before:]
    assert len(emitted) == report.emitted > 0
    assert {f["event_type"] for _, f in emitted} == {"story.updated"}
    again = recluster(settings, text_redis, TAXONOMY, MODEL, since=since, now=NOW + timedelta(1))
    assert (again.changed, again.emitted) == (0, 0)


def test_document_frequencies_count_every_term_once_per_article(text_redis: redis.Redis) -> None:
    store = RedisStories(text_redis, posting_limit=100, window_s=8 * 86400)
    day = day_of("2026-05-12")
    for i, text in enumerate(["China and Japan talk", "China buys soybeans", "Nothing new"]):
        raw = raw_features("", text)
        assign(store, MODEL, f"d{i}", day, raw)
    df, n_docs = store.document_frequencies(["china", "japan", "soybean", "unseen"], day + 1)
    assert (df, n_docs) == ({"china": 2, "japan": 1, "soybean": 1, "unseen": 0}, 3)


def test_redis_store_reads_what_the_memory_store_reads_across_windows(
    text_redis: redis.Redis,
) -> None:
    """The same articles told again 5 and 10 days later: the Redis store's candidates (its
    ranking in Lua, the window it applies unread, its record encoding) are the in-memory
    store's, profile for profile, float for float (every record parsed: none kept)."""
    memory = MemoryStories(posting_limit=100)
    store = RedisStories(text_redis, posting_limit=100, window_s=30 * 86400, parsed_kept=0)
    for shift in (0, 5, 10):
        for row in ROWS:
            entities = tag_document(TAXONOMY, row["text"], row["title"]).entities
            raw = raw_features(row["title"], row["text"], entities)
            day = day_of(row["published_at"]) + shift
            decided = [assign(s, MODEL, f"{row['id']}+{shift}", day, raw, row["source"])
                       for s in (memory, store)]  # fmt: skip
            assert decided[0] == decided[1]
    day = day_of(ROWS[-1]["published_at"]) + 10
    for keys_ in (["t:tariff"], ["t:soybean", "e:china"], [f"t:{w}" for w in ("trade", "china")]):
        for limit in (3, 40):
            wanted = memory.candidates_with_profiles(keys_, "x", limit, (day, MODEL.window_days))
            got = store.candidates_with_profiles(keys_, "x", limit, (day, MODEL.window_days))
            assert got == wanted
    assert any(
        memory.candidates_with_profiles(["t:tariff"], "x", 40, (day, MODEL.window_days))
    )  # the comparison means something


def test_records_stored_as_json_objects_are_still_read(text_redis: redis.Redis) -> None:
    store = RedisStories(text_redis, posting_limit=100, window_s=8 * 86400)
    raw = raw_features("Soybean exports", "Soybean exports to China fell sharply in May.")
    assign(store, MODEL, "new", 20000.0, raw)
    old, _ = store.candidates_with_profiles(["t:soybean"], "x", 40, (20000.0, 7.0))[0]
    legacy = json.dumps({"profile": dataclasses.replace(old, article_id="old").to_dict(),
                         "story_id": "s-old"})  # fmt: skip
    text_redis.set(keys.story_profile("old"), legacy, ex=3600)
    text_redis.zadd(keys.story_posting("t:soybean"), {"old": posting_minute(20000.0)})
    found = store.candidates_with_profiles(["t:soybean"], "x", 40, (20000.0, 7.0))
    assert [(p.article_id, s) for p, s in found] == [("old", "s-old"), ("new", new_story_id("new"))]
    assert store.story_of("old") == "s-old"


def test_placing_survives_a_server_that_lost_its_scripts(
    text_redis: redis.Redis, settings: Settings
) -> None:
    stories = Stories(text_redis, settings, MODEL)
    first, second = (article(r) for r in ROWS[:2])
    tags = tag_document(TAXONOMY, first.text, first.title)
    stories.place(first, tags, NOW)
    text_redis.script_flush()  # a restart or a failover to a replica without them
    state = stories.place(second, tag_document(TAXONOMY, second.text, second.title), NOW)
    assert stories.store.story_of(second.article_id) == state.story_id
    # Both scripts ran once loaded: the article is stored, and its story's summary and
    # sources say so.
    assert dataclasses.replace(state, announce=False) == stories.book.state(state.story_id)
    again = stories.place(second, tag_document(TAXONOMY, second.text, second.title), NOW)
    assert (again.story_id, again.article_count) == (state.story_id, state.article_count)


def test_a_retry_after_a_failed_record_write_counts_the_article_once(
    text_redis: redis.Redis, settings: Settings
) -> None:
    """The server refuses the article's record (here: an expiry it rejects) while the rest of
    the job's pipeline runs; the job is retried. The story must count the article once: the
    count is written with the record or not at all."""
    stories = Stories(text_redis, settings, MODEL)
    rows = [r for r in ROWS if r["event"] == "ev-tariffs"][:2]
    # As from a feed: the link carries tracking, the canonical URL names the article.
    first, second = (dataclasses.replace(article(r), url=article(r).url + "?utm_source=rss")
                     for r in rows)  # fmt: skip
    tags = tag_document(TAXONOMY, first.text, first.title)
    window_s = stories.store.window_s
    stories.store.window_s = -1  # SET ... EX -1: the server refuses the record
    try:
        stories.place(first, tags, NOW)
        raise AssertionError("the refused record write must fail the job")
    except redis.ResponseError:
        pass
    stories.store.window_s = window_s
    state = stories.place(first, tags, NOW)  # the retried job
    assert state.article_count == 1
    again = stories.place(first, tags, NOW)  # and once more, the record now written
    assert again.article_count == 1
    joined = stories.place(second, tag_document(TAXONOMY, second.text, second.title), NOW)
    assert joined.story_id == state.story_id and joined.article_count == 2
    members = text_redis.lrange(keys.story_members(state.story_id), 0, -1)
    assert sorted(members) == sorted([first.article_id, second.article_id])


def test_parsed_records_kept_are_bounded_and_read_as_parsed(text_redis: redis.Redis) -> None:
    kept = RedisStories(text_redis, posting_limit=100, window_s=8 * 86400, parsed_kept=3)
    fresh = RedisStories(text_redis, posting_limit=100, window_s=8 * 86400, parsed_kept=0)
    day = day_of("2026-05-12")
    for i in range(8):
        raw = raw_features("Soybean exports", f"Soybean exports to China fell {i}% in May.")
        assign(kept, MODEL, f"s{i}", day, raw)
        assert len(kept._parsed) <= 3
    read = [kept.candidates_with_profiles(["t:soybean"], "x", 40, (day, 7.0)) for _ in range(2)]
    assert read[0] == read[1] == fresh.candidates_with_profiles(["t:soybean"], "x", 40, (day, 7.0))
    assert len(read[0]) == 8 and len(kept._parsed) == 3


def test_a_near_duplicate_joins_its_originals_story_without_being_counted_again(
    text_redis: redis.Redis, settings: Settings
) -> None:
    """A syndicated copy (another outlet, a tracking link, its own canonical URL) takes its
    original's story at once; its words are not counted a second time; a retry of it
    changes nothing."""
    stories = Stories(text_redis, settings, MODEL)
    original = article(ROWS[0])
    tags = tag_document(TAXONOMY, original.text, original.title)
    first = stories.place(original, tags, NOW)
    week = keys.story_df(int(day_of(original.published_at or "") // 7))
    docs_before = text_redis.hget(week, "#docs")
    canonical = "https://syndicator.example/wire/copy-1"
    copy = dataclasses.replace(
        original, article_id=short_hash(canonical), url=canonical + "?utm_source=rss",
        canonical_url=canonical, site_name="Syndicator", duplicate_of=original.article_id,
    )  # fmt: skip
    joined = stories.place(copy, tags, NOW)
    assert joined.story_id == first.story_id
    assert (joined.article_count, joined.source_count) == (2, 2)
    assert text_redis.hget(week, "#docs") == docs_before  # counted with its original
    postings = [k for k in text_redis.scan_iter(keys.story_posting("*"))]
    assert postings and not any(text_redis.zscore(k, copy.article_id) for k in postings)
    again = stories.place(copy, tags, NOW)
    assert (again.story_id, again.article_count, again.source_count) == (first.story_id, 2, 2)


def test_a_near_duplicate_whose_original_has_no_story_is_placed_as_any_article(
    text_redis: redis.Redis, settings: Settings
) -> None:
    stories = Stories(text_redis, settings, MODEL)
    copy = dataclasses.replace(article(ROWS[1]), duplicate_of="0" * 16)  # never placed
    tags = tag_document(TAXONOMY, copy.text, copy.title)
    state = stories.place(copy, tags, NOW)
    assert stories.store.story_of(copy.article_id) == state.story_id
    week = keys.story_df(int(day_of(copy.published_at or "") // 7))
    assert text_redis.hget(week, "#docs") == "1"  # its words counted: it stands for its text


def test_a_record_is_read_only_as_far_as_the_decision_needs(text_redis: redis.Redis) -> None:
    """A record not parsed lately comes back unparsed: its keys, norms, day and script
    are the profile's; parsed, it is the profile float for float (its norms too), and
    the next lookup finds it parsed."""
    store = RedisStories(text_redis, posting_limit=100, window_s=8 * 86400, parsed_kept=10)
    row = ROWS[0]
    raw = raw_features(row["title"], row["text"])
    day = day_of(row["published_at"])
    stored = profile("p1", day, raw, {"trade": 3}, 40, MODEL, row["source"])
    keys_ = stored.index_keys(MODEL.index_terms, MODEL.index_anchors)
    store.add(stored, "s1", keys_, raw.sorted_df_terms())
    store._parsed.clear()  # as a worker that did not store it
    [(found, story_id)] = store.lookup(keys_[:1], "x", 40, (day, 7.0))
    assert isinstance(found, StoredRecord) and story_id == "s1"
    assert (found.article_id, found.day, found.script) == ("p1", day, stored.script)
    assert [list(k) for k in found.key_lists()] == [list(k) for k in stored.key_lists()]
    assert found.terms_norm == stored.terms_norm
    parsed = found.parsed()
    assert parsed == stored and parsed.norms_and_lead_anchors() == stored.norms_and_lead_anchors()
    [(again, _)] = store.lookup(keys_[:1], "x", 40, (day, 7.0))
    assert again is parsed


def test_weights_that_are_not_whole_ten_thousandths_are_stored_exactly(
    text_redis: redis.Redis,
) -> None:
    store = RedisStories(text_redis, posting_limit=100, window_s=8 * 86400, parsed_kept=0)
    odd = Profile("odd", 20000.0, {"tariff": 0.123456789, "soy": 1 / 3}, {"tariff": 2.5},
                  {"e:china": 1.0}, "example.com", {"tariff": 2.5, "e:china": 1.0})  # fmt: skip
    assert len(json.loads(encode_record(odd, "s"))) == 9  # the plain JSON form
    store.add(odd, "s", ["t:tariff"], ["tariff", "soy"])
    [(found, _)] = store.candidates_with_profiles(["t:tariff"], "x", 40, (20000.0, 7.0))
    assert found == odd and found.terms["soy"] == 1 / 3


def _previous_record(me: Profile, story_id: str) -> str:
    """A record as the release before this one wrote it (a JSON array): a worker still reads
    those until they expire, a window after the upgrade."""
    groups = (me.terms, me.title, me.anchors, me.lead)
    weights = array("i", [round(v * 10_000) for g in groups for v in g.values()])
    return json.dumps(
        [me.day, me.article_id, story_id, me.source, me.script,
         *("\n".join(g) for g in groups), base64.b64encode(weights).decode(),
         [me.terms_norm, *me.norms]], ensure_ascii=False, separators=(",", ":"),
    )  # fmt: skip


def test_records_of_every_form_are_read_alike_and_kept_to_the_exact_window(
    text_redis: redis.Redis,
) -> None:
    """Each form a record can take (this release's, the previous release's JSON array, the
    plain JSON of a profile whose text holds the separator) is read back as the profile it
    was written from, by a lookup and by ``story_of``; and the candidates script, which
    reads only a record's leading day, leaves out one whose minute is inside the window
    but whose exact day is not, in every form."""
    store = RedisStories(text_redis, posting_limit=100, window_s=8 * 86400, parsed_kept=0)
    raw = raw_features("Soybean exports", "Soybean exports to China fell sharply in May.")
    day = 20000.0 + 0.1 / 1440  # a tenth into its minute
    base = profile("p", day, raw, {}, 10, MODEL, "example.com")
    forms = {
        "current": (dataclasses.replace(base, article_id="cur"), encode_record),
        "previous": (dataclasses.replace(base, article_id="prev"), _previous_record),
        "plain": (dataclasses.replace(base, article_id="odd", source="a\x1fb"), encode_record),
    }
    for name, (me, encode) in forms.items():
        record = encode(me, f"s-{name}")
        assert record.startswith("[") == (name != "current"), name
        text_redis.set(keys.story_profile(me.article_id), record, ex=3600)
        text_redis.zadd(keys.story_posting("t:soybean"), {me.article_id: posting_minute(day)})
    found = store.candidates_with_profiles(["t:soybean"], "x", 40, (day, MODEL.window_days))
    assert sorted((s, p) for p, s in found) == sorted(
        (f"s-{name}", me) for name, (me, _) in forms.items()
    )
    assert [store.story_of(me.article_id) for me, _ in forms.values()] == [
        f"s-{name}" for name in forms
    ]
    # Seven days and 0.4 of a minute later: the window starts inside the stored article's
    # minute (0.5 into it), after its exact time (0.1 into it).
    late = day + MODEL.window_days + 0.4 / 1440
    assert posting_range(late, MODEL.window_days)[0] == posting_minute(day)
    assert store.candidates_with_profiles(["t:soybean"], "x", 40, (late, MODEL.window_days)) == []
    early = day + MODEL.window_days - 0.05 / 1440  # just inside: all three come back
    assert len(store.candidates_with_profiles(["t:soybean"], "x", 40, (early, 7.0))) == 3


def test_an_expired_record_gives_its_place_to_the_next_candidate(text_redis: redis.Redis) -> None:
    """Records are read in batches as far as the limit needs: where some expired before
    their posting entries, the next in rank take their places, in rank order."""
    store = RedisStories(text_redis, posting_limit=100, window_s=8 * 86400, parsed_kept=0)
    day = day_of("2026-05-12")
    for i in range(6):
        raw = raw_features("Soybean exports", f"Soybean exports to China fell {i}% in May.")
        assign(store, MODEL, f"s{i}", day + i / 24, raw)
    text_redis.delete(keys.story_profile("s5"), keys.story_profile("s3"))
    found = store.candidates_with_profiles(["t:soybean"], "x", 3, (day, 7.0))
    assert [p.article_id for p, _ in found] == ["s4", "s2", "s1"]
