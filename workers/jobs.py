"""RQ entry points. Thin: JSON in, one canonical log line out, the work in ``pipeline``.

Transient failures (timeouts, 5xx, Redis hiccups) raise, and RQ retries them with backoff.
Permanent ones (404, not an article) are logged with a reason and end the job normally:
retrying cannot help, and the failed-job registry is for things a person should look at.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime
from typing import Any, cast

import structlog
from rq import get_current_job

from service.enqueue import enqueue_tag
from service.errors import PermanentFetchError, RefusedArticleError
from service.events import build_event
from service.fetch import Fetcher, FetchResult
from service.metrics import ARTICLES, EVENT_LATENCY, EVENTS, EXTRACT_SECONDS
from service.models import Article, ArticleJob, TagResult
from service.stream import record_verdict
from service.urls import domain_of
from workers import resources
from workers.fingerprint import sketch
from workers.pipeline import (
    build_article,
    page_to_extraction,
    tag_document,
    with_page_canonical,
)

log = structlog.get_logger("tradewire.worker")
PAGE_TYPES = ("text/html", "application/xhtml", "text/plain")


def _job_id() -> str | None:
    job = get_current_job()
    return job.id if job is not None else None


def extract_job(payload: dict[str, Any]) -> dict[str, Any]:
    """Download, extract and store one article, then queue its tag job."""
    deps = resources.current()
    job = ArticleJob.from_dict(payload)
    with structlog.contextvars.bound_contextvars(
        article_id=job.article_id, url=job.url, job_id=_job_id()
    ):
        settings = deps.settings

        async def download(fetcher: Fetcher) -> FetchResult:
            if settings.respect_robots_txt and not await deps.robots.allowed(
                fetcher, job.url, settings.user_agent
            ):
                raise RefusedArticleError("robots_disallowed", "robots.txt disallows this page")

            async def get() -> FetchResult:
                return await fetcher.get(
                    job.url, max_bytes=settings.max_page_bytes, accept_types=PAGE_TYPES
                )

            return cast(FetchResult, await deps.host_gate.run(domain_of(job.url), get))

        try:
            page: FetchResult = deps.run(download)
            started = time.perf_counter()
            extraction = page_to_extraction(
                page.body, page.headers.get("content-type", ""), page.url,
                settings.min_article_words, job.title,
            )  # fmt: skip
        except (PermanentFetchError, RefusedArticleError) as exc:
            reason = exc.kind if isinstance(exc, PermanentFetchError) else exc.reason
            ARTICLES.labels(status="refused", reason=reason).inc()
            log.info("article.processed", status="refused", reason=reason, detail=str(exc)[:300])
            return {"status": "refused", "reason": reason}
        EXTRACT_SECONDS.observe(time.perf_counter() - started)
        job = with_page_canonical(job, page.url, extraction.canonical_url)
        if job.article_id != payload["article_id"] and not deps.claims.claim([job.article_id]):
            # The page names as canonical a URL another feed item already brought us.
            log.info("article.processed", status="duplicate", canonical_url=job.canonical_url)
            return {"status": "duplicate", "article_id": job.article_id}
        article = build_article(job, extraction, datetime.now(UTC))
        original = deps.duplicates.original_of(article.article_id, sketch(article.text))
        if original is not None:
            article = dataclasses.replace(article, duplicate_of=original)
            EVENTS.labels(outcome="near_duplicate").inc()
        path = deps.corpus.write(article.article_id, article.text, _meta(article))
        stored = Article.from_dict({**article.to_dict(), "corpus_file": path.name})
        enqueue_tag(deps.rq_redis, settings, stored.to_dict())
        ARTICLES.labels(status="extracted", reason="").inc()
        log.info("article.extracted", status="extracted", corpus_file=path.name)
        return {"status": "extracted", "corpus_file": path.name}


def tag_job(payload: dict[str, Any]) -> dict[str, Any]:
    """Tag one stored article and emit its event when it is about US–China trade."""
    deps = resources.current()
    article = Article.from_dict(payload)
    with structlog.contextvars.bound_contextvars(
        article_id=article.article_id, url=article.url, job_id=_job_id()
    ):
        tags = tag_document(deps.taxonomy, article.text, article.title)
        event = build_event(article, tags, now=datetime.now(UTC))
        if deps.articles_emitter is not None:
            deps.articles_emitter.emit(event)
        if not tags.us_china_trade:
            _record(deps, article, tags)
            log.info("article.processed", status="not_relevant", score=tags.score)
            return {"status": "not_relevant", "score": tags.score}
        result = deps.emitter.emit(event)
        # Bookkeeping only after the event is safely on the stream: a crash before this
        # line retries the job, and the emitter makes the retry harmless.
        _record(deps, article, tags)
        EVENTS.labels(outcome="emitted" if result.created else "duplicate_suppressed").inc()
        if result.created:
            _observe_latency(article)
        log.info(
            "article.processed",
            status="emitted" if result.created else "already_emitted",
            entry_id=result.entry_id,
            score=tags.score,
            topics=list(tags.topics),
        )
        return {"status": "emitted", "entry_id": result.entry_id, "created": result.created}


def _observe_latency(article: Article) -> None:
    now = datetime.now(UTC)
    for since, stamp in (
        ("published", article.published_at),
        ("discovered", article.discovered_at),
    ):
        if stamp:
            moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
            EVENT_LATENCY.labels(since=since).observe(max(0.0, (now - moment).total_seconds()))


def _record(deps: resources.Deps, article: Article, tags: TagResult) -> None:
    record_verdict(deps.text_redis, article.article_id, tags.to_dict(), deps.settings.emitted_ttl_s)


def _meta(article: Article) -> dict[str, Any]:
    data = article.to_dict()
    data.pop("text", None)
    return data
