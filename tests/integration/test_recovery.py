"""A child worker's exit hands back the jobs it had started, whatever its exit code."""

from __future__ import annotations

import time

import redis
from rq.registry import StartedJobRegistry

from core import keys, queues
from core.models import ArticleJob
from core.queues import enqueue_extracts
from core.settings import Settings
from service.app import _supervisor
from workers.jobs import extract_job


def _started_by(rq_redis: redis.Redis, settings: Settings, worker: str) -> str:
    """An extract job as a worker leaves it when it starts the job (RQ's own bookkeeping)."""
    article = ArticleJob(
        article_id="a1b2c3d4e5f60718", url="https://news.example/amp/story?utm_source=x",
        canonical_url="https://news.example/story", feed_url="https://news.example/feed",
        feed_title="Example", title="Story", published_at=None,
        discovered_at="2026-12-01T00:00:00Z",
    )  # fmt: skip
    enqueue_extracts(rq_redis, settings, extract_job, [article])
    q = queues.queue(rq_redis, keys.EXTRACT_QUEUE)
    [job] = q.jobs
    q.remove(job)
    with rq_redis.pipeline() as pipe:
        job.prepare_for_execution(worker, pipeline=pipe)
        # RQ 3 files a started job as "<job id>:<execution id>", scored by its deadline.
        pipe.zadd(StartedJobRegistry(queue=q).key, {f"{job.id}:execution-1": time.time() + 600})
        pipe.execute()
    return job.id


def test_a_worker_that_exits_0_with_a_job_started_hands_it_back(
    settings: Settings, rq_redis: redis.Redis
) -> None:
    job_id = _started_by(rq_redis, settings, "vm.1.extract-1.0")
    supervisor = _supervisor(settings, rq_redis, extract_workers=1, tag_workers=0)
    assert supervisor.on_exit is not None
    supervisor.on_exit("vm.1.extract-1.0", 0)  # exit 0, not a planned recycle after all
    q = queues.queue(rq_redis, keys.EXTRACT_QUEUE)
    assert q.job_ids == [job_id]
    assert StartedJobRegistry(queue=q).get_job_ids() == []


def test_another_workers_exit_leaves_the_job_alone(
    settings: Settings, rq_redis: redis.Redis
) -> None:
    job_id = _started_by(rq_redis, settings, "vm.1.extract-1.0")
    supervisor = _supervisor(settings, rq_redis, extract_workers=1, tag_workers=0)
    assert supervisor.on_exit is not None
    supervisor.on_exit("vm.1.extract-0.0", 1)
    q = queues.queue(rq_redis, keys.EXTRACT_QUEUE)
    assert q.job_ids == [] and StartedJobRegistry(queue=q).get_job_ids() == [job_id]
