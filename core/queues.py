"""Putting work on the RQ queues: job ids, timeouts and the retry policy, in one place."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any, TypeVar

import redis
from rq import Queue, Retry

from core import keys
from core.models import ArticleJob
from core.settings import Settings

EXTRACT_FUNC = "workers.jobs.extract_job"
TAG_FUNC = "workers.jobs.tag_job"
_RETRY_INTERVALS_S = [10, 60, 300, 900, 3600]
FAILURE_TTL_S = 30 * 24 * 3600
T = TypeVar("T")


def retry_policy(settings: Settings) -> Retry | None:
    """RQ retries with growing intervals; the last interval repeats for further tries."""
    if settings.job_retries == 0:
        return None
    intervals = _RETRY_INTERVALS_S[: settings.job_retries]
    return Retry(max=settings.job_retries, interval=intervals)


def first_retry_interval_s(settings: Settings) -> float:
    return float(_RETRY_INTERVALS_S[0]) if settings.job_retries else 0.0


def queue(connection: redis.Redis, name: str) -> Queue:
    return Queue(name, connection=connection)


def _job_kwargs(settings: Settings, job_id: str, articles: int = 1) -> dict[str, Any]:
    return {
        "job_id": job_id,
        # The timeout bounds each page's extraction; a batch gets one bound per article.
        "timeout": settings.job_timeout_s * articles,
        "retry": retry_policy(settings),
        "result_ttl": 0,
        "failure_ttl": FAILURE_TTL_S,
    }


def batched(items: Sequence[T], size: int) -> list[Sequence[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def enqueue_extracts(
    connection: redis.Redis,
    settings: Settings,
    jobs: Sequence[ArticleJob],
    *,
    batch_size: int | None = None,
    delay_s: float = 0.0,
) -> None:
    """Queue the articles as extract jobs of up to ``job_batch_size`` articles each, in one
    round trip (``delay_s`` > 0: scheduled for later instead, one call per job).

    Batches, because RQ's own cost per job (~60 Redis commands, ~4 ms of worker CPU and
    ~1 ms of Redis CPU; benchmarks/pipeline_bench.py) is as much as all the rest of an
    article's handling besides extraction. A batch never waits to fill: it is what one
    feed poll brought.
    """
    if not jobs:
        return
    extract = queue(connection, keys.EXTRACT_QUEUE)
    prepared = [
        Queue.prepare_data(
            EXTRACT_FUNC,
            args=([job.to_dict() for job in batch],),
            description=f"extract {len(batch)}: {batch[0].canonical_url[:200]}",
            **_job_kwargs(
                settings, keys.job_id(keys.EXTRACT_QUEUE, [j.article_id for j in batch]), len(batch)
            ),
        )
        for batch in batched(jobs, batch_size or settings.job_batch_size)
    ]
    if delay_s <= 0:
        extract.enqueue_many(prepared)
        return
    for data in prepared:
        extract.enqueue_in(
            timedelta(seconds=delay_s), data.func, *data.args, description=data.description,
            job_id=data.job_id, job_timeout=data.timeout, retry=data.retry,
            result_ttl=data.result_ttl, failure_ttl=data.failure_ttl,
        )  # fmt: skip


def enqueue_tags(
    connection: redis.Redis, settings: Settings, articles: Sequence[dict[str, Any]]
) -> None:
    """One tag job for the articles one extract job stored."""
    if not articles:
        return
    tag = queue(connection, keys.TAG_QUEUE)
    tag.enqueue_call(
        TAG_FUNC,
        args=(list(articles),),
        description=f"tag {len(articles)}: {articles[0]['canonical_url'][:200]}",
        **_job_kwargs(settings, keys.job_id(keys.TAG_QUEUE, [a["article_id"] for a in articles])),
    )
