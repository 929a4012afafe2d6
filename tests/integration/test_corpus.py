"""The corpus directory: a batch of documents written with one flush, all or nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from core.document import read_document
from workers.corpus import Corpus


def documents(n: int) -> list[tuple[str, str, dict[str, str]]]:
    return [
        (f"{i:016x}", f"Title {i}\n\nFirst paragraph {i}.\n\nSecond paragraph.", {"url": f"u{i}"})
        for i in range(n)
    ]


def visible(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.is_file())


def test_a_batch_gets_consecutive_numbers_and_keeps_them(
    tmp_path: Path, text_redis: redis.Redis
) -> None:
    corpus = Corpus(tmp_path / "corpus", text_redis)
    paths = corpus.write_many(documents(3))
    assert [p.name for p in paths] == [f"{i:03d}_{i:016x}.txt" for i in range(3)]
    assert visible(tmp_path / "corpus") == [p.name for p in paths]  # no temporary files left
    assert len(visible(tmp_path / "corpus" / ".meta")) == 3
    assert read_document(paths[1].read_text(encoding="utf-8"))[0] == "Title 1"
    # A retried batch rewrites the same files under the same numbers.
    assert corpus.write_many(list(reversed(documents(3)))) == list(reversed(paths))
    assert [m["corpus_file"] for m in corpus.stored_articles()] == [p.name for p in paths]


def test_a_batch_that_cannot_be_written_leaves_nothing_behind(
    tmp_path: Path, text_redis: redis.Redis
) -> None:
    """A document that cannot be encoded stops the batch before any file is renamed into
    place: readers never see part of a batch, and no temporary file is left."""
    corpus = Corpus(tmp_path / "corpus", text_redis)
    (tmp_path / "corpus").mkdir()
    bad = [*documents(2), ("b" * 16, "Title\n\nhalf a surrogate \ud800", {})]
    with pytest.raises(UnicodeEncodeError):
        corpus.write_many(bad)
    assert visible(tmp_path / "corpus") == []
    assert visible(tmp_path / "corpus" / ".meta") == []


def test_numbers_expire_from_redis_and_the_disk_keeps_them(
    tmp_path: Path, text_redis: redis.Redis
) -> None:
    """Number keys have a lifetime; once one has expired, the article's file on disk still
    gives it its number, so a re-fetched article never gets a second file."""
    from core import keys

    corpus = Corpus(tmp_path / "corpus", text_redis, number_ttl_s=3600)
    paths = corpus.write_many(documents(2))
    assert 0 < text_redis.ttl(keys.corpus_number(f"{0:016x}")) <= 3600
    text_redis.delete(keys.corpus_number(f"{0:016x}"))  # what the TTL does later
    again = corpus.write_many(documents(3))
    assert again[:2] == paths
    assert again[2].name == f"002_{2:016x}.txt"
    assert len(visible(tmp_path / "corpus")) == 3


def test_article_files_come_in_number_order_a_window_at_a_time(
    tmp_path: Path, text_redis: redis.Redis
) -> None:
    """Numeric order (1000 after 999, where names sort the other way), across windows and
    gaps; temporary files and metadata are not articles."""
    corpus = Corpus(tmp_path / "corpus", text_redis)
    (tmp_path / "corpus" / ".meta").mkdir(parents=True)
    numbers = [1001, 0, 70_000, 999, 5, 1000, 25, 11, 10]
    for n in numbers:
        (tmp_path / "corpus" / f"{n:03d}_{n:016x}.txt").write_text("T\n\nBody.")
    (tmp_path / "corpus" / ".012_x.txt.tmp1234").write_text("half")
    expected = [f"{n:03d}_{n:016x}.txt" for n in sorted(numbers)]
    assert list(corpus.article_files(window=10)) == expected
    assert list(corpus.article_files()) == expected
    assert corpus.census() == (len(numbers), 70_000)
    assert list(Corpus(tmp_path / "absent", text_redis).article_files()) == []
