"""RQ, in one place: the queues and their registries, jobs put on them (by function
reference, with ids, timeouts and the retry policy), the worker loop and job recovery.

Jobs are JSON, never pickle (RQ's default): with pickle, anyone who can write a queue key
runs code in every worker. A worker also runs only the functions it is given, with one
plain-data argument and none of RQ's callbacks, webhooks or dependencies, so a job
written into Redis by hand cannot name ``os.system`` either; anything else is refused
into the failed registry, unread (``_GuardedJob``).

No other module imports ``rq``. Job functions are passed in as real references (the poller
hands ``workers.jobs.extract_job`` to ``enqueue_extracts``) so a reader and a type checker
can follow an article from the poll to the job that handles it, while this kernel module
imports nothing from ``workers/`` or ``service/``.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import json
import pickletools
import zlib
from collections.abc import Callable, Collection, Sequence
from datetime import timedelta
from typing import Any, ClassVar, TypeVar, cast

import redis
import redis.asyncio
import structlog
from rq import Queue, Retry, SimpleWorker, Worker, get_current_job
from rq.exceptions import DeserializationError
from rq.job import Job, JobStatus
from rq.queue import EnqueueData
from rq.registry import FailedJobRegistry, StartedJobRegistry

from core import keys
from core.models import ArticleJob
from core.settings import Settings

log = structlog.get_logger("tradewire.queues")

# An RQ job function: a batch of JSON payloads in, a JSON summary out.
JobFunction = Callable[[list[dict[str, Any]]], dict[str, Any]]

_RETRY_INTERVALS_S = [10, 60, 300, 900, 3600]
FAILURE_TTL_S = 30 * 24 * 3600
# A dead worker's job is declared abandoned (and retried) after its heartbeat lapses;
# RQ's defaults take ~14 minutes, these ~2.
WORKER_TTL_S = 60
MAINTENANCE_INTERVAL_S = 30
JOB_MONITORING_INTERVAL_S = 15
T = TypeVar("T")


def retry_policy(settings: Settings) -> Retry | None:
    """RQ retries with growing intervals; the last interval repeats for further tries."""
    if settings.job_retries == 0:
        return None
    intervals = _RETRY_INTERVALS_S[: settings.job_retries]
    return Retry(max=settings.job_retries, interval=intervals)


def first_retry_interval_s(settings: Settings) -> float:
    return float(_RETRY_INTERVALS_S[0]) if settings.job_retries else 0.0


# -- what a job is: JSON, one of our functions, plain data ----------------------------------

# Pickle protocols 2 and later start with PROTO; RQ has written protocol 5 since 1.x.
_PICKLE_PROTO = b"\x80"


class LegacyPickleError(ValueError):
    """A payload pickled by a version before JSON jobs: refused without being read."""


class RefusedJobError(DeserializationError):
    """A job a worker will not run; the message says why (it is the failed job's error)."""


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


class JSONSerializer:
    """RQ's payloads (job data, meta, results) as strict JSON: no NaN, no pickle fallback.

    Stricter than ``rq.serializers.JSONSerializer`` in what it reads, and it names a
    pickled payload as such so the refusal says what happened."""

    @staticmethod
    def dumps(obj: Any) -> bytes:
        return json.dumps(obj, allow_nan=False, ensure_ascii=False).encode("utf-8")

    @staticmethod
    def loads(data: bytes) -> Any:
        if bytes(data[:1]) == _PICKLE_PROTO:
            raise LegacyPickleError(
                "pickled payload (queued by a version before JSON jobs); refused unread "
                "(`tradewire failed retry` converts the plain-data ones of our jobs)"
            )
        return json.loads(data, parse_constant=_no_constant)


def dotted_name(function: Callable[..., Any]) -> str:
    """The name RQ stores for ``function``, checked to import back to the same object: a
    job function defined in ``__main__``, nested or rebound would be unrunnable (or
    another function) in the worker."""
    name = f"{function.__module__}.{function.__qualname__}"
    found: Any = importlib.import_module(function.__module__)
    for part in function.__qualname__.split("."):
        found = getattr(found, part, None)
    if found is not function:
        raise ValueError(f"job function {name} does not import back by its dotted name")
    return name


def _shape_refusal(job: Job, allowed: Collection[str]) -> str | None:
    """Why a decoded job is not one of ours (None: it is)."""
    args = job.args
    if not isinstance(job.func_name, str) or not isinstance(args, list | tuple):
        return "not a job: a function name and a list of arguments are expected"
    if job.func_name not in allowed:
        return f"function {job.func_name!r} is not one of this worker's jobs"
    if job.instance is not None or job.kwargs:
        return "an instance or keyword arguments (ours take one argument)"
    if len(args) != 1 or not isinstance(args[0], list | dict):
        return "arguments are not one list or object of article data"
    if job._success_callback_name or job._failure_callback_name or job._stopped_callback_name:
        return "RQ callbacks (ours have none)"
    if job.webhooks or job.dependency_ids or job.repeats_left:
        return "webhooks, dependencies or repeats (ours have none)"
    return None


class _GuardedJob(Job):
    """A job as a worker sees it: decoded (JSON only) and checked once, when RQ first
    asks for its function or arguments; a refused job raises ``RefusedJobError`` on every
    such access, so RQ's own failure path files it, and it is never retried."""

    allowed: ClassVar[frozenset[str]] = frozenset()
    refusal: str | None = None
    _checked: object = None  # the payload the refusal (or its absence) is about

    def _deserialize_data(self) -> None:
        if self._checked is not self.data:
            self.refusal = self._check()
            if self.refusal is not None:
                self._disarm()
                log.warning("queues.job_refused", job_id=self.id, queue=self.origin,
                            reason=self.refusal)  # fmt: skip
            self._checked = self.data
        if self.refusal is not None:
            raise RefusedJobError(f"refused: {self.refusal}")

    def _disarm(self) -> None:
        """Forget what RQ would act on when it files the refused job: whatever was decoded,
        and the callbacks and webhooks its failure path would otherwise call."""
        self.data = self.data
        self._success_callback_name = self._failure_callback_name = None
        self._stopped_callback_name = None
        self.webhooks = []

    def _check(self) -> str | None:
        try:
            super()._deserialize_data()  # type: ignore[no-untyped-call]
        except DeserializationError as exc:
            cause = exc.__cause__
            if isinstance(cause, LegacyPickleError):
                return str(cause)
            return f"payload is not a JSON job ({type(cause).__name__}); refused unread"
        return _shape_refusal(self, self.allowed)

    @property
    def func(self) -> Any:
        self._deserialize_data()  # raises for a refused job, whatever was decoded before
        return super().func

    @property
    def should_retry(self) -> bool:
        return self.refusal is None and bool(super().should_retry)


# -- jobs a previous version pickled: converted on request, never unpickled ---------------

# The opcodes of a pickle of plain data (None, bools, numbers, strings, lists, tuples, dicts):
# none of them can import or call anything, and any other opcode refuses the whole payload.
_PUSH: dict[str, Callable[[], Any]] = {
    "NONE": lambda: None, "NEWTRUE": lambda: True, "NEWFALSE": lambda: False,
    "EMPTY_LIST": list, "EMPTY_DICT": dict, "EMPTY_TUPLE": tuple,
}  # fmt: skip
_LITERALS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "BININT", "BININT1", "BININT2",
             "LONG1", "BINFLOAT"}  # fmt: skip
_MARK = object()


def _until_mark(stack: list[Any]) -> list[Any]:
    at = max(i for i, item in enumerate(stack) if item is _MARK)
    items = stack[at + 1 :]
    del stack[at:]
    return items


def _plain_pickle(data: bytes) -> Any:
    """The value of a pickle of plain data, read opcode by opcode (``pickletools.genops``
    only parses); ``ValueError`` for anything else. Never ``pickle.loads``."""
    stack: list[Any] = []
    memo: dict[int, Any] = {}
    for op, arg, _ in pickletools.genops(data):
        name = op.name
        if name in ("PROTO", "FRAME"):
            continue
        if name == "STOP":
            return stack.pop()
        if name in _PUSH or name in _LITERALS or name == "MARK":
            stack.append(_PUSH[name]() if name in _PUSH else _MARK if name == "MARK" else arg)
        elif name in ("MEMOIZE", "BINPUT", "LONG_BINPUT"):
            memo[len(memo) if name == "MEMOIZE" else cast(int, arg)] = stack[-1]
        elif name in ("BINGET", "LONG_BINGET"):
            stack.append(memo[cast(int, arg)])
        elif name in ("APPEND", "APPENDS"):
            items = _until_mark(stack) if name == "APPENDS" else [stack.pop()]
            cast(list[Any], _of_type(stack[-1], list)).extend(items)
        elif name in ("SETITEM", "SETITEMS"):
            flat = _until_mark(stack) if name == "SETITEMS" else [stack.pop(-2), stack.pop()]
            _of_type(stack[-1], dict).update(zip(flat[::2], flat[1::2], strict=True))
        elif name in ("TUPLE", "TUPLE1", "TUPLE2", "TUPLE3"):
            n = {"TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3}.get(name)
            items = _until_mark(stack) if n is None else [stack.pop() for _ in range(n)][::-1]
            stack.append(tuple(items))
        else:
            raise ValueError(f"pickle opcode {name} is not plain data")
    raise ValueError("pickle without STOP")


def _of_type(value: Any, kind: type) -> Any:
    if type(value) is not kind:
        raise ValueError(f"{type(value).__name__} where a {kind.__name__} was expected")
    return value


def json_from_pickled_job(data: bytes, allowed: Collection[str]) -> bytes | None:
    """The JSON job a previous version pickled, if it is plain data and one of ``allowed``
    with one list or object argument; None otherwise (it stays refused)."""
    try:
        value = _plain_pickle(data)
    except (ValueError, IndexError, KeyError, TypeError):
        return None
    if not (isinstance(value, tuple) and len(value) == 4):
        return None
    func_name, instance, args, kwargs = value
    if func_name not in allowed or instance is not None or kwargs != {}:
        return None
    if not (isinstance(args, tuple) and len(args) == 1 and isinstance(args[0], list | dict)):
        return None
    try:
        return JSONSerializer.dumps([func_name, None, list(args), {}])
    except (TypeError, ValueError):  # bytes, NaN ...: not what our jobs carried
        return None


def _migrate_if_pickled(rq_redis: redis.Redis, job_id: str, allowed: Collection[str]) -> bool:
    """Convert a failed job's pickled payload to JSON in place; False: it stays refused."""
    key = Job.key_for(job_id)
    raw = cast(bytes | None, rq_redis.hget(key, "data"))
    if raw is None:
        return False
    try:
        data = zlib.decompress(raw)
    except zlib.error:
        data = raw
    if data[:1] != _PICKLE_PROTO:
        return True
    converted = json_from_pickled_job(data, allowed)
    if converted is None:
        log.warning("queues.pickled_job_kept", job_id=job_id,
                    reason="not plain data of one of our jobs: stays refused")  # fmt: skip
        return False
    rq_redis.hset(key, "data", zlib.compress(converted))
    log.info("queues.pickled_job_migrated", job_id=job_id)
    return True


@functools.cache
def _guarded_job_class(allowed: frozenset[str]) -> type[Job]:
    return type("GuardedJob", (_GuardedJob,), {"allowed": allowed})


def queue(connection: redis.Redis, name: str) -> Queue:
    return Queue(name, connection=connection, serializer=JSONSerializer)


def job_options(settings: Settings, job_id: str, articles: int = 1) -> dict[str, Any]:
    """The keyword arguments every job of ours is queued with."""
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
    extract: JobFunction,
    jobs: Sequence[ArticleJob],
    *,
    batch_size: int | None = None,
    delay_s: float = 0.0,
) -> None:
    """Queue the articles as ``extract`` jobs of up to ``job_batch_size`` articles each, in
    one round trip (``delay_s`` > 0: scheduled for later instead, one call per job).

    Batches, because RQ's own cost per job (~60 Redis commands, ~4 ms of worker CPU and
    ~1 ms of Redis CPU; benchmarks/pipeline_bench.py) is as much as all the rest of an
    article's handling besides extraction. A batch never waits to fill: it is what one
    feed poll brought.
    """
    if not jobs:
        return
    extract_queue = queue(connection, keys.EXTRACT_QUEUE)
    prepared = _prepared_extracts(settings, extract, jobs, batch_size)
    if delay_s <= 0:
        extract_queue.enqueue_many(prepared)
        return
    for data in prepared:
        extract_queue.enqueue_in(
            timedelta(seconds=delay_s), data.func, *data.args, description=data.description,
            job_id=data.job_id, job_timeout=data.timeout, retry=data.retry,
            result_ttl=data.result_ttl, failure_ttl=data.failure_ttl,
        )  # fmt: skip


def _prepared_extracts(
    settings: Settings, extract: JobFunction, jobs: Sequence[ArticleJob], batch_size: int | None
) -> list[EnqueueData]:
    name = dotted_name(extract)
    return [
        Queue.prepare_data(
            name,
            args=([job.to_dict() for job in batch],),
            description=f"extract {len(batch)}: {batch[0].canonical_url[:200]}",
            **job_options(
                settings, keys.job_id(keys.EXTRACT_QUEUE, [j.article_id for j in batch]), len(batch)
            ),
        )
        for batch in batched(jobs, batch_size or settings.job_batch_size)
    ]


# A sync client that never connects: RQ writes the jobs into one of its pipelines, which is
# read back and sent by an asyncio pipeline instead of being executed.
_RECORDER = redis.Redis(host="127.0.0.1", port=1, protocol=2)
_SERVER_VERSION = "_tradewire_rq_server_version"


async def enqueue_extracts_async(
    connection: redis.asyncio.Redis,
    settings: Settings,
    extract: JobFunction,
    jobs: Sequence[ArticleJob],
) -> None:
    """``enqueue_extracts`` for code on an event loop, with an asyncio client (bytes, as RQ's
    is): RQ's own ``enqueue_many`` builds the jobs and their keys in a pipeline that is
    never executed, and those very commands are sent in one asyncio round trip, so the jobs
    are exactly what RQ writes (its workers run them) and the loop never blocks."""
    if not jobs:
        return
    version = getattr(connection, _SERVER_VERSION, None)
    if version is None:
        info = await connection.info("server")
        version = tuple(int(part) for part in str(info["redis_version"]).split(".")[:3])
        setattr(connection, _SERVER_VERSION, version)
    extract_queue = queue(_RECORDER, keys.EXTRACT_QUEUE)
    extract_queue.redis_server_version = version  # RQ would ask the server (a blocking INFO)
    recorder = _RECORDER.pipeline(transaction=False)
    extract_queue.enqueue_many(_prepared_extracts(settings, extract, jobs, None), recorder)
    pipe = connection.pipeline(transaction=False)
    for args, options in recorder.command_stack:
        pipe.execute_command(*args, **options)
    recorder.reset()
    await pipe.execute()


def enqueue_tags(
    connection: redis.Redis,
    settings: Settings,
    tag: JobFunction,
    articles: Sequence[dict[str, Any]],
) -> None:
    """One ``tag`` job for the articles one extract job stored."""
    if not articles:
        return
    queue(connection, keys.TAG_QUEUE).enqueue_call(
        dotted_name(tag),
        args=(list(articles),),
        description=f"tag {len(articles)}: {articles[0]['canonical_url'][:200]}",
        **job_options(settings, keys.job_id(keys.TAG_QUEUE, [a["article_id"] for a in articles])),
    )


# -- inside a running job ------------------------------------------------------------------


def current_job_id() -> str | None:
    job = get_current_job()
    return job.id if job is not None else None


def current_job_is_retry(settings: Settings) -> bool:
    """Whether the running job already failed once (RQ counts retries down)."""
    job = get_current_job()
    return (
        job is not None and job.retries_left is not None and job.retries_left < settings.job_retries
    )


# -- workers -------------------------------------------------------------------------------


def work(
    rq_redis: redis.Redis,
    queue_name: str,
    *,
    functions: Collection[Callable[..., Any]],
    name: str | None,
    burst: bool,
    max_jobs: int | None,
) -> bool:
    """Run one ``SimpleWorker`` on ``queue_name`` (with RQ's scheduler, which retries
    need) until stopped, ``max_jobs`` jobs, or, in burst mode, an empty queue. It runs
    only jobs of ``functions``; any other job is refused into the failed registry."""
    return bool(
        make_worker(rq_redis, queue_name, functions, name).work(
            burst=burst, with_scheduler=True, max_jobs=max_jobs, logging_level="WARNING"
        )
    )


def make_worker(
    rq_redis: redis.Redis,
    queue_name: str,
    functions: Collection[Callable[..., Any]],
    name: str | None = None,
) -> SimpleWorker:
    """Jobs run in the worker's own process (no fork per job, which costs more than a whole
    extraction); the job timeout (SIGALRM) still bounds every job."""
    return SimpleWorker(
        [queue(rq_redis, queue_name)],
        connection=rq_redis,
        name=name,
        serializer=JSONSerializer,
        job_class=_guarded_job_class(frozenset(dotted_name(f) for f in functions)),
        worker_ttl=WORKER_TTL_S,
        maintenance_interval=MAINTENANCE_INTERVAL_S,
        job_monitoring_interval=JOB_MONITORING_INTERVAL_S,
    )


# -- what an operator and the health checks read -------------------------------------------


@dataclasses.dataclass(frozen=True)
class QueueCounts:
    waiting: int
    running: int
    scheduled_retries: int
    failed: int
    workers: int


def queue_counts(rq_redis: redis.Redis, *, with_workers: bool = True) -> dict[str, QueueCounts]:
    """Each queue's jobs by state (and its live workers unless ``with_workers`` is off)."""
    counts = {}
    for name in keys.QUEUES:
        q = queue(rq_redis, name)
        counts[name] = QueueCounts(
            waiting=q.count,
            running=q.started_job_registry.count,
            scheduled_retries=q.scheduled_job_registry.count,
            failed=FailedJobRegistry(queue=q).count,
            workers=len(Worker.all(queue=q)) if with_workers else 0,
        )
    return counts


def queues_without_workers(rq_redis: redis.Redis) -> list[str]:
    return [name for name in keys.QUEUES if not Worker.all(queue=queue(rq_redis, name))]


def failed_jobs(rq_redis: redis.Redis) -> list[dict[str, Any]]:
    """Every job in the failed registries, with the last line of its error."""
    out = []
    for name in keys.QUEUES:
        registry = FailedJobRegistry(queue=queue(rq_redis, name))
        for job_id in registry.get_job_ids():
            job = Job.fetch(job_id, connection=rq_redis, serializer=JSONSerializer)
            result = job.latest_result()
            error = (result.exc_string or "").strip().splitlines()[-1:] if result else []
            out.append({
                "queue": name, "job_id": job_id, "description": job.description,
                "failed_at": str(job.ended_at), "error": error[0] if error else "",
            })  # fmt: skip
    return out


def retry_failed(
    rq_redis: redis.Redis,
    job_ids: list[str] | None = None,
    functions: Collection[Callable[..., Any]] = (),
) -> int:
    """Requeue failed jobs (all, or those named); returns how many were requeued. A job a
    previous version pickled (refused by the workers) is converted to JSON first when it
    is plain data for one of ``functions``, and otherwise left where it is."""
    allowed = {dotted_name(f) for f in functions}
    count = 0
    for name in keys.QUEUES:
        registry = FailedJobRegistry(queue=queue(rq_redis, name))
        for job_id in registry.get_job_ids():
            if job_ids is None or job_id in job_ids:
                if not _migrate_if_pickled(rq_redis, job_id, allowed):
                    continue
                registry.requeue(job_id)
                count += 1
    return count


# -- getting a killed worker's job back ----------------------------------------------------


def recover_jobs_of(rq_redis: redis.Redis, worker_name: str) -> int:
    """Requeue (or fail, when out of retries) every job ``worker_name`` left started.

    RQ notices a dead worker's job only when the job's heartbeat lapses and a maintenance
    pass runs (about two minutes with our worker settings). The supervisor knows sooner:
    the moment a child dies, the jobs that child had started are handed back here, counted
    as one try (so a page that kills its worker every time ends in the failed registry
    instead of looping). A worker that dies with its whole machine is still caught by
    RQ's own pass.
    """
    recovered = 0
    for name in keys.QUEUES:
        q = queue(rq_redis, name)
        registry = StartedJobRegistry(queue=q)
        for entry in cast(list[bytes], rq_redis.zrange(registry.key, 0, -1)):
            job = _started_job_of(rq_redis, entry, worker_name)
            if job is None:
                continue
            with rq_redis.pipeline() as pipe:
                if job.retries_left:
                    # Back on the queue at once, not after the retry interval: the job did
                    # not fail, its worker died, and a scheduled retry would also wait for
                    # RQ's scheduler, which itself needs minutes to come back after Redis
                    # was lost (the usual reason several workers die at once).
                    job.retries_left -= 1
                    q.enqueue_job(job, pipeline=pipe, at_front=True)
                else:
                    FailedJobRegistry(queue=q).add(
                        job, exc_string=f"worker {worker_name} died running it", pipeline=pipe
                    )
                pipe.zrem(registry.key, entry)
                pipe.execute()
            recovered += 1
            log.warning("recovery.job_requeued", job_id=job.id, worker=worker_name,
                        retries_left=job.retries_left)  # fmt: skip
    return recovered


def _started_job_of(rq_redis: redis.Redis, entry: bytes | str, worker_name: str) -> Job | None:
    """The job behind a started-registry entry, if ``worker_name`` is running it."""
    text = entry.decode() if isinstance(entry, bytes) else str(entry)
    job_id = text.split(":", 1)[0]
    if not rq_redis.exists(Job.key_for(job_id)):
        return None
    job = Job.fetch(job_id, connection=rq_redis, serializer=JSONSerializer)
    if job.worker_name != worker_name or job.get_status(refresh=False) != JobStatus.STARTED:
        return None
    return job
