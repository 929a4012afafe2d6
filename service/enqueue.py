"""Putting work on the RQ queues: job ids, timeouts and the retry policy, in one place."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis
from rq import Queue, Retry

from service import keys
from service.models import ArticleJob
from service.settings import Settings

EXTRACT_FUNC = "workers.jobs.extract_job"
TAG_FUNC = "workers.jobs.tag_job"
_RETRY_INTERVALS_S = [10, 60, 300, 900, 3600]
FAILURE_TTL_S = 30 * 24 * 3600


def retry_policy(settings: Settings) -> Retry | None:
    """RQ retries with growing intervals; the last interval repeats for further tries."""
    if settings.job_retries == 0:
        return None
    intervals = _RETRY_INTERVALS_S[: settings.job_retries]
    return Retry(max=settings.job_retries, interval=intervals)


def queue(connection: redis.Redis, name: str) -> Queue:
    return Queue(name, connection=connection)


def _job_kwargs(settings: Settings, job_id: str) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "timeout": settings.job_timeout_s,
        "retry": retry_policy(settings),
        "result_ttl": 0,
        "failure_ttl": FAILURE_TTL_S,
    }


def enqueue_extracts(
    connection: redis.Redis, settings: Settings, jobs: Sequence[ArticleJob]
) -> None:
    """Queue one extract job per article in a single round trip."""
    if not jobs:
        return
    extract = queue(connection, keys.EXTRACT_QUEUE)
    extract.enqueue_many(
        [
            Queue.prepare_data(
                EXTRACT_FUNC,
                args=(job.to_dict(),),
                description=f"extract {job.canonical_url[:200]}",
                **_job_kwargs(settings, keys.extract_job_id(job.article_id)),
            )
            for job in jobs
        ]
    )


def enqueue_tag(connection: redis.Redis, settings: Settings, article: dict[str, Any]) -> None:
    tag = queue(connection, keys.TAG_QUEUE)
    tag.enqueue_call(
        TAG_FUNC,
        args=(article,),
        description=f"tag {article['canonical_url'][:200]}",
        **_job_kwargs(settings, keys.tag_job_id(article["article_id"])),
    )
