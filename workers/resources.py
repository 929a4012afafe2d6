"""Per-process dependencies of the job functions, built once per worker process.

RQ calls module-level functions with JSON arguments only, so the clients a job needs
(Redis, the HTTP fetcher, the compiled taxonomy) live here, installed by the worker's
entry point (or a test) before the first job runs.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Coroutine
from typing import Any, TypeVar

import redis

from core.claims import ArticleClaims
from core.fetch import Fetcher
from core.settings import Settings
from workers.corpus import Corpus
from workers.duplicates import DuplicateIndex
from workers.politeness import HostGate
from workers.robots import RobotsCache
from workers.stream import Emitter
from workers.tagging import Taxonomy

T = TypeVar("T")


@dataclasses.dataclass
class Deps:
    settings: Settings
    text_redis: redis.Redis
    rq_redis: redis.Redis
    taxonomy: Taxonomy
    corpus: Corpus
    emitter: Emitter
    duplicates: DuplicateIndex
    claims: ArticleClaims
    host_gate: HostGate
    robots: RobotsCache = dataclasses.field(default_factory=RobotsCache)
    articles_emitter: Emitter | None = None
    _runner: asyncio.Runner | None = None
    _fetcher: Fetcher | None = None

    def run(self, coro_factory: Any) -> Any:
        """Run ``coro_factory(fetcher)`` on this process's event loop; the loop and the HTTP
        client (and its keep-alive connections) live as long as the process."""
        if self._runner is None:
            self._runner = asyncio.Runner()
        if self._fetcher is None:
            self._fetcher = self._runner.run(_make_fetcher(self.settings))
        coro: Coroutine[Any, Any, Any] = coro_factory(self._fetcher)
        return self._runner.run(coro)

    def close(self) -> None:
        if self._runner is not None:
            if self._fetcher is not None:
                self._runner.run(self._fetcher.aclose())
            self._runner.close()
        self._runner = None
        self._fetcher = None


async def _make_fetcher(settings: Settings) -> Fetcher:
    return Fetcher(settings)


_current: Deps | None = None


def install(deps: Deps | None) -> None:
    """Set (or clear, with None) the dependencies job functions use in this process."""
    global _current
    if _current is not None and _current is not deps:
        _current.close()
    _current = deps


def current() -> Deps:
    if _current is None:
        raise RuntimeError("worker dependencies are not installed (workers.resources.install)")
    return _current
