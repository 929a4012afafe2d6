"""Replay and retag over a corpus read one article at a time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest
import redis

from core.models import Article
from core.settings import Settings
from tests.conftest import ROOT
from tests.reliability.conftest import Recorder
from workers.corpus import Corpus
from workers.replay import replay
from workers.tagging import load_taxonomy

TRADE_TEXT = (
    "US and China extend tariff truce\n\n"
    "Washington and Beijing agreed to extend the tariff truce on Chinese imports for 90 days, "
    "the US trade representative said, as talks on export controls and soybean purchases go on."
)


def _meta(i: int, fetched_at: str) -> dict[str, object]:
    article = Article(
        article_id=f"{i:016x}", url=f"https://x.example/{i}", canonical_url=f"https://x.example/{i}",
        feed_url="https://x.example/rss", feed_title="X", title=f"Story {i}", text="", authors=(),
        published_at=None, fetched_at=fetched_at, discovered_at=fetched_at, language="en",
        site_name=None,
    )  # fmt: skip
    data = article.to_dict()
    data.pop("text")
    return data


def _fetched(i: int, recent: set[int]) -> str:
    return "2025-11-20T00:00:00Z" if i in recent else "2025-10-01T00:00:00Z"


def _corpus_with_unreadable_old_texts(
    settings: Settings, client: redis.Redis, n: int, recent: set[int]
) -> Corpus:
    """``n`` stored articles; the text of every article fetched before ``recent``'s date is
    replaced by a directory, so reading it raises: only a reader that skips it survives."""
    corpus = Corpus(settings.corpus_dir, client)
    paths = corpus.write_many(
        [(f"{i:016x}", TRADE_TEXT, _meta(i, _fetched(i, recent))) for i in range(n)]
    )
    for i, path in enumerate(paths):
        if i not in recent:
            path.unlink()
            path.mkdir()
    return corpus


@pytest.mark.scenario(
    "18.7 replay --since reads only what it emits", "a corpus of 8 articles whose 6 older texts "
    "cannot be read (each is a directory); replay --since a date after them",
    "the 2 recent articles are emitted; no excluded text is opened (the metadata decides)",
)  # fmt: skip
def test_replay_since_reads_only_the_texts_it_emits(
    record: Recorder, settings: Settings, text_redis: redis.Redis
) -> None:
    _corpus_with_unreadable_old_texts(settings, text_redis, 8, recent={3, 6})
    taxonomy = load_taxonomy(settings.taxonomy_file)
    report = replay(
        settings, text_redis, taxonomy, since=datetime(2025, 11, 15, tzinfo=UTC),
        stream="rebuild", now=datetime.now(UTC),
    )  # fmt: skip
    emitted = [f["article_id"] for _, f in text_redis.xrange("rebuild")]
    record.observed(f"{report.articles} articles read, {report.created} emitted: {emitted}")
    assert (report.articles, report.created) == (2, 2)
    assert emitted == [f"{3:016x}", f"{6:016x}"]


@pytest.mark.scenario(
    "18.7 stored_articles is lazy", "a corpus whose second text cannot be read; the caller "
    "takes the first article and stops", "the first article arrives without the second being "
    "read: texts are read one at a time, as asked for",
)  # fmt: skip
def test_stored_articles_reads_one_text_at_a_time(
    record: Recorder, settings: Settings, text_redis: redis.Redis
) -> None:
    corpus = _corpus_with_unreadable_old_texts(settings, text_redis, 3, recent={0, 2})
    articles = corpus.stored_articles()
    first = next(iter(articles))
    assert not isinstance(articles, list)
    since = [m["article_id"] for m in corpus.stored_articles(since="2025-11-01T00:00:00Z")]
    record.observed(f"first article {first['article_id']} read alone; since-filtered: {since}")
    assert first["article_id"] == f"{0:016x}" and first["text"] == TRADE_TEXT
    assert since == [f"{0:016x}", f"{2:016x}"]


def _cli_env(redis_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWIRE_")}
    return env | {"TRADEWIRE_REDIS_URL": redis_url} | extra


@pytest.mark.scenario(
    "18.7 replay and retag from the command line", "`tradewire replay --since` and `tradewire "
    "retag` over a corpus of 30 articles", "stdout carries the one JSON result line; progress "
    "goes to stderr as structured log lines",
)  # fmt: skip
def test_cli_replay_and_retag_report_progress_on_stderr(
    record: Recorder, settings: Settings, text_redis: redis.Redis, redis_url: str
) -> None:
    recent = set(range(20, 30))
    Corpus(settings.corpus_dir, text_redis).write_many(
        [(f"{i:016x}", TRADE_TEXT, _meta(i, _fetched(i, recent))) for i in range(30)]
    )
    env = _cli_env(redis_url, TRADEWIRE_CORPUS_DIR=str(settings.corpus_dir))
    seen = []
    for args in (["replay", "--since", "2025-11-15", "--stream", "rebuild"], ["retag"]):
        done = subprocess.run(
            [sys.executable, "-m", "service", *args], env=env, cwd=ROOT, capture_output=True,
            text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)  # one JSON document, nothing else
        progress = [json.loads(line) for line in done.stderr.splitlines() if "progress" in line]
        seen.append((args[0], result, progress[-1] if progress else None))
    record.observed("; ".join(f"{cmd}: stdout {res}, last progress {p}" for cmd, res, p in seen))
    (_, replayed, replay_progress), (_, retagged, retag_progress) = seen
    assert replayed["articles"] == replayed["created"] == 10
    assert retagged["articles"] == 30
    assert replay_progress and replay_progress["scanned"] == replay_progress["total"] == 30
    assert retag_progress and retag_progress["scanned"] == 30
