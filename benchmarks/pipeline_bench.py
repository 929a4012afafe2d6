"""The whole pipeline beside the bare cost of extraction, measured side by side in one run.

    .venv/bin/python benchmarks/pipeline_bench.py [--articles 1000] [--rounds 2] [--workers 2]
        [--latency-items 100] [--poll-interval 0.5] [--no-peers] [--no-latency] [--quick]
    .venv/bin/python benchmarks/pipeline_bench.py --profile 300   # pyinstrument, one worker

Everything runs on 127.0.0.1 against a private redis-server (started here, AOF on as in
``make run``) and a local site that serves the 88 real pages of
``../shared/corpus/extraction`` from memory (read at run time, never written anywhere) under
many URLs (``/a/<round>/c<k>/<sha>.html``), and RSS feeds of 88 items linking to them
(``harness.py``). The measurements, one script each (each runs on its own too; its
docstring says how it measures):

1. ``throughput.py``: the real pipeline vs bare trafilatura and our steps in plain processes.
2. ``peers.py``: newspaper4k and readability-lxml beside our extract step.
3. ``latency.py``: a new feed item to the end of its tag job, pipeline idle.
4. ``memory.py``: peak RSS of every service process, over the runs of 1 and 3.
5. ``stage_costs.py``: microseconds per call of each step, service processes stopped.

Here they share one site, one Redis and one set of workers, in that order (peers last,
after everything else has stopped), and the report goes to ``results/latest.md`` and
``latest.json``. ``--profile N`` runs ``profile_workers.py`` instead.
"""

from __future__ import annotations

import contextlib
import json
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import harness
import latency
import memory
import peers
import stage_costs
import throughput
from harness import RESULTS_DIR

log = harness.logger("pipeline_bench")
SECTIONS = (throughput, peers, latency, memory, stage_costs)


def parse_args(argv: Sequence[str] | None) -> Any:
    parser = harness.pipeline_parser((__doc__ or "").split("\n")[0])
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--no-latency", action="store_true")
    parser.add_argument("--no-stages", action="store_true")
    parser.add_argument(
        "--out-dir", type=Path, default=RESULTS_DIR, help="latest.md and latest.json"
    )
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="only profile one in-process worker of each queue over N articles (pyinstrument)")  # fmt: skip
    return harness.pipeline_args(parser, argv)


def measure_pipeline(args: Any, pages: list[Any], data: dict[str, Any]) -> None:
    """Throughput, latency and memory with the workers running, then the stage costs."""
    log("finding the pages our extract step keeps (the latency feed uses only those)")
    with harness.rig(args, pages, latency.live_keys(pages)) as rig:
        log(
            f"site {rig.site.base}, redis {rig.redis_url}, tmp {rig.tmp}; starting {args.workers} extract + 1 tag workers"
        )
        data["worker_startup_cpu_s"] = harness.start_workers(rig)
        data["throughput"] = throughput.measure(rig)
        if not args.no_latency:
            log(f"latency: {args.latency_items} items, poll interval {args.poll_interval} s")
            data["latency"] = latency.latency(rig)
        data["memory"] = memory.memory(rig.fleet)
        rig.fleet.stop_all()
        if not args.no_stages:
            log("per-stage costs")
            data["stages"] = stage_costs.stage_costs(rig)


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run every part; returns the data (``data["markdown"]`` holds the report)."""
    args = parse_args(argv)
    started = time.monotonic()
    with contextlib.suppress(ValueError):  # not the main thread
        signal.signal(signal.SIGTERM, harness.raise_keyboard_interrupt)
    pages = harness.load_pages(args.corpus)
    if args.profile:
        from profile_workers import profile_workers

        return profile_workers(args, pages)
    data: dict[str, Any] = {
        "machine": harness.machine(),
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    measure_pipeline(args, pages, data)
    if not args.no_peers:
        log("peers")
        data["peers"] = peers.peers(pages if not args.quick else pages[:20])
    data["wall_s"] = time.monotonic() - started
    data["markdown"] = render(data)
    return data


def render(data: dict[str, Any]) -> str:
    m = data["machine"]
    out = [
        "# Pipeline benchmark",
        "",
        f"Machine: {m['cpu']}, {m['usable_cores']} of {m['cores']} cores usable, {m['memory_gb']} GB; "
        f"Linux {m['kernel']}; Python {m['python']}; {m['redis_server'].split(' sha=')[0]}; load average at start "
        f"{', '.join(f'{x:.2f}' for x in m['load_average_at_start'])}.",
        "Packages: " + ", ".join(f"{k} {v}" for k, v in m["packages"].items() if v) + ".",
        f"Date: {m['date']}; wall time of this benchmark: {data.get('wall_s', 0):.0f} s.",
        "",
    ]
    goals: list[harness.Goal] = []
    for section in SECTIONS:
        lines, found = section.render(data)
        out += lines
        goals += found
    return "\n".join(out + harness.goals_table(goals))


def write_results(data: dict[str, Any], out_dir: Path, markdown: str) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "latest.md").write_text(markdown + "\n", encoding="utf-8")
    payload = {k: v for k, v in data.items() if k != "markdown"}
    (out_dir / "latest.json").write_text(
        json.dumps(payload, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)

    def body() -> None:
        data = run(argv)
        if data.get("markdown"):
            print(data["markdown"])
            if not args.no_write:
                write_results(data, args.out_dir, data["markdown"])

    return harness.run_main(log, body)


if __name__ == "__main__":
    raise SystemExit(main())
