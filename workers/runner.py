"""One RQ worker process on one queue (RQ's dequeue is crash-safe only with one queue).

The process exits after ``worker_max_jobs`` jobs so memory cannot creep (the supervisor
starts a fresh one).
"""

from __future__ import annotations

from core import queues
from core.settings import Settings
from workers.context import WorkerContext, activated
from workers.jobs import extract_job, tag_job

# What a worker runs; any other job on its queue is refused unread (core/queues.py).
JOB_FUNCTIONS = (extract_job, tag_job)


def run_worker(
    settings: Settings, queue_name: str, *, burst: bool = False, name: str | None = None
) -> bool:
    """Work ``queue_name`` until stopped (SIGTERM finishes the job in hand) or, in burst
    mode, until it is empty. Returns whether any job was run."""
    with activated(WorkerContext.build(settings)) as context:
        return queues.work(
            context.rq_redis,
            queue_name,
            functions=JOB_FUNCTIONS,
            name=name,
            burst=burst,
            max_jobs=settings.worker_max_jobs,
        )
