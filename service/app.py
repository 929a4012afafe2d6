"""Composition of the long-running processes: ``run``, ``poll`` and ``worker``.

Settings are loaded by the CLI and passed in; this module builds the clients, the health
server and the supervisor, installs signal handlers, and tears everything down in order:
readiness goes 503 first, the poller stops scheduling, workers finish the job in hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis
import structlog

from core import keys, queues
from core.connection import connect, describe, eviction_policy
from core.errors import ConfigError
from core.fetch import Fetcher
from core.metrics import RedisStateCollector, exposition_registry
from core.redact import mask_secrets
from core.settings import Settings
from service.embedded_redis import EmbeddedRedis, discover_url
from service.feedlist import load_feeds
from service.health import HealthServer, HealthState
from service.poller import Poller
from service.status import feeds_check
from service.supervisor import Supervisor
from service.websub import WebSub
from workers.corpus import check_corpus_dir
from workers.tagging import load_taxonomy

log = structlog.get_logger("tradewire.app")

# How long SIGTERM waits for workers to finish the job in hand before killing them.
SHUTDOWN_GRACE_S = 30.0
_REDIS_SETTINGS = (
    "redis_url",
    "redis_sentinels",
    "redis_sentinel_master",
    "redis_sentinel_password",
)


def validate_for_start(settings: Settings, *, feeds: bool, workers: bool) -> None:
    """Fail at start, with the problem named, rather than at the first job."""
    if feeds:
        load_feeds(settings.feeds_file)
    if workers:
        load_taxonomy(settings.taxonomy_file)
        check_corpus_dir(settings.corpus_dir)


@contextlib.contextmanager
def redis_for(
    settings: Settings, *, embedded_allowed: bool, discover: bool = False
) -> Iterator[Settings]:
    """Settings whose redis_url points at a live server: the configured one, or (for
    ``run`` and ``demo``) a private embedded one that is stopped on exit, or (``discover``,
    for the operator commands) the embedded one a ``tradewire run`` serves from this
    directory's ``redis_embedded_dir``."""
    if settings.uses_embedded_redis and discover:
        settings = settings.with_overrides(redis_url=discover_url(settings.redis_embedded_dir))
    if settings.uses_embedded_redis:
        if not embedded_allowed:
            raise ConfigError(
                "TRADEWIRE_REDIS_URL is required for this command: pollers and workers "
                "started on their own share one Redis that outlives them"
            )
        with EmbeddedRedis(settings.redis_embedded_dir) as server:
            log.info("redis.embedded_started", url=server.url, dir=str(server.directory))
            yield settings.with_overrides(redis_url=server.url)
        return
    client = connect(settings)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise ConfigError(
            f"Redis ({describe(settings)}) is not reachable: {mask_secrets(str(exc))}"
        ) from exc
    finally:
        client.close()
    yield settings


def redis_check(client: redis.Redis) -> Any:
    def check() -> str | None:
        try:
            client.ping()
        except redis.RedisError as exc:
            return f"redis: {exc}"
        return None

    return check


def eviction_check(client: redis.Redis) -> Any:
    def check() -> str | None:
        return _eviction_problem(eviction_policy(client))

    return check


def _eviction_problem(policy: str | None) -> str | None:
    """Evicted dedup and claim keys mean duplicate events: only ``noeviction`` is safe (an
    unknown policy is not held against the service)."""
    if policy is None or policy == "noeviction":
        return None
    return (
        f"Redis maxmemory-policy is {policy}: under memory pressure Redis may evict "
        "dedup keys and duplicate events; set it to noeviction"
    )


def _warn_about_eviction(client: redis.Redis) -> None:
    """Say at start what readiness will keep saying, or that it cannot be known."""
    try:
        policy = eviction_policy(client)
    except redis.RedisError as exc:
        log.info(
            "redis.eviction_policy_unchecked", reason=f"could not check maxmemory-policy: {exc}"
        )
        return
    if policy is None:
        log.info(
            "redis.eviction_policy_unchecked",
            reason="could not check maxmemory-policy: Redis refuses CONFIG GET",
        )
    elif problem := _eviction_problem(policy):
        log.warning("redis.eviction_policy", problem=problem)


def poller_heartbeat_check(client: redis.Redis, max_age_s: float) -> Any:
    def check() -> str | None:
        raw = client.get(keys.POLLER_HEARTBEAT)
        if raw is None:
            return "no poller has completed a cycle yet"
        age = time.time() - float(raw)
        if age > max_age_s:
            return f"last poller cycle {age:.0f}s ago (limit {max_age_s:.0f}s)"
        return None

    return check


def workers_check(rq_redis: redis.Redis) -> Any:
    def check() -> str | None:
        missing = queues.queues_without_workers(rq_redis)
        return f"no live worker on queue(s) {', '.join(missing)}" if missing else None

    return check


def queue_limits_check(rq_redis: redis.Redis, max_backlog: int, max_failed: int) -> Any:
    def check() -> str | None:
        problems = []
        for name, counts in queues.queue_counts(rq_redis, with_workers=False).items():
            if counts.waiting > max_backlog:
                problems.append(f"{name} backlog {counts.waiting} > {max_backlog}")
            if counts.failed > max_failed:
                problems.append(f"{name} failed jobs {counts.failed} > {max_failed}")
        return "; ".join(problems) or None

    return check


def worker_argv(queue_name: str) -> list[str]:
    return [sys.executable, "-m", "service", "work-one", "--queue", queue_name]


def serve(
    settings: Settings,
    metrics_dir: Path | None,
    *,
    poll: bool,
    extract_workers: int,
    tag_workers: int,
) -> int:
    """Run a poller and/or supervised workers with a health server until SIGTERM/SIGINT."""
    return asyncio.run(_serve(settings, metrics_dir, poll, extract_workers, tag_workers))


async def _serve(
    settings: Settings, metrics_dir: Path | None, poll: bool, extract_workers: int, tag_workers: int
) -> int:
    text_redis = connect(settings, decode=True)
    rq_redis = connect(settings, decode=False)
    state, loop_tick = _health_state(settings, workers=bool(extract_workers or tag_workers))
    registry = exposition_registry(metrics_dir)
    # Fail fast: a scrape must say Redis is down (tradewire_redis_up 0) within its timeout.
    collector = RedisStateCollector(
        connect(settings, decode=False, probe=True), settings.stream_name
    )
    registry.register(collector)
    supervisor = _supervisor(settings, rq_redis, extract_workers, tag_workers)
    poller: Poller | None = None
    fetcher: Fetcher | None = None
    websub: WebSub | None = None
    if poll:
        fetcher = Fetcher(settings)
        poller = Poller(settings, text_redis, rq_redis, fetcher)
        feeds = load_feeds(settings.feeds_file)
        poller.register(feeds)
        if settings.websub_callback_url:
            websub = WebSub(settings, poller, fetcher, listed=feeds)
            poller.push = state.push = websub
        probe = connect(settings, decode=True, probe=True)
        state.readiness["poller"] = poller_heartbeat_check(probe, 2 * poller.cycle_s + 5)
        state.readiness["feeds"] = feeds_check(probe, settings.feeds_degraded_after_s)
        if not settings.ready_requires_feeds:
            # A publisher's or the network's outage is reported, not a reason to restart.
            state.degrade_only.add("feeds")

    health = HealthServer(settings.health_host, settings.health_port, state, registry).start()
    log.info("service.started", health_port=health.port, poll=poll, extract_workers=extract_workers,
             tag_workers=tag_workers, settings=settings.redacted())  # fmt: skip
    await _run_until_signalled(supervisor, poller, state, loop_tick, websub)
    supervisor.stop(SHUTDOWN_GRACE_S)
    if fetcher is not None:
        await fetcher.aclose()
    health.stop()
    registry.unregister(collector)
    log.info("service.stopped")
    return 0


def _health_state(settings: Settings, *, workers: bool) -> tuple[HealthState, list[float]]:
    """Liveness and readiness checks; the list holds when the main loop last turned.

    Checks get their own fail-fast clients: once Redis is found down, the checks that need
    it say so instead of each waiting on it.
    """
    state = HealthState()
    loop_tick = [time.monotonic()]
    state.liveness["loop"] = lambda: (
        None if time.monotonic() - loop_tick[0] < 60 else "main loop has not turned for 60s"
    )
    probe = connect(settings, decode=True, probe=True)
    state.readiness["redis"] = redis_check(probe)
    state.readiness["eviction"] = eviction_check(probe)
    _warn_about_eviction(probe)
    if workers:
        probe_rq = connect(settings, decode=False, probe=True)
        state.readiness["workers"] = workers_check(probe_rq)
        state.readiness["queues"] = queue_limits_check(
            probe_rq, settings.ready_max_backlog, settings.ready_max_failed
        )
    return state, loop_tick


def _supervisor(
    settings: Settings, rq_redis: redis.Redis, extract_workers: int, tag_workers: int
) -> Supervisor:
    def hand_back_jobs(instance: str, code: int) -> None:
        # Whatever the exit code: RQ's worker can exit 0 after an unhandled exception (seen
        # when Redis came back under it), its job still started. After a planned recycle
        # (max_jobs) nothing is left started and this finds nothing.
        del code
        queues.recover_jobs_of(rq_redis, instance)

    supervisor = Supervisor(on_exit=hand_back_jobs)
    # The workers find the Redis this process found (an embedded one's URL is known only
    # here); Sentinel settings travel too, so each worker asks the Sentinels itself.
    for name in _REDIS_SETTINGS:
        value = getattr(settings, name)
        if value is not None:
            supervisor.env[f"TRADEWIRE_{name.upper()}"] = str(value)
    for i in range(extract_workers):
        supervisor.add(f"extract-{i}", worker_argv(keys.EXTRACT_QUEUE))
    for i in range(tag_workers):
        supervisor.add(f"tag-{i}", worker_argv(keys.TAG_QUEUE))
    return supervisor


async def _run_until_signalled(
    supervisor: Supervisor,
    poller: Poller | None,
    state: HealthState,
    loop_tick: list[float],
    websub: WebSub | None = None,
) -> None:
    """Tend the workers and run the poller until SIGTERM/SIGINT; then readiness goes 503
    and the poller stops scheduling (the caller stops the workers)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def tick() -> None:
        while not stop.is_set():
            loop_tick[0] = time.monotonic()
            supervisor.check()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)

    tasks = [asyncio.create_task(tick())]
    if poller is not None:
        tasks.append(asyncio.create_task(poller.run(stop)))
    if websub is not None:
        tasks.append(asyncio.create_task(websub.run(stop)))
    await stop.wait()
    log.info("service.stopping")
    state.shutting_down = True  # readiness 503 before anything stops
    await asyncio.gather(*tasks, return_exceptions=True)
