"""The steps each job runs, as functions of data (no Redis, no HTTP)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import structlog

from core.document import read_document
from core.models import Article, ArticleJob, TagResult
from core.times import rfc3339
from core.urls import article_id_for, canonicalize_url, resolve_link, same_site
from workers.extract import Extraction, decode_html, extract_article
from workers.tagging import Taxonomy, tag_article

log = structlog.get_logger("tradewire.worker")


def page_to_extraction(
    body: bytes,
    content_type: str,
    url: str,
    min_words: int,
    fallback_title: str,
    *,
    refuse_non_articles: bool = True,
) -> Extraction:
    """Decode and extract; raises RefusedArticleError when the page is not an article.
    Benchmarks of extraction quality turn the walls/teasers check off to score the text."""
    html = decode_html(body, content_type)
    return extract_article(
        html, url, min_words, fallback_title, refuse_non_articles=refuse_non_articles
    )


def published_at(extraction: Extraction, job: ArticleJob) -> str | None:
    """The feed's timestamp when it has one (it carries a time), else the page's date."""
    if job.published_at:
        return job.published_at
    if extraction.published:
        try:
            day = datetime.strptime(extraction.published[:10], "%Y-%m-%d").replace(tzinfo=UTC)
        except ValueError:
            return None
        return rfc3339(day)
    return None


def with_page_canonical(job: ArticleJob, page_url: str, canonical: str | None) -> ArticleJob:
    """Prefer the page's own ``<link rel="canonical">`` when it is a usable URL on the same
    site (one pointing elsewhere is a syndication credit or a mistake, not this URL; one
    that is malformed is the page's bug). Otherwise the job keeps the link it came with."""
    if not canonical:
        return job
    absolute = resolve_link(page_url, canonical)
    canonical_url = canonicalize_url(absolute) if absolute else None
    if canonical_url is None or not same_site(canonical_url, page_url):
        log.info(
            "article.canonical_ignored",
            url=job.url,
            canonical=canonical[:300],
            reason="not a fetchable URL" if canonical_url is None else "another site",
        )
        return job
    if canonical_url == job.canonical_url:
        return job
    return dataclasses.replace(
        job, canonical_url=canonical_url, article_id=article_id_for(canonical_url)
    )


def build_article(job: ArticleJob, extraction: Extraction, fetched_at: datetime) -> Article:
    return Article(
        article_id=job.article_id,
        url=job.url,
        canonical_url=job.canonical_url,
        feed_url=job.feed_url,
        feed_title=job.feed_title,
        title=extraction.title or job.title,
        text=extraction.text,
        authors=extraction.authors,
        published_at=published_at(extraction, job),
        fetched_at=rfc3339(fetched_at),
        discovered_at=job.discovered_at,
        language=extraction.language,
        site_name=extraction.site_name,
        source_kind=job.source_kind,
    )


def tag_document(taxonomy: Taxonomy, text: str, title: str = "") -> TagResult:
    """Tag a seed-format document (either layout)."""
    doc_title, paragraphs = read_document(text)
    return tag_article(taxonomy, title or doc_title, paragraphs)
