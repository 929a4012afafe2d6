"""From a stored article to what consumers see: tag it, build its event, put the event on
the stream, remember the verdict. The one path, used by the tag job, ``replay`` and
``retag``."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import redis

from core.models import Article, TagResult
from workers.corpus import Corpus
from workers.events import ARTICLE_UPDATED, build_event
from workers.pipeline import tag_document
from workers.stream import Emitter, last_verdict, record_verdict
from workers.tagging import Taxonomy


@dataclasses.dataclass(frozen=True)
class Announced:
    """What became of one article: its tags, and ``outcome`` one of ``not_relevant``,
    ``emitted``, ``already_emitted``, ``updated`` or ``unchanged``."""

    tags: TagResult
    outcome: str
    entry_id: str | None = None


class Announcer:
    """Tags articles and emits their events.

    ``verdicts`` is the client that remembers each article's last verdict (for ``retag``);
    None leaves them alone, as ``replay`` into a consumer's own stream must. ``memory``
    is the corpus, which remembers for as long as it holds an article that the article
    was announced (Redis forgets after ``emitted_ttl_s``); None for ``replay``, whose
    stream is the consumer's own.
    """

    def __init__(
        self,
        taxonomy: Taxonomy,
        emitter: Emitter,
        *,
        verdicts: redis.Redis | None,
        verdict_ttl_s: int,
        articles_emitter: Emitter | None = None,
        memory: Corpus | None = None,
    ) -> None:
        self.memory = memory
        self.taxonomy = taxonomy
        self.emitter = emitter
        self.verdicts = verdicts
        self.verdict_ttl_s = verdict_ttl_s
        self.articles_emitter = articles_emitter

    def announce(self, article: Article, now: datetime) -> Announced:
        """``article.created`` once per article when it is about US–China trade."""
        tags = tag_document(self.taxonomy, article.text, article.title)
        event = build_event(article, tags, now=now)
        if self.articles_emitter is not None:
            self.articles_emitter.emit(event)
        if not tags.us_china_trade:
            self._record(article, tags)
            return Announced(tags, "not_relevant")
        if self._announced_before(article) is not None:
            self._record(article, tags)
            return Announced(tags, "already_emitted")
        result = self.emitter.emit(event)
        # The verdict only after the event is safely on the stream: a crash before this
        # line retries the job, and the emitter makes the retry harmless.
        self._record(article, tags, announced=True)
        return Announced(tags, "emitted" if result.created else "already_emitted", result.entry_id)

    def announce_change(self, article: Article, now: datetime) -> Announced:
        """Emit only when the verdict (relevance or topics) differs from the last one: a
        newly relevant article gets its first ``article.created``, one already announced
        ``article.updated`` with the new tags."""
        tags = tag_document(self.taxonomy, article.text, article.title)
        announced = self._announced_before(article)
        prior = last_verdict(self.verdicts, article.article_id) if self.verdicts else None
        prior = prior or announced
        was_relevant = bool(prior and prior["us_china_trade"])
        same = (
            prior is not None
            and was_relevant == tags.us_china_trade
            and set(prior["topics"]) == set(tags.topics)
        )
        if same or not (was_relevant or tags.us_china_trade):
            # Consumers never saw an article that was and is irrelevant: nothing to say.
            return Announced(tags, "unchanged")
        outcome = "updated"
        if tags.us_china_trade and announced is None:
            created = self.emitter.emit(build_event(article, tags, now=now))
            outcome = "emitted" if created.created else "updated"
        if outcome == "updated":
            self.emitter.emit(build_event(article, tags, now=now, event_type=ARTICLE_UPDATED))
        self._record(article, tags, announced=True)
        return Announced(tags, outcome)

    def _announced_before(self, article: Article) -> dict[str, Any] | None:
        return self.memory.announced(article.article_id) if self.memory is not None else None

    def _record(self, article: Article, tags: TagResult, *, announced: bool = False) -> None:
        if self.verdicts is not None:
            record_verdict(self.verdicts, article.article_id, tags.to_dict(), self.verdict_ttl_s)
        if announced and self.memory is not None:
            self.memory.remember_announced(article.article_id, tags.to_dict())
