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
from workers.corpus import Corpus
from workers.events import ARTICLE_CREATED, ARTICLE_UPDATED, build_event
from workers.pipeline import tag_document
from workers.stream import Emitter, last_verdict, record_verdict
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
    twice into one stream adds nothing the second time."""
    report = ReplayReport()
    emitter = Emitter(client, settings, stream=stream)
    cutoff = rfc3339(since)
    for meta in Corpus(settings.corpus_dir, client).stored_articles():
        if meta.get("fetched_at", "") < cutoff:
            continue
        report.articles += 1
        article = Article.from_dict(meta)
        tags = tag_document(taxonomy, article.text, article.title)
        if not tags.us_china_trade:
            continue
        result = emitter.emit(build_event(article, tags, now=now))
        report.created += result.created
        report.unchanged += not result.created
    return report


def retag(
    settings: Settings, client: redis.Redis, taxonomy: Taxonomy, *, now: datetime
) -> ReplayReport:
    """Run the current taxonomy over the corpus; emit for articles whose verdict (relevance
    or topics) changed. An article newly relevant gets its first ``article.created``; one
    already announced gets ``article.updated`` carrying the new tags and taxonomy_version."""
    report = ReplayReport()
    emitter = Emitter(client, settings)
    for meta in Corpus(settings.corpus_dir, client).stored_articles():
        report.articles += 1
        article = Article.from_dict(meta)
        tags = tag_document(taxonomy, article.text, article.title)
        prior = last_verdict(client, article.article_id)
        was_relevant = bool(prior and prior["us_china_trade"])
        same = (
            prior is not None
            and was_relevant == tags.us_china_trade
            and (set(prior["topics"]) == set(tags.topics))
        )
        if same or not (was_relevant or tags.us_china_trade):
            # Consumers never saw an article that was and is irrelevant: nothing to say.
            report.unchanged += 1
            continue
        event_type = ARTICLE_CREATED if tags.us_china_trade else ARTICLE_UPDATED
        result = emitter.emit(build_event(article, tags, now=now, event_type=event_type))
        if event_type == ARTICLE_CREATED and not result.created:
            emitter.emit(build_event(article, tags, now=now, event_type=ARTICLE_UPDATED))
            report.updated += 1
        elif event_type == ARTICLE_CREATED:
            report.created += 1
        else:
            report.updated += 1
        record_verdict(client, article.article_id, tags.to_dict(), settings.emitted_ttl_s)
        log.info("article.retagged", article_id=article.article_id, relevant=tags.us_china_trade,
                 taxonomy_version=tags.taxonomy_version)  # fmt: skip
    return report
