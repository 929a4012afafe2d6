"""What the poller benchmark measures a window with: marks (wall, CPU of this process, of
the feed server, Redis and the snapshotter, the machine's busy time, the poller's poll
counter), rows of the report, the feed server's request log and an event-loop probe."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
from harness import cpu_seconds, nearest_rank, system_busy_s

from core.metrics import REGISTRY


def poll_counts() -> Counter[str]:
    """The poller's own tradewire_feed_polls counter, by result."""
    out: Counter[str] = Counter()
    for metric in REGISTRY.collect():
        if metric.name == "tradewire_feed_polls":
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    out[sample.labels["result"]] += int(sample.value)
    return out


@dataclass
class Mark:
    wall: float
    cpu: float
    server_cpu: float
    redis_cpu: float
    helper_cpu: float  # the snapshotter, while it runs
    system_busy: float
    polls: Counter[str]

    @classmethod
    def take(cls, pids: dict[str, int | None], polls: Counter[str] | None = None) -> Mark:
        return cls(
            wall=time.time(),
            cpu=time.process_time(),
            server_cpu=cpu_seconds(pids.get("server")),
            redis_cpu=cpu_seconds(pids.get("redis")),
            helper_cpu=cpu_seconds(pids.get("snapshotter")),
            system_busy=system_busy_s(),
            polls=Counter(polls if polls is not None else poll_counts()),
        )


@dataclass
class Row:
    variant: str
    seconds: float
    polls: int
    polls_per_s: float
    cpu_ms_per_poll: float
    cpu_util: float  # poller-process CPU seconds per wall second
    share_304: float
    errors: int
    results: dict[str, int]
    server_requests: int = 0
    server_cpu_util: float = 0.0
    redis_cpu_util: float = 0.0
    other_cpu_util: float = 0.0  # everything else on the machine, in cores
    connections_opened: int = 0
    lag_p50_s: float | None = None
    lag_p99_s: float | None = None
    lag_max_s: float | None = None
    lag_matched: int = 0
    lag_unmatched: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def make_row(variant: str, a: Mark, b: Mark, server_requests: int) -> Row:
    seconds = b.wall - a.wall
    ours = (
        (b.cpu - a.cpu)
        + (b.server_cpu - a.server_cpu)
        + (b.redis_cpu - a.redis_cpu)
        + (b.helper_cpu - a.helper_cpu)
    )
    results = dict(b.polls - a.polls)
    polls = sum(results.values())
    errors = polls - results.get("200", 0) - results.get("304", 0)
    cpu = b.cpu - a.cpu
    return Row(
        variant=variant,
        seconds=round(seconds, 2),
        polls=polls,
        polls_per_s=polls / seconds if seconds else 0.0,
        cpu_ms_per_poll=1000 * cpu / polls if polls else 0.0,
        cpu_util=cpu / seconds if seconds else 0.0,
        share_304=results.get("304", 0) / polls if polls else 0.0,
        errors=errors,
        results=results,
        server_requests=server_requests,
        server_cpu_util=(b.server_cpu - a.server_cpu) / seconds if seconds else 0.0,
        redis_cpu_util=(b.redis_cpu - a.redis_cpu) / seconds if seconds else 0.0,
        other_cpu_util=max(0.0, (b.system_busy - a.system_busy - ours) / seconds)
        if seconds
        else 0.0,
    )


def set_lags(row: Row, lags: list[float], unmatched: int = 0) -> None:
    lags.sort()
    row.lag_p50_s = nearest_rank(lags, 0.50)
    row.lag_p99_s = nearest_rank(lags, 0.99)
    row.lag_max_s = lags[-1] if lags else None
    row.lag_matched = len(lags)
    row.lag_unmatched = unmatched


class ServerLog:
    """The feed server's request log, fetched between windows (never inside one)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.t: list[float] = []
        self.i: list[int] = []
        self.s: list[int] = []
        self.accepted: list[float] = []

    def fetch(self) -> None:
        response = httpx.get(f"{self.base}/_log?since={len(self.t)}", timeout=30)
        data = response.json()
        self.t += data["t"]
        self.i += data["i"]
        self.s += data["s"]
        self.accepted = data["accepted"]

    def connections(self, start: float, end: float) -> int:
        return sum(1 for t in self.accepted if start <= t <= end)

    def window(self, start: float, end: float) -> list[tuple[float, int, int]]:
        return [
            (t, i, s) for t, i, s in zip(self.t, self.i, self.s, strict=True) if start <= t <= end
        ]

    def previous_arrivals(self) -> dict[tuple[int, float], float]:
        """(feed, arrival) -> that feed's previous arrival (or -inf)."""
        last: dict[int, float] = {}
        out: dict[tuple[int, float], float] = {}
        for t, i in sorted(zip(self.t, self.i, strict=True)):
            out[(i, t)] = last.get(i, float("-inf"))
            last[i] = t
        return out


class LoopProbe:
    """How late a 20 ms sleep wakes up: the event loop's responsiveness."""

    def __init__(self) -> None:
        self.late: list[float] = []
        self.task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.02)
            self.late.append(time.perf_counter() - before - 0.02)

    def start(self) -> None:
        self.task = asyncio.create_task(self._run())

    async def stop(self) -> dict[str, float | None]:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        late = sorted(self.late)
        return {
            "loop_late_p50_ms": round(1000 * (nearest_rank(late, 0.5) or 0), 2),
            "loop_late_p99_ms": round(1000 * (nearest_rank(late, 0.99) or 0), 2),
            "loop_late_max_ms": round(1000 * (late[-1] if late else 0), 2),
        }
