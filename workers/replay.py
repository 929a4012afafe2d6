"""Re-emitting stored articles: ``tradewire replay`` (rebuild a consumer's state) and
``tradewire retag`` (a new taxonomy reaches consumers without a re-crawl)."""

from __future__ import annotations

import dataclasses
from datetime import datetime

import redis
import structlog

from core.models import Article
from core.settings import Settings
from core.times import rfc3339
from workers.announce import Announcer
from workers.corpus import Corpus
from workers.stream import Emitter
from workers.tagging import Taxonomy

log = structlog.get_logger("tradewire.replay")


@dataclasses.dataclass
class ReplayReport:
    articles: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0


def replay(
    settings: Settings, client: redis.Redis, taxonomy: Taxonomy, *, since: datetime, stream: str,
    now: datetime,
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
    cutoff = rfc3339(since)
    for meta in Corpus(settings.corpus_dir, client).stored_articles():
        if meta.get("fetched_at", "") < cutoff:
            continue
        report.articles += 1
        outcome = announcer.announce(Article.from_dict(meta), now).outcome
        report.created += outcome == "emitted"
        report.unchanged += outcome == "already_emitted"
    return report


def retag(
    settings: Settings, client: redis.Redis, taxonomy: Taxonomy, *, now: datetime
) -> ReplayReport:
    """Run the current taxonomy over the corpus; emit for articles whose verdict (relevance
    or topics) changed. An article newly relevant gets its first ``article.created``; one
    already announced gets ``article.updated`` carrying the new tags and taxonomy_version."""
    report = ReplayReport()
    corpus = Corpus(settings.corpus_dir, client, number_ttl_s=settings.seen_ttl_s)
    announcer = Announcer(
        taxonomy, Emitter(client, settings), verdicts=client,
        verdict_ttl_s=settings.emitted_ttl_s, memory=corpus,
    )  # fmt: skip
    for meta in corpus.stored_articles():
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
    return report
