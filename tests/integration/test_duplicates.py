"""Near-duplicates: a syndicated copy points at the first article; a rewrite does not."""

from __future__ import annotations

import threading

import redis

from core import keys
from tests.conftest import SEEDS_DIR
from workers.duplicates import DUPLICATE_SHARED, SKETCH_SIZE, DuplicateIndex, sketch

SEEDS = {p.name[:3]: p.read_text(encoding="utf-8") for p in sorted(SEEDS_DIR.glob("*.txt"))}


def syndicated(text: str) -> str:
    """What a second site does to wire copy: its own headline, a byline, a closing line."""
    _title, _, body = text.partition("\n\n")
    return f"Li Chenggang heads to Washington\n\nBy Wire Staff\n\n{body}\n\nCopyright 2025 Wire Service."


def shared(a: list[int], b: list[int]) -> float:
    """The share of the sketch values two texts have in common (what the index counts)."""
    return len(set(a) & set(b)) / SKETCH_SIZE


def original_of(index: DuplicateIndex, article_id: str, fingerprint: list[int]) -> str | None:
    return index.originals_of([(article_id, fingerprint)])[0]


def test_sketch_resemblance() -> None:
    original = SEEDS["001"]
    assert shared(sketch(original), sketch(syndicated(original))) > 0.8
    # Seeds 000 and 004 report the same news in different words: not one text.
    assert shared(sketch(SEEDS["000"]), sketch(SEEDS["004"])) < 0.1
    assert sketch("too short") == []


def test_syndicated_copy_points_to_the_first(text_redis: redis.Redis) -> None:
    index = DuplicateIndex(text_redis, DUPLICATE_SHARED, ttl_s=3600)
    assert original_of(index, "a" * 16, sketch(SEEDS["001"])) is None
    assert original_of(index, "b" * 16, sketch(syndicated(SEEDS["001"]))) == "a" * 16
    # A copy of the copy still points at the first article.
    assert original_of(index, "c" * 16, sketch(syndicated(syndicated(SEEDS["001"])))) == "a" * 16
    # A retried job of the original does not find itself.
    assert original_of(index, "a" * 16, sketch(SEEDS["001"])) is None
    # Different stories stay apart, including the two reports of one event.
    for name in ("000", "002", "003", "004"):
        assert original_of(index, name * 5 + "0", sketch(SEEDS[name])) is None


def test_racing_copies_agree_on_one_original(redis_url: str) -> None:
    """Eight workers store eight copies at once: exactly one is the original."""
    results: dict[str, str | None] = {}
    barrier = threading.Barrier(8)

    def store(i: int) -> None:
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        index = DuplicateIndex(client, DUPLICATE_SHARED, ttl_s=3600)
        barrier.wait()
        results[f"{i:016x}"] = original_of(
            index, f"{i:016x}", sketch(syndicated(SEEDS["001"]) + f" v{i}")
        )
        client.close()

    threads = [threading.Thread(target=store, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    originals = [aid for aid, dup in results.items() if dup is None]
    assert len(originals) == 1
    assert {dup for dup in results.values() if dup} == set(originals)


def test_copies_in_one_batch_are_looked_up_in_order(text_redis: redis.Redis) -> None:
    """One round trip for a batch, yet a later copy in it sees the earlier one."""
    index = DuplicateIndex(text_redis, DUPLICATE_SHARED, ttl_s=3600)
    batch = [
        ("d" * 16, sketch(SEEDS["002"])),
        ("e" * 16, []),  # too short to sketch
        ("f" * 16, sketch(syndicated(SEEDS["002"]))),
        ("0" * 16, sketch(SEEDS["003"])),
    ]
    assert index.originals_of(batch) == [None, None, "d" * 16, None]


def test_a_value_shared_by_too_many_articles_stops_counting(text_redis: redis.Redis) -> None:
    """A sketch value already held by ``max_members`` articles neither grows nor counts:
    the lookup's work stays bounded, and copies are still found through the other values."""
    index = DuplicateIndex(text_redis, DUPLICATE_SHARED, ttl_s=3600, max_members=50)
    original = sketch(SEEDS["001"])
    crowded = keys.sketch_value(original[0])
    text_redis.sadd(crowded, *(f"{i:016x}" for i in range(50)))
    assert original_of(index, "1" * 16, original) is None
    assert text_redis.scard(crowded) == 50 and not text_redis.sismember(crowded, "1" * 16)
    assert text_redis.sismember(keys.sketch_value(original[1]), "1" * 16)
    assert original_of(index, "2" * 16, sketch(syndicated(SEEDS["001"]))) == "1" * 16


def test_copies_are_not_recorded_but_keep_the_original_alive(text_redis: redis.Redis) -> None:
    """However many sites carry a story, each of its sketch values holds the original's id
    alone (a later copy's lookup counts one id per value), and every copy found pushes
    the original's values' expiry forward."""
    first = DuplicateIndex(text_redis, DUPLICATE_SHARED, ttl_s=100)
    later = DuplicateIndex(text_redis, DUPLICATE_SHARED, ttl_s=3600)
    original = sketch(SEEDS["001"])
    assert original_of(first, "a" * 16, original) is None
    copies = [syndicated(SEEDS["001"]), syndicated(syndicated(SEEDS["001"])) + " Updated."]
    for i, text in enumerate(copies):
        assert original_of(later, f"{i:016x}", sketch(text)) == "a" * 16
    values = {v for text in copies for v in sketch(text)}
    for value in values:
        members = text_redis.smembers(keys.sketch_value(value))
        assert members <= {"a" * 16}
        if value in original:
            assert members == {"a" * 16} and text_redis.ttl(keys.sketch_value(value)) > 100
    assert original_of(later, "f" * 16, sketch(syndicated(SEEDS["001"]) + " Final.")) == "a" * 16
