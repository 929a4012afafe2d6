"""One RQ worker process on one queue (RQ's dequeue is crash-safe only with one queue).

It is a ``SimpleWorker``: jobs run in this process instead of a fork per job, which costs
more than a whole extraction; the job timeout (SIGALRM) still bounds every job, and the
process exits after ``worker_max_jobs`` jobs so memory cannot creep (the supervisor starts
a fresh one). It also runs RQ's scheduler, which retries need.
"""

from __future__ import annotations

from rq import Queue, SimpleWorker

from core.claims import CLAIM_TTL_S, ArticleClaims
from core.connection import connect
from core.settings import Settings
from workers import resources
from workers.corpus import Corpus
from workers.duplicates import DuplicateIndex
from workers.fingerprint import DUPLICATE_SHARED
from workers.politeness import HostGate
from workers.stream import Emitter
from workers.tagging import load_taxonomy

# A dead worker's job is declared abandoned (and retried) after its heartbeat lapses;
# RQ's defaults take ~14 minutes, these ~2.
WORKER_TTL_S = 60
MAINTENANCE_INTERVAL_S = 30
JOB_MONITORING_INTERVAL_S = 15


def build_deps(settings: Settings) -> resources.Deps:
    text_redis = connect(settings, decode=True)
    return resources.Deps(
        settings=settings,
        text_redis=text_redis,
        rq_redis=connect(settings, decode=False),
        taxonomy=load_taxonomy(settings.taxonomy_file),
        corpus=Corpus(settings.corpus_dir, text_redis),
        emitter=Emitter(text_redis, settings),
        host_gate=HostGate(
            text_redis,
            settings.host_concurrency,
            settings.host_min_delay_s,
            settings.host_max_wait_s,
            lease_s=settings.http_total_timeout_s + 5,
        ),
        claims=ArticleClaims(text_redis, CLAIM_TTL_S, settings.seen_ttl_s),
        duplicates=DuplicateIndex(text_redis, DUPLICATE_SHARED, settings.duplicate_window_s),
        articles_emitter=(
            Emitter(text_redis, settings, stream=settings.articles_stream_name)
            if settings.articles_stream_name
            else None
        ),
    )


def make_worker(deps: resources.Deps, queue_name: str, name: str | None = None) -> SimpleWorker:
    return SimpleWorker(
        [Queue(queue_name, connection=deps.rq_redis)],
        connection=deps.rq_redis,
        name=name,
        worker_ttl=WORKER_TTL_S,
        maintenance_interval=MAINTENANCE_INTERVAL_S,
        job_monitoring_interval=JOB_MONITORING_INTERVAL_S,
    )


def run_worker(
    settings: Settings, queue_name: str, *, burst: bool = False, name: str | None = None
) -> bool:
    """Work ``queue_name`` until stopped (SIGTERM finishes the job in hand) or, in burst
    mode, until it is empty. Returns whether any job was run."""
    deps = build_deps(settings)
    resources.install(deps)
    try:
        worker = make_worker(deps, queue_name, name)
        return bool(
            worker.work(
                burst=burst,
                with_scheduler=True,
                max_jobs=settings.worker_max_jobs,
                logging_level="WARNING",
            )
        )
    finally:
        resources.install(None)
