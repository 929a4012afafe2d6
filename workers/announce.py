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
from workers.events import ARTICLE_UPDATED, STORY_UPDATED, build_event
from workers.pipeline import tag_document
from workers.story_redis import Stories, StoryState
from workers.stream import Emitter, last_verdict, record_verdict
from workers.tagging import Taxonomy


@dataclasses.dataclass(frozen=True)
class Announced:
    """What became of one article: its tags, and ``outcome`` one of ``not_relevant``,
    ``emitted``, ``already_emitted``, ``updated`` or ``unchanged``."""

    tags: TagResult
    outcome: str
    entry_id: str | None = None
    story: StoryState | None = None


class Announcer:
    """Tags articles and emits their events.

    ``verdicts`` is the client that remembers each article's last verdict (for ``retag``);
    None leaves them alone, as ``replay`` into a consumer's own stream must. ``memory``
    is the corpus, which remembers for as long as it holds an article that the article
    was announced (Redis forgets after ``emitted_ttl_s``); None for ``replay``, whose
    stream is the consumer's own. ``stories`` gives every article a story (None: events
    carry no story fields, as with ``stories_enabled: false``).
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
        stories: Stories | None = None,
    ) -> None:
        self.memory = memory
        self.stories = stories
        self.taxonomy = taxonomy
        self.emitter = emitter
        self.verdicts = verdicts
        self.verdict_ttl_s = verdict_ttl_s
        self.articles_emitter = articles_emitter

    def announce(self, article: Article, now: datetime) -> Announced:
        """``article.created`` once per article when it is about US–China trade."""
        tags = tag_document(self.taxonomy, article.text, article.title)
        # Most articles are not relevant: their verdict goes in the story step's last round
        # trip instead of one of its own (a relevant one's waits until its event is out).
        recorded = not (tags.us_china_trade or self.stories is None or self.verdicts is None)
        story = self._place(article, tags, now, with_verdict=recorded)
        # Built only for a stream that takes it: most articles are not relevant, and the
        # event (a hash and a word count of the text) costs as much as the verdict's write.
        event: dict[str, Any] | None = None
        if self.articles_emitter is not None:
            event = build_event(article, tags, now=now, story=_story(story))
            self.articles_emitter.emit(event)
        if not tags.us_china_trade:
            if not recorded:
                self._record(article, tags)
            self._story_updated(article, tags, story, now)
            return Announced(tags, "not_relevant", story=story)
        if self._announced_before(article) is not None:
            self._record(article, tags)
            return Announced(tags, "already_emitted", story=story)
        result = self.emitter.emit(
            event or build_event(article, tags, now=now, story=_story(story))
        )
        # The verdict only after the event is safely on the stream: a crash before this
        # line retries the job, and the emitter makes the retry harmless.
        self._record(article, tags, announced=True)
        self._story_updated(article, tags, story, now)
        outcome = "emitted" if result.created else "already_emitted"
        return Announced(tags, outcome, result.entry_id, story=story)

    def _place(
        self, article: Article, tags: TagResult, now: datetime, *, with_verdict: bool = False
    ) -> StoryState | None:
        if self.stories is None:
            return None
        if not with_verdict:
            return self.stories.place(article, tags, now)
        verdict = tags.to_dict()
        return self.stories.place(
            article, tags, now,
            also=lambda pipe: record_verdict(pipe, article.article_id, verdict, self.verdict_ttl_s),
        )  # fmt: skip

    def _story_updated(
        self, article: Article, tags: TagResult, story: StoryState | None, now: datetime
    ) -> None:
        """A relevant story gained a source (and none was announced lately): say so."""
        if story is not None and story.announce:
            self.emitter.emit(
                build_event(article, tags, now=now, event_type=STORY_UPDATED, story=_story(story))
            )

    def announce_change(self, article: Article, now: datetime) -> Announced:
        """Emit only when the verdict (relevance or topics) differs from the last one: a
        newly relevant article gets its first ``article.created``, one already announced
        ``article.updated`` with the new tags."""
        tags = tag_document(self.taxonomy, article.text, article.title)
        story = _story(self._place(article, tags, now))
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
            created = self.emitter.emit(build_event(article, tags, now=now, story=story))
            outcome = "emitted" if created.created else "updated"
        if outcome == "updated":
            self.emitter.emit(
                build_event(article, tags, now=now, event_type=ARTICLE_UPDATED, story=story)
            )
        self._record(article, tags, announced=True)
        return Announced(tags, outcome)

    def _announced_before(self, article: Article) -> dict[str, Any] | None:
        return self.memory.announced(article.article_id) if self.memory is not None else None

    def _record(self, article: Article, tags: TagResult, *, announced: bool = False) -> None:
        if self.verdicts is not None:
            record_verdict(self.verdicts, article.article_id, tags.to_dict(), self.verdict_ttl_s)
        if announced and self.memory is not None:
            self.memory.remember_announced(article.article_id, tags.to_dict())


def _story(state: StoryState | None) -> tuple[str, dict[str, Any]] | None:
    return (state.story_id, state.to_event()) if state is not None else None
