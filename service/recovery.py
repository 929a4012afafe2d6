"""Getting a killed worker's job back on its queue at once.

RQ notices a dead worker's job only when the job's heartbeat lapses and a maintenance
pass runs (about two minutes with our worker settings, fourteen with RQ's defaults). The
supervisor knows sooner: the moment a child dies, the jobs that child had started are
handed back here, counted as one try (so a page that kills its worker every time ends in
the failed registry instead of looping). A worker on another machine that dies with its
whole machine is still caught by RQ's own pass.
"""

from __future__ import annotations

from typing import cast

import redis
import structlog
from rq import Queue
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, StartedJobRegistry

from core import keys

log = structlog.get_logger("tradewire.recovery")


def recover_jobs_of(rq_redis: redis.Redis, worker_name: str) -> int:
    """Requeue (or fail, when out of retries) every job ``worker_name`` left started."""
    recovered = 0
    for name in keys.QUEUES:
        queue = Queue(name, connection=rq_redis)
        registry = StartedJobRegistry(queue=queue)
        for entry in cast(list[bytes], rq_redis.zrange(registry.key, 0, -1)):
            text = entry.decode() if isinstance(entry, bytes) else str(entry)
            job_id = text.split(":", 1)[0]
            job = (
                Job.fetch(job_id, connection=rq_redis)
                if rq_redis.exists(Job.key_for(job_id))
                else None
            )
            if job is None or job.worker_name != worker_name:
                continue
            if job.get_status(refresh=False) != JobStatus.STARTED:
                continue
            with rq_redis.pipeline() as pipe:
                if job.retries_left:
                    job.retry(queue, pipe)
                else:
                    FailedJobRegistry(queue=queue).add(
                        job, exc_string=f"worker {worker_name} died running it", pipeline=pipe
                    )
                pipe.zrem(registry.key, entry)
                pipe.execute()
            recovered += 1
            log.warning("recovery.job_requeued", job_id=job_id, worker=worker_name,
                        retries_left=job.retries_left)  # fmt: skip
    return recovered
