"""Redis write access is not code execution: RQ jobs are JSON, and a worker runs only our
job functions with plain data. Each hostile job below would create a file if it ran; the
real worker (``workers.runner.run_worker``) against the private redis-server refuses it
into the failed registry with its reason, once, without retries, and the file never
appears. Jobs a previous version pickled are refused the same way, unread."""

from __future__ import annotations

import json
import os
import pickle
import zlib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
import structlog
from pytest_httpserver import HTTPServer
from rq import Queue, Retry
from rq.job import Job
from rq.registry import FailedJobRegistry, ScheduledJobRegistry

from core import keys, queues
from core.queues import failed_jobs, retry_failed
from core.settings import Settings
from tests.integration.test_batches import PAGES, article_job, site  # noqa: F401
from workers.jobs import extract_job
from workers.runner import JOB_FUNCTIONS, run_worker


class _RunsCommand:
    """Pickles to a call of ``os.system``: unpickling it runs the command."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (self.command,))


CALLED: list[tuple[Any, ...]] = []


def record_call(*args: Any) -> None:
    """A callback a hostile job names: RQ would call it on the job's failure."""
    CALLED.append(args)


def _refusals(settings: Settings) -> list[dict[str, Any]]:
    with structlog.testing.capture_logs() as logs:
        run_worker(settings, keys.EXTRACT_QUEUE, burst=True)
    return [entry for entry in logs if entry["event"] == "queues.job_refused"]


def _assert_refused(rq_redis: redis.Redis, job_id: str, reason: str) -> None:
    extract = queues.queue(rq_redis, keys.EXTRACT_QUEUE)
    assert FailedJobRegistry(queue=extract).get_job_ids() == [job_id]
    assert ScheduledJobRegistry(queue=extract).count == 0 and extract.count == 0  # no retry
    [listed] = failed_jobs(rq_redis)  # `tradewire failed`: reads the job without running it
    assert listed["job_id"] == job_id and reason in listed["error"], listed


def test_a_pickled_job_that_would_run_code_is_refused_and_does_nothing(
    settings: Settings, rq_redis: redis.Redis, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    # What the previous version (RQ's default pickle serializer) wrote, or an attacker.
    Queue(keys.EXTRACT_QUEUE, connection=rq_redis).enqueue_call(
        "workers.jobs.extract_job", args=(_RunsCommand(f"touch {marker}"),),
        job_id="extract-pickled", retry=Retry(max=2, interval=[1, 1]),
    )  # fmt: skip
    refusals = _refusals(settings)
    assert not marker.exists()
    assert [(r["job_id"], r["queue"]) for r in refusals] == [("extract-pickled", "extract")]
    assert "pickled payload" in refusals[0]["reason"]
    _assert_refused(rq_redis, "extract-pickled", "pickled payload")
    # `tradewire failed retry` converts only plain data of our jobs: this one stays put.
    assert retry_failed(rq_redis, None, JOB_FUNCTIONS) == 0
    assert _refusals(settings) == [] and not marker.exists()
    assert [job["job_id"] for job in failed_jobs(rq_redis)] == ["extract-pickled"]


def test_a_pickled_job_waiting_for_its_retry_is_refused_once_due(
    settings: Settings, rq_redis: redis.Redis, tmp_path: Path
) -> None:
    """The old version's scheduled retries: RQ's scheduler moves them, the worker refuses."""
    marker = tmp_path / "pwned"
    Queue(keys.EXTRACT_QUEUE, connection=rq_redis).enqueue_in(
        timedelta(seconds=0), "workers.jobs.extract_job", _RunsCommand(f"touch {marker}"),
        job_id="extract-scheduled",
    )  # fmt: skip
    assert queues.queue(rq_redis, keys.EXTRACT_QUEUE).scheduled_job_registry.count == 1
    refusals = _refusals(settings) + _refusals(settings)  # the scheduler moves, then it runs
    assert [r["job_id"] for r in refusals] == ["extract-scheduled"] and not marker.exists()
    _assert_refused(rq_redis, "extract-scheduled", "pickled payload")


def test_failed_retry_converts_a_job_the_previous_version_pickled(
    site: tuple[HTTPServer, dict[str, int]],  # noqa: F811 (the fixture, imported above)
    settings: Settings,
    rq_redis: redis.Redis,
) -> None:
    """Upgraded without draining: the old version's job is refused, then `tradewire
    failed retry` converts it to JSON (read opcode by opcode, never unpickled) and it runs."""
    server, state = site
    state["flaky_503s"] = 0
    job = article_job(server, PAGES[0])
    Queue(keys.EXTRACT_QUEUE, connection=rq_redis).enqueue_call(
        "workers.jobs.extract_job", args=([job.to_dict()],), job_id="extract-old"
    )
    assert [r["job_id"] for r in _refusals(settings)] == ["extract-old"]
    with structlog.testing.capture_logs() as logs:
        assert retry_failed(rq_redis, None, JOB_FUNCTIONS) == 1
    assert [e["job_id"] for e in logs if e["event"] == "queues.pickled_job_migrated"] == [
        "extract-old"
    ]
    assert _refusals(settings) == []
    assert len(list(settings.corpus_dir.glob("*.txt"))) == 1 and failed_jobs(rq_redis) == []


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_a_pickle_of_plain_data_is_read_without_unpickling(protocol: int) -> None:
    text = "中美贸易 tariffs"
    job = ("workers.jobs.tag_job", None, ([{"title": text, "n": 2**70, "x": 1.5, "ok": True,
            "authors": ("a", "b"), "none": None}, {"title": text}],), {})  # fmt: skip
    data = pickle.dumps(job, protocol=protocol)
    converted = queues.json_from_pickled_job(data, {"workers.jobs.tag_job"})
    assert converted is not None
    assert queues.JSONSerializer.loads(converted) == json.loads(json.dumps(job))
    assert queues.json_from_pickled_job(data, {"workers.jobs.extract_job"}) is None
    hostile = ("workers.jobs.tag_job", None, ([_RunsCommand("true")],), {})
    assert (
        queues.json_from_pickled_job(pickle.dumps(hostile, protocol), {"workers.jobs.tag_job"})
        is None
    )


@pytest.mark.parametrize(
    ("func", "args", "extra", "reason"),
    [
        ("os.system", ["touch {marker}"], {}, "'os.system' is not one of this worker's jobs"),
        ("posix.system", ["touch {marker}"], {}, "is not one of this worker's jobs"),
        # Our function, but RQ would call the callback (any importable name) after it.
        ("workers.jobs.extract_job", [[]], {"success_callback_name": "os.system"}, "callbacks"),
        ("workers.jobs.extract_job", ["touch {marker}"], {}, "not one list or object"),
        ("workers.jobs.extract_job", 5, {}, "a function name and a list of arguments"),
        (["os.system"], ["touch {marker}"], {}, "a function name and a list of arguments"),
        (
            "workers.jobs.extract_job",
            [[]],
            {"webhooks": '[{"url": "http://x/", "job_status": "failed"}]'},
            "webhooks",
        ),
    ],
)
def test_a_json_job_naming_anything_but_our_jobs_is_refused(
    settings: Settings,
    rq_redis: redis.Redis,
    tmp_path: Path,
    func: Any,
    args: Any,
    extra: dict[str, str],
    reason: str,
) -> None:
    """A job written into Redis by hand, in the JSON the workers read, as RQ stores it."""
    marker = tmp_path / "pwned"
    if isinstance(args, list):
        args = [a.format(marker=marker) if isinstance(a, str) else a for a in args]
    data = queues.JSONSerializer.dumps([func, None, args, {}])
    job_key = Job.key_for("extract-hostile")
    rq_redis.hset(job_key, mapping={
        "data": zlib.compress(data), "origin": keys.EXTRACT_QUEUE, "status": "queued",
        "created_at": "2026-01-01T00:00:00.000000Z", "description": "hostile",
        "timeout": 60, "retries_left": 2, "retry_intervals": "[1, 1]", **extra,
    })  # fmt: skip
    rq_redis.sadd("rq:queues", f"rq:queue:{keys.EXTRACT_QUEUE}")
    rq_redis.rpush(f"rq:queue:{keys.EXTRACT_QUEUE}", "extract-hostile")
    refusals = _refusals(settings)
    assert not marker.exists()
    assert len(refusals) == 1 and reason in refusals[0]["reason"], refusals
    _assert_refused(rq_redis, "extract-hostile", reason)


def test_a_refused_job_calls_back_nothing_and_sends_no_webhook(
    settings: Settings, rq_redis: redis.Redis, httpserver: HTTPServer
) -> None:
    """RQ's failure path calls a failed job's failure callback and webhooks; a refused
    job is filed without them."""
    CALLED.clear()
    hook = json.dumps([{"url": httpserver.url_for("/hook"), "job_status": "failed"}])
    data = queues.JSONSerializer.dumps(["workers.jobs.extract_job", None, ["x"], {}])
    rq_redis.hset(Job.key_for("extract-armed"), mapping={
        "data": zlib.compress(data), "origin": keys.EXTRACT_QUEUE, "status": "queued",
        "created_at": "2026-01-01T00:00:00.000000Z", "timeout": 60, "webhooks": hook,
        "failure_callback_name": f"{__name__}.record_call",
    })  # fmt: skip
    rq_redis.rpush(f"rq:queue:{keys.EXTRACT_QUEUE}", "extract-armed")
    assert len(_refusals(settings)) == 1
    assert CALLED == [] and httpserver.log == []
    stored = rq_redis.hgetall(Job.key_for("extract-armed"))
    assert not stored.get(b"failure_callback_name")


def test_our_jobs_are_queued_as_json_and_name_importable_functions(
    rq_redis: redis.Redis,
) -> None:
    queues.queue(rq_redis, keys.EXTRACT_QUEUE).enqueue_call(
        queues.dotted_name(extract_job), args=([{"article_id": "a" * 16}],), job_id="extract-x"
    )
    raw = zlib.decompress(rq_redis.hget(Job.key_for("extract-x"), "data") or b"")
    assert queues.JSONSerializer.loads(raw) == [
        "workers.jobs.extract_job",
        None,
        [[{"article_id": "a" * 16}]],
        {},
    ]
    with pytest.raises(pickle.UnpicklingError):
        pickle.loads(raw)  # plain JSON: nothing a pickle reader could act on

    def nested(payload: list[dict[str, Any]]) -> dict[str, Any]:
        return {}

    with pytest.raises(ValueError, match="does not import back"):
        queues.dotted_name(nested)
