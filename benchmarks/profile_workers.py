"""Profile: one in-process worker of each queue under pyinstrument, after a warm-up.

    .venv/bin/python benchmarks/profile_workers.py 300   # or: pipeline_bench.py --profile 300

The local site and a private redis-server; the real poll (``poll_feeds_once``) queues N
articles, then one extract worker and then one tag worker (``workers.runner.run_worker``,
burst mode) run in this process under pyinstrument. Writes
``benchmarks/results/profile-<queue>.txt`` (self time by function, then the call tree
without frames under 0.5 % of the run). pyinstrument is not a project dependency.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import harness
import redis
import yaml
from harness import BenchError, Site, feed_paths

from core import keys
from core.logs import configure_logging
from core.settings import Settings, load_settings
from service.feedlist import load_feeds
from service.poller import poll_feeds_once
from workers.runner import run_worker

log = harness.logger("profile")


def prune_tree(text: str, total_s: float, share: float = 0.005) -> str:
    """pyinstrument's full call tree without the frames under ``share`` of the run."""
    keep = []
    for line in text.splitlines():
        found = re.match(r"^[│├└─ ]*(\d+\.\d+) ", line)
        if found is None or float(found.group(1)) >= share * total_s:
            keep.append(line.rstrip())
    return "\n".join(keep)


def enqueue(settings: Settings, site: Site, label: str, n: int) -> int:
    """Poll feeds listing n new articles once; the number queued."""
    feeds = [{"url": site.base + p} for p in feed_paths(label, n, len(site.page_keys))]
    settings.feeds_file.write_text(yaml.safe_dump({"feeds": feeds}), encoding="utf-8")
    text_redis = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    rq_redis = redis.Redis.from_url(settings.redis_url)
    try:
        return poll_feeds_once(
            settings, text_redis, rq_redis, load_feeds(settings.feeds_file)
        ).new_items
    finally:
        text_redis.close()
        rq_redis.close()


def profile_queue(
    settings: Settings, queue_name: str, queued: int, out_dir: Path
) -> dict[str, Any]:
    from pyinstrument import Profiler
    from pyinstrument.renderers import ConsoleRenderer

    profiler = Profiler(interval=0.0005, async_mode="disabled")
    start = time.perf_counter()
    profiler.start()
    run_worker(settings, queue_name, burst=True)
    session = profiler.stop()
    seconds = time.perf_counter() - start
    tree = prune_tree(profiler.output_text(unicode=True, color=False, show_all=True), seconds)
    flat = ConsoleRenderer(flat=True, unicode=True, color=False).render(session)
    flat = "\n".join(flat.splitlines()[:70])
    path = out_dir / f"profile-{queue_name}.txt"
    path.write_text(f"{queue_name} worker, {queued} articles, {seconds:.1f} s ({queued / seconds:.1f} articles/s)\n\n"
                    f"== self time by function (top 60) ==\n{flat}\n"
                    f"== call tree, all frames (RQ and redis-py included), >= 0.5% of the time ==\n{tree}\n",
                    encoding="utf-8")  # fmt: skip
    print(
        f"\n### {queue_name} worker: {queued} articles in {seconds:.1f} s = {queued / seconds:.1f} articles/s ({path})\n"
    )
    print("\n".join(flat.splitlines()[:40]))
    return {"jobs": queued, "seconds": seconds, "jobs_per_s": queued / seconds, "file": str(path)}


def profile_workers(args: argparse.Namespace, pages: list[Any]) -> dict[str, Any]:
    """One in-process SimpleWorker per queue (burst) under pyinstrument, after a warm-up."""
    try:
        import pyinstrument  # noqa: F401
    except ImportError as exc:
        raise BenchError(
            "pyinstrument is not installed: .venv/bin/python -m pip install pyinstrument"
        ) from exc
    out: dict[str, Any] = {"articles": args.profile, "queues": {}, "markdown": ""}
    with tempfile.TemporaryDirectory(prefix="tradewire-profile-") as tmp_dir:
        tmp = Path(tmp_dir)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(tmp / "metrics")  # as in production workers
        (tmp / "metrics").mkdir()
        site = Site(pages).start()
        try:
            with harness.private_redis(tmp / "redis", appendonly=True) as server:
                env = {
                    **harness.service_env(tmp, server.url, args),
                    "TRADEWIRE_FEEDS_FILE": str(tmp / "feeds.yaml"),
                }
                settings = load_settings(env)
                configure_logging(settings.log_level, "json")
                log(f"profile: warm-up with {len(pages)} articles")
                enqueue(settings, site, "warm", len(pages))
                run_worker(settings, keys.EXTRACT_QUEUE, burst=True)
                run_worker(settings, keys.TAG_QUEUE, burst=True)
                queued = enqueue(settings, site, "prof", args.profile)
                log(
                    f"profile: {queued} articles queued; one extract worker, then one tag worker, in-process"
                )
                args.out_dir.mkdir(parents=True, exist_ok=True)
                for queue_name in (keys.EXTRACT_QUEUE, keys.TAG_QUEUE):
                    out["queues"][queue_name] = profile_queue(
                        settings, queue_name, queued, args.out_dir
                    )
        finally:
            site.stop()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = harness.pipeline_parser(__doc__.split("\n")[0])
    parser.add_argument("profile", type=int, metavar="N", help="articles to profile")
    parser.add_argument("--out-dir", type=Path, default=harness.RESULTS_DIR)
    args = harness.pipeline_args(parser, sys.argv[1:] if argv is None else argv)
    return harness.run_main(log, lambda: profile_workers(args, harness.load_pages(args.corpus)))


if __name__ == "__main__":
    raise SystemExit(main())
