"""The corpus across machines: two worker processes (two "machines") writing one shared
corpus directory give replay the whole corpus; writing one directory each, replay and
retag refuse to work on a part and name the other directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from core import keys
from core.models import ArticleJob
from core.queues import enqueue_extracts
from core.settings import Settings
from core.urls import article_id_for, canonicalize_url
from tests.conftest import ROOT
from tests.reliability.site import Site, serve
from workers.corpus import ID_FILE
from workers.jobs import extract_job

ARTICLES = 20


def jobs_for(site: Site) -> list[ArticleJob]:
    jobs = []
    for path in site.article_paths:
        url = f"{site.base}{path}"
        jobs.append(
            ArticleJob(
                article_id=article_id_for(canonicalize_url(url)),
                url=url,
                canonical_url=canonicalize_url(url),
                feed_url=f"{site.base}/feed/0.xml",
                feed_title="f",
                title=path,
                published_at=None,
                discovered_at="2026-11-30T00:00:00Z",
            )
        )
    return jobs


def tradewire(redis_url: str, corpus: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWIRE_")} | {
        "TRADEWIRE_REDIS_URL": redis_url, "TRADEWIRE_CORPUS_DIR": str(corpus),
        "TRADEWIRE_CONFIG": str(ROOT / "config" / "settings.yaml"),
        "TRADEWIRE_TAXONOMY_FILE": str(ROOT / "config" / "taxonomy.yaml"),
        "TRADEWIRE_ALLOW_PRIVATE_HOSTS": "1", "TRADEWIRE_HOST_MIN_DELAY_S": "0",
        "TRADEWIRE_HOST_CONCURRENCY": "8", "TRADEWIRE_RESPECT_ROBOTS_TXT": "0",
        "TRADEWIRE_LOG_FORMAT": "json",
    }  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "service", *args], env=env, cwd=ROOT, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def work_on_two_machines(redis_url: str, corpora: tuple[Path, Path]) -> list[str]:
    """An extract and a tag worker per "machine", all at once, until the queues are empty;
    their logs."""
    logs = []
    for queue in (keys.EXTRACT_QUEUE, keys.TAG_QUEUE):
        procs = [tradewire(redis_url, c, "work-one", "--queue", queue, "--burst") for c in corpora]
        for proc in procs:
            _, err = proc.communicate(timeout=180)
            assert proc.returncode == 0, err[-2000:]
            logs.append(err)
    return logs


@pytest.mark.timeout(300)
@pytest.mark.parametrize("layout", ["shared", "split"])
def test_replay_sees_the_corpus_of_every_worker_only_when_shared(
    layout: str, settings: Settings, text_redis: redis.Redis, rq_redis: redis.Redis,
    redis_url: str, tmp_path: Path,
) -> None:  # fmt: skip
    shared = layout == "shared"
    corpora = (tmp_path / "nfs", tmp_path / "nfs") if shared else (tmp_path / "a", tmp_path / "b")
    with serve(Site(copies=ARTICLES // 10, feeds=1, delay_s=0.2)) as site:
        enqueue_extracts(rq_redis, settings, extract_job, jobs_for(site), batch_size=1)
        logs = work_on_two_machines(redis_url, corpora)
    names = [p.name for c in set(corpora) for p in c.glob("*.txt")]
    numbers = [int(n.split("_", 1)[0]) for n in names]
    relevant = text_redis.xlen(settings.stream_name)
    assert len(names) == ARTICLES and len(set(numbers)) == ARTICLES  # numbered once, corpus-wide
    assert relevant > 0
    replay = tradewire(redis_url, corpora[0], "replay", "--since", "2000-01-01", "--stream", "re")
    out, err = replay.communicate(timeout=120)
    if shared:
        assert replay.returncode == 0, err
        assert json.loads(out)["articles"] == ARTICLES
        assert json.loads(out)["created"] == relevant == text_redis.xlen("re")
        assert len(text_redis.hgetall(keys.CORPUS_DIRS)) == 1
        assert not [line for line in logs if "corpus.not_shared" in line]
        return
    # Each "machine" holds part: replay from either would miss the other's articles.
    assert all(list(c.glob("*.txt")) for c in corpora), "both workers stored articles"
    other_id = (corpora[1] / ID_FILE).read_text()
    assert replay.returncode == 2 and out == ""
    assert f"{corpora[1].resolve()} (id {other_id})" in err and "holds only part" in err
    assert text_redis.xlen("re") == 0
    retag = tradewire(redis_url, corpora[1], "retag")
    _, err = retag.communicate(timeout=120)
    assert retag.returncode == 2 and str(corpora[0].resolve()) in err
    assert any("corpus.not_shared" in line for line in logs)
