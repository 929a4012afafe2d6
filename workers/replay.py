"""Re-emitting stored articles: ``tradewire replay`` (rebuild a consumer's state) and
``tradewire retag`` (a new taxonomy reaches consumers without a re-crawl)."""

from __future__ import annotations

import dataclasses
import time
from datetime import datetime

import redis
import structlog

from core.models import Article
from core.settings import Settings
from core.times import rfc3339
from workers.announce import Announcer
from workers.corpus import Corpus
from workers.story_redis import story_placer
from workers.stream import Emitter
from workers.tagging import Taxonomy

log = structlog.get_logger("tradewire.replay")

# A progress line per this many corpus files scanned: a few lines a minute at tagging
# speed, and the last line names the total.
PROGRESS_EVERY = 5_000


@dataclasses.dataclass
class ReplayReport:
    articles: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0


class _Progress:
    """Structured progress lines on the log stream (stderr), never on stdout, where the
    command prints its result."""

    def __init__(self, command: str, report: ReplayReport, every: int) -> None:
        self.command = command
        self.report = report
        self.every = every
        self.scanned = self.total = 0
        self.started = time.monotonic()

    def __call__(self, scanned: int, total: int) -> None:
        self.scanned, self.total = scanned, total
        if scanned % self.every == 0:
            self._line()

    def finish(self) -> None:
        self._line()

    def _line(self) -> None:
        elapsed = time.monotonic() - self.started
        log.info(f"{self.command}.progress", scanned=self.scanned, total=self.total,
                 articles=self.report.articles, emitted=self.report.created + self.report.updated,
                 elapsed_s=round(elapsed, 1))  # fmt: skip


def replay(
    settings: Settings, client: redis.Redis, taxonomy: Taxonomy, *, since: datetime, stream: str,
    now: datetime, progress_every: int = PROGRESS_EVERY,
) -> ReplayReport:  # fmt: skip
    """Emit ``article.created`` to ``stream`` for every stored article fetched since
    ``since`` that the current taxonomy finds relevant. Idempotent per stream: replaying
    twice into one stream adds nothing the second time. Verdicts are left as they are: a
    replay into a consumer's own stream changes nothing for anyone else."""
    report = ReplayReport()
    announcer = Announcer(
        taxonomy, Emitter(client, settings, stream=stream), verdicts=None,
        verdict_ttl_s=settings.emitted_ttl_s,
    )  # fmt: skip
    progress = _Progress("replay", report, progress_every)
    corpus = Corpus(settings.corpus_dir, client)
    corpus.require_whole("replay")
    for meta in corpus.stored_articles(since=rfc3339(since), on_scanned=progress):
        report.articles += 1
        outcome = announcer.announce(Article.from_dict(meta), now).outcome
        report.created += outcome == "emitted"
        report.unchanged += outcome == "already_emitted"
    progress.finish()
    return report


def retag(
    settings: Settings, client: redis.Redis, taxonomy: Taxonomy, *, now: datetime,
    progress_every: int = PROGRESS_EVERY,
) -> ReplayReport:  # fmt: skip
    """Run the current taxonomy over the corpus; emit for articles whose verdict (relevance
    or topics) changed. An article newly relevant gets its first ``article.created``; one
    already announced gets ``article.updated`` carrying the new tags and taxonomy_version."""
    report = ReplayReport()
    corpus = Corpus(settings.corpus_dir, client, number_ttl_s=settings.seen_ttl_s)
    corpus.require_whole("retag")
    announcer = Announcer(
        taxonomy, Emitter(client, settings), verdicts=client,
        verdict_ttl_s=settings.emitted_ttl_s, memory=corpus,
        stories=story_placer(client, settings),
    )  # fmt: skip
    progress = _Progress("retag", report, progress_every)
    for meta in corpus.stored_articles(on_scanned=progress):
        report.articles += 1
        article = Article.from_dict(meta)
        announced = announcer.announce_change(article, now)
        report.created += announced.outcome == "emitted"
        report.updated += announced.outcome == "updated"
        report.unchanged += announced.outcome == "unchanged"
        if announced.outcome != "unchanged":
            log.info("article.retagged", article_id=article.article_id,
                     relevant=announced.tags.us_china_trade,
                     taxonomy_version=announced.tags.taxonomy_version)  # fmt: skip
    progress.finish()
    return report
