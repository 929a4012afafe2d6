"""Records passed between stages. Frozen dataclasses; jobs carry them as plain dicts (JSON)."""

from __future__ import annotations

import dataclasses
from typing import Any

from core.urls import short_hash

# What a source in the feed list serves: RSS/Atom/RDF, or a (news) sitemap or sitemap index.
SOURCE_KINDS = ("feed", "sitemap")


@dataclasses.dataclass(frozen=True)
class Feed:
    """One entry of the feed list."""

    url: str
    title: str = ""
    interval_s: float | None = None
    kind: str = "feed"  # one of SOURCE_KINDS: what the URL serves

    @property
    def feed_id(self) -> str:
        return short_hash(self.url)


@dataclasses.dataclass(frozen=True)
class FeedItem:
    """One entry of a parsed feed, its link already absolute and canonical."""

    url: str
    canonical_url: str
    article_id: str
    guid: str = ""
    title: str = ""
    published_at: str | None = None  # RFC 3339 UTC


@dataclasses.dataclass(frozen=True)
class ArticleJob:
    """What the poller hands the extract worker."""

    article_id: str
    url: str
    canonical_url: str
    feed_url: str
    feed_title: str
    title: str
    published_at: str | None
    discovered_at: str
    source_kind: str = "feed"  # the kind of source that brought it (Feed.kind)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArticleJob:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclasses.dataclass(frozen=True)
class Article:
    """A cleaned article: the seed-format text and the metadata the event carries."""

    article_id: str
    url: str
    canonical_url: str
    feed_url: str
    feed_title: str
    title: str
    text: str  # the seed format: title line, blank line, paragraphs
    authors: tuple[str, ...]
    published_at: str | None
    fetched_at: str
    discovered_at: str
    language: str | None
    site_name: str | None
    corpus_file: str | None = None
    duplicate_of: str | None = None  # the first article with (nearly) this same text
    source_kind: str = "feed"

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["authors"] = list(self.authors)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Article:
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        values["authors"] = tuple(values.get("authors") or ())
        return cls(**values)


@dataclasses.dataclass(frozen=True)
class TagResult:
    """The tagger's verdict on one article, with what drove it."""

    us_china_trade: bool
    score: float
    topics: tuple[str, ...]
    entities: tuple[str, ...]
    evidence: tuple[str, ...]
    taxonomy_version: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "us_china_trade": self.us_china_trade,
            "score": self.score,
            "topics": list(self.topics),
            "entities": list(self.entities),
            "evidence": list(self.evidence),
            "taxonomy_version": self.taxonomy_version,
        }
