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
