"""Replay and retag over a corpus read one article at a time; ``tradewire tail`` across a
Redis restart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from core.models import Article
from core.settings import Settings
from service.embedded_redis import EmbeddedRedis
from tests.conftest import ROOT, free_port
from tests.processes import wait_until
from tests.reliability.conftest import Recorder
from workers.corpus import Corpus
from workers.events import build_event
from workers.pipeline import tag_document
from workers.replay import replay
from workers.stream import Emitter
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


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[list[EmbeddedRedis]]:
    """A private Redis with an append-only file, on a fixed port so it can be restarted;
    the list holds the current server, stopped at the end."""
    servers = [EmbeddedRedis(tmp_path / "own-redis", port=free_port()).start()]
    yield servers
    servers[-1].stop()


def _emit(url: str, ids: range) -> None:
    client = redis.Redis.from_url(url, decode_responses=True)
    emitter = Emitter(client, Settings(redis_url=url))
    for i in ids:
        article = Article.from_dict({**_meta(i, "2025-11-20T00:00:00Z"), "text": TRADE_TEXT})
        tags = tag_document(load_taxonomy(ROOT / "config" / "taxonomy.yaml"), TRADE_TEXT)
        emitter.emit(build_event(article, tags, now=datetime.now(UTC)))
    client.close()


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.timeout(120)
@pytest.mark.scenario(
    "18.tail Redis restarted under tail", "Redis (AOF) stopped for 3 s and restarted on the "
    "same port while `tradewire tail --group g --count 6` reads; 3 events before, 3 after",
    "tail waits with a warning naming its retry delay (no traceback), resumes from its "
    "group's position, prints the 6 events once each and exits 0",
)  # fmt: skip
def test_tail_survives_a_redis_restart(
    record: Recorder, tmp_path: Path, own_redis: list[EmbeddedRedis]
) -> None:
    url, port = own_redis[0].url, own_redis[0].port
    stream = Settings().stream_name
    out, err = tmp_path / "tail.out", tmp_path / "tail.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "service", "tail", "--group", "g", "--count", "6"],
            env=_cli_env(url), cwd=ROOT, stdout=stdout, stderr=stderr,
        )  # fmt: skip
    try:
        client = redis.Redis.from_url(url, decode_responses=True)
        assert wait_until(lambda: client.xinfo_groups(stream), 30), err.read_text()
        client.close()
        _emit(url, range(3))
        assert wait_until(lambda: len(_lines(out)) == 3, 30), err.read_text()
        own_redis[0].stop()
        time.sleep(3)
        alive_while_down = proc.poll() is None
        own_redis.append(EmbeddedRedis(tmp_path / "own-redis", port=port).start())
        _emit(url, range(3, 6))
        rc = proc.wait(60) if alive_while_down else proc.returncode
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    printed = [json.loads(line)["article_id"] for line in _lines(out)]
    logs = err.read_text()
    warnings = [json.loads(line) for line in logs.splitlines() if '"warning"' in line]
    record.observed(
        f"alive while Redis was down: {alive_while_down}; exit {rc}; {len(printed)} events "
        f"printed ({len(set(printed))} distinct); warnings: {[w.get('event') for w in warnings]}; "
        f"traceback: {'Traceback' in logs}"
    )
    assert alive_while_down, logs[-3000:]
    assert rc == 0, logs[-3000:]
    assert printed == [f"{i:016x}" for i in range(6)]
    assert "Traceback" not in logs
    assert warnings and all("retry_in_s" in w for w in warnings)
