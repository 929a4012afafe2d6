"""What the job functions work with, built once per worker process.

RQ calls module-level functions with JSON arguments only, so a worker process builds one
``WorkerContext`` at start (its Redis clients, corpus, stores, compiled taxonomy and, on
first use, its event loop and HTTP client) and activates it for the jobs it runs; the job
entry points in ``workers.jobs`` fetch it with ``active()`` and hand it on explicitly.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import redis
import structlog

from core.claims import CLAIM_TTL_S, ArticleClaims
from core.connection import connect
from core.fetch import Fetcher
from core.settings import Settings
from workers.announce import Announcer
from workers.corpus import Corpus
from workers.duplicates import DUPLICATE_SHARED, DuplicateIndex
from workers.politeness import HostGate
from workers.robots import RobotsCache
from workers.story_redis import story_placer
from workers.stream import Emitter
from workers.tagging import load_taxonomy

T = TypeVar("T")
log = structlog.get_logger("tradewire.worker")


@dataclasses.dataclass
class WorkerContext:
    settings: Settings
    text_redis: redis.Redis
    rq_redis: redis.Redis
    corpus: Corpus
    duplicates: DuplicateIndex
    claims: ArticleClaims
    host_gate: HostGate
    announcer: Announcer
    robots: RobotsCache = dataclasses.field(default_factory=RobotsCache)
    _runner: asyncio.Runner | None = None
    _fetcher: Fetcher | None = None

    @classmethod
    def build(cls, settings: Settings) -> WorkerContext:
        text_redis = connect(settings, decode=True)
        corpus = Corpus(settings.corpus_dir, text_redis, number_ttl_s=settings.seen_ttl_s)
        _register(corpus)
        return cls(
            settings=settings,
            text_redis=text_redis,
            rq_redis=connect(settings, decode=False),
            corpus=corpus,
            host_gate=HostGate(
                text_redis,
                settings.host_concurrency,
                settings.host_min_delay_s,
                settings.host_max_wait_s,
                lease_s=settings.http_total_timeout_s + 5,
            ),
            claims=ArticleClaims(text_redis, CLAIM_TTL_S, settings.seen_ttl_s),
            duplicates=DuplicateIndex(text_redis, DUPLICATE_SHARED, settings.duplicate_window_s),
            announcer=Announcer(
                load_taxonomy(settings.taxonomy_file),
                Emitter(text_redis, settings),
                verdicts=text_redis,
                verdict_ttl_s=settings.emitted_ttl_s,
                memory=corpus,
                stories=story_placer(text_redis, settings),
                articles_emitter=(
                    Emitter(text_redis, settings, stream=settings.articles_stream_name)
                    if settings.articles_stream_name
                    else None
                ),
            ),
        )

    def run(self, coro_factory: Callable[[Fetcher], Coroutine[Any, Any, T]]) -> T:
        """Run ``coro_factory(fetcher)`` on this process's event loop; the loop and the HTTP
        client (and its keep-alive connections) live as long as the process."""
        if self._runner is None:
            self._runner = asyncio.Runner()
        if self._fetcher is None:
            self._fetcher = self._runner.run(_make_fetcher(self.settings))
        return self._runner.run(coro_factory(self._fetcher))

    def close(self) -> None:
        if self._runner is not None:
            if self._fetcher is not None:
                self._runner.run(self._fetcher.aclose())
            self._runner.close()
        self._runner = None
        self._fetcher = None


def _register(corpus: Corpus) -> None:
    """Say which directory this worker writes; warn when others write elsewhere (allowed,
    as workers may be moving to shared storage, but replay and retag refuse meanwhile)."""
    try:
        others = corpus.register()
    except OSError as exc:  # an unusable corpus_dir: the first job says so, with its error
        log.warning("corpus.unregistered", corpus_dir=str(corpus.directory), error=str(exc))
        return
    if others:
        log.warning("corpus.not_shared", corpus_dir=str(corpus.directory),
                    other_directories=sorted(others.values()))  # fmt: skip


async def _make_fetcher(settings: Settings) -> Fetcher:
    return Fetcher(settings)  # built inside the loop that will use its connections


_active: WorkerContext | None = None


@contextlib.contextmanager
def activated(context: WorkerContext) -> Iterator[WorkerContext]:
    """Make ``context`` the one the job functions of this process use, then close it."""
    global _active
    if _active is not None:
        raise RuntimeError("a worker context is already active in this process")
    _active = context
    try:
        yield context
    finally:
        _active = None
        context.close()


def active() -> WorkerContext:
    if _active is None:
        raise RuntimeError("no worker context is active (workers.context.activated)")
    return _active
