"""``tradewire recluster``: rebuild story ids after the method (or its model) changed,
and tell consumers only about the articles whose story membership changed."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from datetime import datetime

import redis
import structlog

from core import keys
from core.models import Article
from core.settings import Settings
from core.times import rfc3339
from workers.corpus import Corpus
from workers.events import STORY_UPDATED, build_event
from workers.pipeline import tag_document
from workers.stories import Model
from workers.story_redis import Stories, StoryState
from workers.stream import Emitter
from workers.tagging import Taxonomy

log = structlog.get_logger("tradewire.recluster")


@dataclasses.dataclass
class ReclusterReport:
    articles: int = 0
    stories: int = 0
    changed: int = 0
    emitted: int = 0


def recluster(
    settings: Settings, client: redis.Redis, taxonomy: Taxonomy, model: Model, *,
    since: datetime, now: datetime,
) -> ReclusterReport:  # fmt: skip
    """Forget every story, place the stored articles fetched since ``since`` again in the
    order they were published, and emit ``story.updated`` for each article of a relevant
    story whose fellow members changed. Story ids are named after a story's first article,
    so a story that comes out the same keeps its id."""
    corpus = Corpus(settings.corpus_dir, client)
    articles = sorted(
        (Article.from_dict(meta) for meta in corpus.stored_articles(since=rfc3339(since))),
        key=lambda a: (a.published_at or a.fetched_at, a.article_id),
    )
    stories = Stories(client, settings, model)
    old = {a.article_id: stories.store.story_of(a.article_id) for a in articles}
    _forget_stories(client)
    report = ReclusterReport(articles=len(articles))
    placed: dict[str, tuple[Article, StoryState, bool]] = {}
    for article in articles:
        tags = tag_document(taxonomy, article.text, article.title)
        state = stories.place(article, tags, now)
        placed[article.article_id] = (article, state, tags.us_china_trade)
    new = {aid: state.story_id for aid, (_, state, _) in placed.items()}
    report.stories = len(set(new.values()))
    changed = _membership_changed(old, new)
    report.changed = len(changed)
    relevant_stories = {state.story_id for _, state, relevant in placed.values() if relevant}
    emitter = Emitter(client, settings)
    for article_id in sorted(changed):
        article, state, _ = placed[article_id]
        if state.story_id not in relevant_stories:
            continue
        tags = tag_document(taxonomy, article.text, article.title)
        final = stories.book.state(state.story_id) or state
        emitter.emit(build_event(article, tags, now=now, event_type=STORY_UPDATED,
                                 story=(final.story_id, final.to_event())))  # fmt: skip
        report.emitted += 1
        log.info("story.reclustered", article_id=article_id, story_id=state.story_id)
    return report


def _forget_stories(client: redis.Redis) -> None:
    batch = list(client.scan_iter(match=keys.STORY_KEYS_PATTERN, count=1000))
    for start in range(0, len(batch), 500):
        client.delete(*batch[start : start + 500])
    client.delete(keys.STORIES_RECENT)


def _membership_changed(old: dict[str, str | None], new: dict[str, str]) -> set[str]:
    """Articles whose set of fellow members differs between the two partitions (an article
    the old one did not know counts as alone in its story)."""

    def groups(labels: dict[str, str]) -> dict[str, frozenset[str]]:
        members: dict[str, set[str]] = defaultdict(set)
        for article_id, label in labels.items():
            members[label].add(article_id)
        return {a: frozenset(members[label]) for a, label in labels.items()}

    before = groups({a: (s if s is not None else f"alone:{a}") for a, s in old.items()})
    after = groups(new)
    return {a for a in new if before.get(a, frozenset({a})) != after[a]}
