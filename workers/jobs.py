"""RQ entry points. Thin: JSON in, one canonical log line out, the work in ``pipeline``.

Transient failures (timeouts, 5xx, Redis hiccups) raise, and RQ retries them with backoff.
Permanent ones (404, not an article) are logged with a reason and end the job normally:
retrying cannot help, and the failed-job registry is for things a person should look at.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any, cast

import redis
import structlog

from core import queues
from core.errors import PermanentFetchError, RefusedArticleError, TransientFetchError
from core.fetch import Fetcher, FetchResult
from core.metrics import ARTICLES, EVENT_LATENCY, EVENTS, EXTRACT_SECONDS
from core.models import Article, ArticleJob
from core.urls import domain_of
from workers.context import WorkerContext, active
from workers.duplicates import sketch
from workers.pipeline import build_article, page_to_extraction, with_page_canonical
from workers.politeness import HostBusyError

log = structlog.get_logger("tradewire.worker")
PAGE_TYPES = ("text/html", "application/xhtml", "text/plain")


def extract_job(payload: list[dict[str, Any]] | dict[str, Any]) -> dict[str, Any]:
    """Download, extract and store a batch of articles, then tag them (``_tag_stored``).

    The batch's pages are downloaded concurrently (each through the host gate) and each is
    extracted as soon as it arrives. A page that fails for good is refused with a reason;
    one that fails transiently leaves the batch as a single-article job of its own,
    retried on the usual schedule. A batch that fails as a whole (the job timeout, a crash,
    Redis) is retried by RQ and then split into single-article jobs, so one poisonous page
    cannot hold its batch-mates back. Every step is idempotent per article.
    """
    return extract_batch(active(), _batch(payload))


def tag_job(payload: list[dict[str, Any]] | dict[str, Any]) -> dict[str, Any]:
    """Tag stored articles and emit an event for each one about US–China trade."""
    return tag_batch(active(), _batch(payload))


def _batch(payload: list[dict[str, Any]] | dict[str, Any]) -> list[dict[str, Any]]:
    return [payload] if isinstance(payload, dict) else payload  # dict: jobs queued by 0.1


def extract_batch(deps: WorkerContext, payloads: list[dict[str, Any]]) -> dict[str, Any]:
    """``extract_job``'s work, given the worker's context."""
    jobs = [ArticleJob.from_dict(p) for p in payloads]
    job_id = queues.current_job_id()
    if len(jobs) > 1 and queues.current_job_is_retry(deps.settings):
        queues.enqueue_extracts(deps.rq_redis, deps.settings, extract_job, jobs, batch_size=1)
        log.warning("extract.batch_split", job_id=job_id, articles=len(jobs))
        return {"status": "split", "articles": len(jobs)}

    extracted, retry_later, outcomes = deps.run(
        lambda fetcher: _download_and_extract(deps, fetcher, jobs, job_id)
    )
    articles = _mark_duplicates(deps, [article for article, _ in extracted])
    paths = deps.corpus.write_many([(a.article_id, a.text, _meta(a)) for a in articles])
    # Stored: the claims on canonical URLs (owned by the queued article) become durable.
    deps.claims.confirm(
        [(article.article_id, queued_id) for article, queued_id in extracted
         if article.article_id != queued_id]
    )  # fmt: skip
    stored = [
        dataclasses.replace(a, corpus_file=p.name) for a, p in zip(articles, paths, strict=True)
    ]
    for article in stored:
        with _article_context(article, job_id):
            ARTICLES.labels(status="extracted", reason="").inc()
            log.info("article.extracted", status="extracted", corpus_file=article.corpus_file)
    outcomes["extracted"] = len(stored)
    _tag_stored(deps, stored, job_id, outcomes)
    if retry_later:
        queues.enqueue_extracts(
            deps.rq_redis, deps.settings, extract_job, retry_later, batch_size=1,
            delay_s=queues.first_retry_interval_s(deps.settings),
        )  # fmt: skip
    return dict(outcomes)


def _tag_stored(
    deps: WorkerContext, stored: list[Article], job_id: str | None, outcomes: Counter[str]
) -> None:
    """Tag what this job stored, here: a tag job of its own cost more than the tagging
    (its RQ lifecycle, every article's text written to Redis and read back). When tagging
    fails, the articles not yet tagged go to the tag queue, where RQ retries them as any tag
    job; should that fail too (Redis gone), this job fails and its retry, idempotent per
    article, comes back here."""
    if not deps.settings.tag_in_extract:
        queues.enqueue_tags(deps.rq_redis, deps.settings, tag_job, [a.to_dict() for a in stored])
        return
    for done, article in enumerate(stored):
        with _article_context(article, job_id):
            try:
                outcomes[_tag_and_emit(deps, article)] += 1
            except Exception as exc:  # whatever it was, the tag queue retries these articles
                log.warning("tag.deferred", error=str(exc)[:300], articles=len(stored) - done)
                queues.enqueue_tags(
                    deps.rq_redis, deps.settings, tag_job, [a.to_dict() for a in stored[done:]]
                )
                return


async def _download_and_extract(
    deps: WorkerContext, fetcher: Fetcher, jobs: list[ArticleJob], job_id: str | None
) -> tuple[list[tuple[Article, str]], list[ArticleJob], Counter[str]]:
    """Download the batch's pages concurrently and extract each as it arrives: the
    articles (each with the id it was queued under), the jobs to retry on their own, and
    how the others ended."""
    extracted: list[tuple[Article, str]] = []
    retry_later: list[ArticleJob] = []
    outcomes: Counter[str] = Counter()
    downloads = [asyncio.ensure_future(_download(deps, fetcher, job)) for job in jobs]
    try:
        for finished in asyncio.as_completed(downloads):
            try:
                job, page = await finished
            except _DownloadFailed as failed:
                if len(jobs) == 1 or isinstance(failed.error, redis.RedisError):
                    raise failed.error from None  # RQ retries the job
                with _article_context(failed.job, job_id):
                    log.info("article.retry_later", error=str(failed.error)[:300])
                retry_later.append(failed.job)
                outcomes["retry_later"] += 1
                continue
            with _article_context(job, job_id):
                article = _extract(deps, job, page)
            if isinstance(article, Article):
                extracted.append((article, job.article_id))
            else:
                outcomes[article] += 1
    finally:
        # The event loop outlives this job: no download may linger into the next one.
        for download in downloads:
            download.cancel()
        await asyncio.gather(*downloads, return_exceptions=True)
    return extracted, retry_later, outcomes


class _DownloadFailed(Exception):
    def __init__(self, job: ArticleJob, error: BaseException) -> None:
        super().__init__(str(error))
        self.job = job
        self.error = error


async def _download(
    deps: WorkerContext, fetcher: Fetcher, job: ArticleJob
) -> tuple[ArticleJob, FetchResult | RefusedArticleError | PermanentFetchError]:
    """The page, or the permanent reason there is none; _DownloadFailed when worth a retry."""
    settings = deps.settings
    try:
        if settings.respect_robots_txt and not await deps.robots.allowed(
            fetcher, job.url, settings.user_agent
        ):
            return job, RefusedArticleError("robots_disallowed", "robots.txt disallows this page")

        async def get() -> FetchResult:
            return await fetcher.get(
                job.url, max_bytes=settings.max_page_bytes, accept_types=PAGE_TYPES
            )

        page = cast(FetchResult, await deps.host_gate.run(domain_of(job.url), get))
    except PermanentFetchError as exc:
        return job, exc
    except (TransientFetchError, HostBusyError, redis.RedisError) as exc:
        raise _DownloadFailed(job, exc) from exc
    return job, page


def _extract(
    deps: WorkerContext,
    job: ArticleJob,
    page: FetchResult | RefusedArticleError | PermanentFetchError,
) -> Article | str:
    """The article of one downloaded page (not yet stored), or the status it ended in."""
    settings = deps.settings
    queued_id = job.article_id
    try:
        if not isinstance(page, FetchResult):
            raise page
        started = time.perf_counter()
        extraction = page_to_extraction(
            page.body, page.headers.get("content-type", ""), page.url,
            settings.min_article_words, job.title,
        )  # fmt: skip
    except (PermanentFetchError, RefusedArticleError) as exc:
        reason = exc.kind if isinstance(exc, PermanentFetchError) else exc.reason
        ARTICLES.labels(status="refused", reason=reason).inc()
        log.info("article.processed", status="refused", reason=reason, detail=str(exc)[:300])
        return "refused"
    EXTRACT_SECONDS.observe(time.perf_counter() - started)
    job = with_page_canonical(job, page.url, extraction.canonical_url)
    # The claim's owner is the queued article, which every retry of this job shares: a
    # retry finds its own claim and goes on; another feed item's page naming the same
    # canonical URL finds it taken.
    if job.article_id != queued_id and not deps.claims.claim([job.article_id], queued_id).mine:
        # The page names as canonical a URL another feed item already brought us.
        log.info("article.processed", status="duplicate", canonical_url=job.canonical_url)
        return "duplicate"
    return build_article(job, extraction, datetime.now(UTC))


def _mark_duplicates(deps: WorkerContext, articles: list[Article]) -> list[Article]:
    """Name the original of each article that repeats an earlier one's text."""
    originals = deps.duplicates.originals_of([(a.article_id, sketch(a.text)) for a in articles])
    marked = []
    for article, original in zip(articles, originals, strict=True):
        if original is not None:
            article = dataclasses.replace(article, duplicate_of=original)
            EVENTS.labels(outcome="near_duplicate").inc()
        marked.append(article)
    return marked


def tag_batch(deps: WorkerContext, payloads: list[dict[str, Any]]) -> dict[str, Any]:
    """``tag_job``'s work, given the worker's context."""
    job_id = queues.current_job_id()
    outcomes: Counter[str] = Counter()
    for item in payloads:
        article = Article.from_dict(item)
        with _article_context(article, job_id):
            outcomes[_tag_and_emit(deps, article)] += 1
    return dict(outcomes)


def _tag_and_emit(deps: WorkerContext, article: Article) -> str:
    announced = deps.announcer.announce(article, datetime.now(UTC))
    tags = announced.tags
    story_id = announced.story.story_id if announced.story else None
    if announced.outcome == "not_relevant":
        log.info("article.processed", status="not_relevant", score=tags.score, story_id=story_id)
        return "not_relevant"
    created = announced.outcome == "emitted"
    EVENTS.labels(outcome="emitted" if created else "duplicate_suppressed").inc()
    if created:
        _observe_latency(article)
    log.info(
        "article.processed",
        status=announced.outcome,
        entry_id=announced.entry_id,
        score=tags.score,
        topics=list(tags.topics),
        story_id=story_id,
    )
    return announced.outcome


def _article_context(article: ArticleJob | Article, job_id: str | None) -> Any:
    return structlog.contextvars.bound_contextvars(
        article_id=article.article_id, url=article.url, job_id=job_id
    )


def _observe_latency(article: Article) -> None:
    now = datetime.now(UTC)
    for since, stamp in (
        ("published", article.published_at),
        ("discovered", article.discovered_at),
    ):
        if stamp:
            moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
            EVENT_LATENCY.labels(since=since).observe(max(0.0, (now - moment).total_seconds()))


def _meta(article: Article) -> dict[str, Any]:
    data = article.to_dict()
    data.pop("text", None)
    return data
