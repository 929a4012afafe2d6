"""Memory: peak RSS (VmHWM) of every service process, over all its incarnations.

    .venv/bin/python benchmarks/memory.py [--articles 1000] [--workers 2] [--quick]

``harness.Fleet`` samples VmHWM of every worker (and of the RQ scheduler it forks), poller
and redis-server every 0.5 s while they run and keeps the peak over all incarnations of
each. ``pipeline_bench.py`` reports it over its throughput and latency runs; run alone,
this script samples one pipeline warm-up (88 articles) and one run of ``--articles``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import harness
from harness import Child, Fleet, Goal, fmt, md_table

log = harness.logger("memory")
GOAL_RSS_MB = 250.0


def memory(fleet: Fleet) -> dict[str, Any]:
    fleet.sample()
    rows = []
    roles: dict[str, list[Child]] = {}
    for child in fleet.children:
        roles.setdefault(child.role, []).append(child)
    for role, group in roles.items():
        rows.append({
            "process": role,
            "incarnations": sum(c.starts for c in group),
            "peak_rss_mb": max(c.peak_kb for c in group) / 1024,
            "scheduler_child_peak_rss_mb": (max(c.peak_sub_kb for c in group) / 1024) or None,
            "worker": role.startswith(("extract", "tag")),
        })  # fmt: skip
    for name, kb in fleet.extra_peak_kb.items():
        rows.append({
            "process": name, "incarnations": 1, "peak_rss_mb": kb / 1024,
            "scheduler_child_peak_rss_mb": None, "worker": False,
        })  # fmt: skip
    worker_peaks = [r["peak_rss_mb"] for r in rows if r["worker"]]
    return {
        "processes": rows,
        "max_worker_peak_rss_mb": max(worker_peaks) if worker_peaks else None,
    }


def render(data: dict[str, Any]) -> tuple[list[str], list[Goal]]:
    """A worker's child is the RQ scheduler it forks; the poller's, a feed parser."""
    mem = data.get("memory")
    if not mem:
        return [], []
    rows = [
        (r["process"], r["incarnations"], fmt(r["peak_rss_mb"], ".0f", " MB"),
         fmt(r["scheduler_child_peak_rss_mb"], ".0f", " MB"))
        for r in mem["processes"]
    ]  # fmt: skip
    out = [
        "## 4. Memory (peak RSS, VmHWM, over all runs)",
        "",
        *md_table(("process", "incarnations", "peak RSS", "its largest child"), rows),
        "",
    ]
    peak = mem["max_worker_peak_rss_mb"]
    goal = ("worker peak RSS", f"< {GOAL_RSS_MB:.0f} MB", fmt(peak, ".0f", " MB"),
            peak < GOAL_RSS_MB if peak is not None else None)  # fmt: skip
    return out, [goal]


def main(argv: Sequence[str] | None = None) -> int:
    from throughput import pipeline_run

    args = harness.pipeline_args(harness.pipeline_parser(__doc__.split("\n")[0]), argv)

    def body() -> None:
        pages = harness.load_pages(args.corpus)
        with harness.rig(args, pages) as rig:
            harness.start_workers(rig)
            for label, n in (("warm", len(pages)), ("mem", args.articles)):
                x = pipeline_run(rig, label, n)
                log(f"pipeline {label}: {n} articles, {x['rate']:.1f} articles/s")
            data = {"memory": memory(rig.fleet)}
        lines, found = render(data)
        print("\n".join(lines + harness.goals_table(found)))

    return harness.run_main(log, body)


if __name__ == "__main__":
    raise SystemExit(main())
