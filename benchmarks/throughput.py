"""Throughput: the whole pipeline beside the bare cost of extraction, side by side in one run.

    .venv/bin/python benchmarks/throughput.py [--articles 1000] [--pool-articles 440]
        [--rounds 4] [--workers 2] [--fresh] [--no-stories] [--quick]

The real pipeline, started the way production starts it: ``python -m service poll`` and
``python -m service work-one --queue extract`` x W plus ``--queue tag`` x 1 (restarted when
they exit, as the supervisor does every second; workers recycle after ``worker_max_jobs``),
on ``--articles`` new articles per run, with production's settings (config/settings.yaml:
jobs of up to ``job_batch_size`` articles), against a private redis-server and the local
site (``harness.Site``). Per-host politeness is turned down (``--host-min-delay 0``,
``--host-concurrency 64``): every page is on one host here, where production's 1 s between
downloads would cap the run at 1 article/s. articles/s = articles / (first enqueue ->
extract and tag queues, their work-in-progress and retry registries all empty, checked
every 10 ms). The first enqueue is the ``enqueued_at`` of the oldest job seen when the queue
first fills.

Beside it, in W plain processes (``multiprocessing.Pool``; no HTTP, Redis or queue), on the
same pages in the same order (``--pool-articles``, 5 copies of the 88 pages):
``trafilatura.extract(bytes)`` (the bare limit), our extract step
(``workers.pipeline.page_to_extraction``) and our extract + tag steps. Every variant is
warmed up first; then rounds run the variants one after the other with the order rotating
from round to round; medians over rounds, ratios paired per round. Beside articles/s, CPU
seconds (utime + stime from /proc of the pool processes, or of the workers, their forked RQ
schedulers, the poller and redis-server) per article: on a machine shared with other work,
wall-clock rates mostly measure how much CPU each variant got, CPU per article much less so.
"""

from __future__ import annotations

import gc
import json
import multiprocessing
import signal
import time
from collections.abc import Callable, Sequence
from datetime import UTC
from typing import Any

import harness
import redis
import trafilatura
from harness import (
    CLK_TCK,
    MIN_WORDS,
    SUPERVISOR_TICK_S,
    BenchError,
    Goal,
    Rig,
    article_ids,
    cpu_ticks,
    feed_paths,
    fmt,
    machine_ticks,
    md_table,
    median,
    start_poller,
    with_cpu,
)
from rq.job import Job
from rq.utils import str_to_date

from core import keys, queues
from core.errors import RefusedArticleError
from workers.pipeline import page_to_extraction, tag_document
from workers.tagging import load_taxonomy

log = harness.logger("throughput")
GOAL_RATIO = 0.85  # issue 16: with story clustering on
GOAL_RATIO_ALL = 1.0  # issue 21: the pipeline at the cost of extraction alone
VARIANTS = {
    "bare": "bare limit: trafilatura.extract(bytes)",
    "ours": "our extract step (page_to_extraction)",
    "ours_tag": "our extract + tag steps",
    "pipeline": "full pipeline: poll → RQ → extract → tag → stream",
}

# --- plain-process variants ----------------------------------------------------------------

_G: dict[str, Any] = {}  # set before the pools fork: pages, taxonomy


def _pool_init() -> None:
    harness.die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _page(j: int) -> tuple[bytes, str]:
    pages = _G["pages"]
    page = pages[j % len(pages)]
    return page.html, f"http://127.0.0.1/a/x{j // len(pages)}/{page.key}.html"


def task_bare(j: int) -> bool:
    html, _ = _page(j)
    return bool(trafilatura.extract(html))


def task_ours(j: int) -> bool:
    html, url = _page(j)
    try:
        page_to_extraction(html, "text/html", url, MIN_WORDS, "")
    except RefusedArticleError:
        return False
    return True


def task_ours_tag(j: int) -> bool:
    html, url = _page(j)
    try:
        extraction = page_to_extraction(html, "text/html", url, MIN_WORDS, "")
    except RefusedArticleError:
        return False
    tag_document(_G["taxonomy"], extraction.text, extraction.title)
    return True


TASKS: dict[str, Callable[[int], bool]] = {
    "bare": task_bare,
    "ours": task_ours,
    "ours_tag": task_ours_tag,
}


def start_pools(pages: list[Any], workers: int) -> dict[str, Any]:
    """One pool of W forked processes per plain variant."""
    _G.update(pages=pages, taxonomy=load_taxonomy(harness.TAXONOMY_FILE))
    ctx = multiprocessing.get_context("fork")
    return {name: ctx.Pool(workers, initializer=_pool_init) for name in TASKS}


def pool_run(pool: Any, task: Callable[[int], bool], n: int, first: int = 0) -> dict[str, Any]:
    pids = [p.pid for p in pool._pool]
    gc.collect()
    ticks = sum(cpu_ticks(pid) for pid in pids)
    machine = machine_ticks()
    start = time.perf_counter()
    ok = sum(pool.imap_unordered(task, range(first, first + n), chunksize=1))
    seconds = time.perf_counter() - start
    cpu_s = (sum(cpu_ticks(pid) for pid in pids) - ticks) / CLK_TCK
    return with_cpu(
        {"articles": n, "seconds": seconds, "rate": n / seconds, "extracted": ok}, cpu_s, machine
    )


# --- the real pipeline ---------------------------------------------------------------------


def rq_key_names(conn: redis.Redis) -> dict[str, dict[str, str]]:
    """The Redis keys of each queue, its intermediate list and its registries."""
    out = {}
    for name in (keys.EXTRACT_QUEUE, keys.TAG_QUEUE):
        queue = queues.queue(conn, name)
        out[name] = {
            "queue": queue.key,
            "intermediate": queue.intermediate_queue_key,
            "wip": queue.started_job_registry.key,
            "scheduled": queue.scheduled_job_registry.key,
            "failed": queue.failed_job_registry.key,
        }
    return out


def pending(r: redis.Redis, rq_keys: dict[str, dict[str, str]]) -> list[int]:
    """Jobs waiting, in progress or scheduled, in one round trip (checked every 10 ms)."""
    pipe = r.pipeline(transaction=False)
    for names in rq_keys.values():
        pipe.llen(names["queue"])
        pipe.llen(names["intermediate"])
        pipe.zcard(names["wip"])
        pipe.zcard(names["scheduled"])
    return [int(x) for x in pipe.execute()]


def failed_count(r: redis.Redis, rq_keys: dict[str, dict[str, str]]) -> int:
    return sum(int(r.zcard(n["failed"])) for n in rq_keys.values())


def oldest_enqueued_at(r: redis.Redis, rq_keys: dict[str, dict[str, str]]) -> float | None:
    names = rq_keys[keys.EXTRACT_QUEUE]
    job_ids = [str(x) for x in r.lrange(names["queue"], 0, 0)]
    job_ids += [str(m).split(":", 1)[0] for m in r.zrange(names["wip"], 0, -1)]
    stamps = []
    for job_id in job_ids:
        raw = r.hget(Job.key_for(job_id), "enqueued_at")
        if raw:
            moment = str_to_date(raw)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            stamps.append(moment.timestamp())
    return min(stamps) if stamps else None


def all_queued(r: redis.Redis, seen_keys: list[str]) -> bool:
    values = []
    for i in range(0, len(seen_keys), 1000):
        values += r.mget(seen_keys[i : i + 1000])
    # A durable claim reads "seen:<owner>"; "claimed:<owner>" is still in hand.
    return all(v is not None and str(v).startswith("seen:") for v in values)


def wait_done(
    rig: Rig, poller: harness.Child, label: str, ids: list[str], rq_keys: dict[str, dict[str, str]]
) -> tuple[float, float, dict[str, float], tuple[int, int]]:
    """Watch the queues every 10 ms until every article is queued and nothing is pending:
    (first enqueue, end, CPU seconds by process group, machine ticks at the first enqueue)."""
    seen_keys = [keys.seen_url(a) for a in ids]
    t_first: float | None = None
    ticks_at_first: dict[int, int] = {}
    machine = machine_ticks()
    queued = False
    deadline = time.monotonic() + 120 + len(ids) * 0.5
    next_tick = next_sample = next_seen = 0.0
    while True:
        now = time.time()
        counts = pending(rig.r, rq_keys)
        if t_first is None and sum(counts):
            enq = oldest_enqueued_at(rig.r, rq_keys)
            t_first = min(now, enq) if enq else now
            rig.fleet.sample()
            ticks_at_first = dict(rig.fleet.ticks)
            machine = machine_ticks()
        if t_first is not None and not queued and now >= next_seen:
            next_seen = now + 0.05
            queued = all_queued(rig.r, seen_keys)
        if queued and sum(counts) == 0:
            assert t_first is not None
            return t_first, now, rig.fleet.cpu_since(ticks_at_first), machine
        mono = time.monotonic()
        if mono >= next_tick:
            next_tick = mono + SUPERVISOR_TICK_S
            harness.tend(rig, poller, "poller")
        if mono >= next_sample:
            next_sample = mono + 0.5
            rig.fleet.sample()
        if mono > deadline:
            raise BenchError(
                f"pipeline run {label} not done in time: pending {counts}, all queued {queued}"
            )
        time.sleep(0.01)


def corpus_ids(rig: Rig) -> set[str]:
    return {p.stem.split("_", 1)[1] for p in rig.corpus_dir.glob("*.txt") if "_" in p.stem}


def near_duplicates(rig: Rig, ids: list[str]) -> int:
    """How many of the run's stored articles repeat an earlier one's text (``duplicate_of``):
    the site serves its pages again and again, and a copy costs the pipeline less than a
    new text (no story comparison), so the share says how far the figure is one of copies."""
    found = 0
    for article_id in ids:
        path = rig.corpus_dir / ".meta" / f"{article_id}.json"
        if path.exists() and json.loads(path.read_bytes()).get("duplicate_of"):
            found += 1
    return found


def pipeline_run(rig: Rig, label: str, n: int, start: int = 0) -> dict[str, Any]:
    """Feed n new articles (from article ``start``) through the running pipeline; time first
    enqueue -> all done."""
    ids = article_ids(rig.site.base, label, n, rig.page_keys, start)
    rq_keys = rq_key_names(rig.r)
    stream_before = int(rig.r.xlen("tradewire:events") or 0)
    failed_before = failed_count(rig.r, rq_keys)
    restarts_before = sum(len(c.exit_codes) for c in rig.workers)
    feeds = [
        {"url": rig.site.base + p, "title": f"bench {label}"}
        for p in feed_paths(label, n, len(rig.pages), start)
    ]
    rig.site.drain()
    poller = start_poller(rig, label, feeds)
    try:
        t_first, t_end, cpu, machine = wait_done(rig, poller, label, ids, rq_keys)
    finally:
        rig.fleet.stop(poller)
    served = [t for kind, _, t, _ in rig.site.drain() if kind == "feed"]
    stored = corpus_ids(rig)
    pipe = rig.r.pipeline(transaction=False)
    for a in ids:
        pipe.exists(keys.verdict(a))
    seconds = t_end - t_first
    result = {
        "articles": n,
        "seconds": seconds,
        "rate": n / seconds,
        "extracted": sum(1 for a in ids if a in stored),
        "near_duplicates": near_duplicates(rig, ids),
        "tagged": sum(int(x) for x in pipe.execute()),
        "events": int(rig.r.xlen("tradewire:events") or 0) - stream_before,
        "failed_jobs": failed_count(rig.r, rq_keys) - failed_before,
        "worker_restarts": sum(len(c.exit_codes) for c in rig.workers) - restarts_before,
        "first_feed_served_to_first_enqueue_s": (t_first - min(served)) if served else None,
        "cpu_ms_per_article_by_process": {k: v * 1000 / n for k, v in sorted(cpu.items())},
    }
    return with_cpu(result, sum(cpu.values()), machine)


# --- rounds ----------------------------------------------------------------------------------


def one_round(rig: Rig, pools: dict[str, Any], r: int) -> dict[str, dict[str, Any]]:
    """Every variant once, the order rotated by the round number."""
    args = rig.args
    order = list(VARIANTS)
    shift = r % len(order)
    results: dict[str, dict[str, Any]] = {}
    start = int(r * args.articles) if args.fresh else 0  # --fresh: the round's own pages
    for name in order[shift:] + order[:shift]:
        if name == "pipeline":
            results[name] = pipeline_run(rig, f"r{r}", args.articles, start)
        else:
            results[name] = pool_run(pools[name], TASKS[name], args.pool_articles, start)
        x = results[name]
        log(
            f"round {r + 1}/{args.rounds}: {name:8s} {x['rate']:6.1f} articles/s ({x['seconds']:.1f} s), "
            f"{x['cpu_ms_per_article']:.1f} CPU ms/article, {x['cores_busy']:.2f} cores busy, others {x['other_cores_busy']:.2f}, steal {x['steal_cores']:.2f}"
        )
    return results


def summarise(rounds: list[dict[str, dict[str, Any]]], n: int, n_pool: int) -> dict[str, Any]:
    summary = {}
    for name in VARIANTS:
        rates = [rd[name]["rate"] for rd in rounds]
        ratios = [rd[name]["rate"] / rd["bare"]["rate"] for rd in rounds]
        cpu = [rd[name]["cpu_ms_per_article"] for rd in rounds]
        cpu_ratios = [
            rd["bare"]["cpu_ms_per_article"] / rd[name]["cpu_ms_per_article"] for rd in rounds
        ]
        summary[name] = {
            "label": VARIANTS[name],
            "articles": n if name == "pipeline" else n_pool,
            "median_rate": median(rates),
            "rates": rates,
            "median_ratio_to_bare": median(ratios),
            "ratios_to_bare": ratios,
            "median_cpu_ms_per_article": median(cpu),
            "median_cpu_ratio_to_bare": median(cpu_ratios),
            "median_cores_busy": median([rd[name]["cores_busy"] for rd in rounds]),
        }
    return summary


def pipeline_detail(rounds: list[dict[str, dict[str, Any]]]) -> dict[str, Any]:
    pipe_rounds = [rd["pipeline"] for rd in rounds]
    by_process = sorted({k for x in pipe_rounds for k in x["cpu_ms_per_article_by_process"]})
    return {
        "extracted": [x["extracted"] for x in pipe_rounds],
        "tagged": [x["tagged"] for x in pipe_rounds],
        "near_duplicates": [x.get("near_duplicates", 0) for x in pipe_rounds],
        "events": [x["events"] for x in pipe_rounds],
        "failed_jobs": [x["failed_jobs"] for x in pipe_rounds],
        "worker_restarts": [x["worker_restarts"] for x in pipe_rounds],
        "cpu_ms_per_article_by_process": {
            k: median([x["cpu_ms_per_article_by_process"].get(k, 0.0) for x in pipe_rounds])
            for k in by_process
        },
        "max_other_cores_busy": max(x["other_cores_busy"] for rd in rounds for x in rd.values()),
        "max_steal_cores": max(x["steal_cores"] for rd in rounds for x in rd.values()),
    }


def throughput(rig: Rig, pools: dict[str, Any]) -> dict[str, Any]:
    """Warm every variant up, then ``--rounds`` interleaved rounds (the workers running)."""
    args = rig.args
    p, start = len(rig.pages), 0
    if args.fresh:  # the warm-up takes the pages after the rounds' pages
        start = int(args.rounds * args.articles)
        p -= start
        if p < 1:
            raise BenchError(f"--fresh: {args.rounds} rounds x {args.articles} articles "
                             f"leave no page of {len(rig.pages)} for the warm-up")  # fmt: skip
        args.pool_articles = args.articles
    log(f"warm-up: {p} pages through each pool, {p} articles through the pipeline")
    for name, task in TASKS.items():
        pool_run(pools[name], task, p, start)
    warm = pipeline_run(rig, "warm", p, start)
    log(f"  pipeline warm-up: {warm['rate']:.1f} articles/s")
    rounds = [one_round(rig, pools, r) for r in range(args.rounds)]
    return {
        "articles_per_run": args.articles,
        "articles_per_pool_run": args.pool_articles,
        "rounds": args.rounds,
        "workers": args.workers,
        "warmup_pipeline": warm,
        "per_round": rounds,
        "summary": summarise(rounds, args.articles, args.pool_articles),
        "pipeline_detail": pipeline_detail(rounds),
    }


def measure(rig: Rig) -> dict[str, Any]:
    """The pools, then the throughput rounds; the pools are gone when it returns."""
    pools = start_pools(rig.pages, rig.args.workers)
    try:
        return throughput(rig, pools)
    finally:
        for pool in pools.values():
            pool.terminate()


# --- report ----------------------------------------------------------------------------------


def render(data: dict[str, Any]) -> tuple[list[str], list[Goal]]:
    tp = data.get("throughput")
    if not tp:
        return [], []
    w = data["config"]["workers"]
    rows = []
    for name, s in tp["summary"].items():
        procs = (
            f"{w} extract + 1 tag workers, poller, Redis"
            if name == "pipeline"
            else f"{w} plain processes"
        )
        rows.append((
            s["label"], procs, s["articles"], fmt(s["median_rate"]),
            ", ".join(fmt(x) for x in s["rates"]), fmt(s["median_ratio_to_bare"], ".2f"),
            fmt(s["median_cpu_ms_per_article"]), fmt(s["median_cpu_ratio_to_bare"], ".2f"),
            fmt(s["median_cores_busy"], ".2f"),
        ))  # fmt: skip
    header = ("variant", "processes", "articles per run", "articles/s (median)", "per round",
              "ratio to bare limit", "CPU ms per article", "CPU ratio to bare", "cores busy")  # fmt: skip
    out = [f"## 1. Throughput (W={w}, {tp['rounds']} interleaved rounds, medians)", ""]
    out += md_table(header, rows)
    return out + notes(data), goals(tp)


def notes(data: dict[str, Any]) -> list[str]:
    tp, config = data["throughput"], data["config"]
    w = config["workers"]
    d = tp["pipeline_detail"]
    s = tp["summary"]
    out = [
        "",
        f"Pipeline runs: extracted {d['extracted']}, tagged {d['tagged']}, events {d['events']}, failed jobs "
        f"{d['failed_jobs']}, worker recycles (worker_max_jobs) {d['worker_restarts']} (per round). "
        f"Near-duplicates of an earlier article (the site serves its {data.get('pages', '?')} pages again and "
        f"again; a copy skips the story comparison): {d.get('near_duplicates', [])} per round; "
        f"story clustering {'off' if tp.get('no_stories') else 'on'}. "
        "Ratios are paired per round. Pipeline time is from the first enqueue to the extract and tag "
        "queues and registries all empty. CPU is user + system time of the processes doing the work "
        "(pool processes; workers with their forked schedulers, poller and redis-server), from "
        "/proc/<pid>/stat: less sensitive to other load on the machine than articles/s. "
        "Cores busy = CPU seconds / wall seconds.",
        f"Per-host politeness: host_min_delay_s={config['host_min_delay']}, host_concurrency="
        f"{config['host_concurrency']} (production: 1.0 and 2). Every bench page is on one host, "
        "127.0.0.1, where production's setting caps the whole pipeline at 1 article/s; the gate still runs.",
        f"Pipeline / (our extract + tag in {w} plain processes): "
        f"{fmt(s['pipeline']['median_rate'] / s['ours_tag']['median_rate'], '.2f')} by articles/s, "
        f"{fmt(s['ours_tag']['median_cpu_ms_per_article'] / s['pipeline']['median_cpu_ms_per_article'], '.2f')} "
        "by CPU per article (the cost of the queue, HTTP, Redis, storage and the separate tag process).",
        "Pipeline CPU per article by process (median ms): "
        + ", ".join(f"{k} {v:.1f}" for k, v in d["cpu_ms_per_article_by_process"].items())
        + f". A worker takes {data.get('worker_startup_cpu_s', 0):.1f} CPU s to start, paid again at "
        "every recycle.",
        "",
        f"Rest of the machine during the runs (other work plus this harness's site and checks): up to "
        f"{d['max_other_cores_busy']:.2f} of {data['machine']['usable_cores']} cores busy; hypervisor steal up to {d['max_steal_cores']:.2f} cores.",
        "",
    ]
    if d["max_other_cores_busy"] > 0.3 or d["max_steal_cores"] > 0.1:
        out += [
            "**The machine was busy with other work**: wall-clock rates and their ratios then depend "
            "on how much of the CPU each variant happened to get (see cores busy); the CPU columns are "
            "the steadier comparison.",
            "",
        ]
    return out


def goals(tp: dict[str, Any]) -> list[Goal]:
    pipe_ratio = tp["summary"]["pipeline"]["median_ratio_to_bare"]
    cpu_ratio = tp["summary"]["pipeline"]["median_cpu_ratio_to_bare"]
    ours_tag = tp["summary"]["ours_tag"]["median_ratio_to_bare"]
    mode = "stories off" if tp.get("no_stories") else "stories on"
    return [
        (f"pipeline / bare limit ({mode})", f"≥ {GOAL_RATIO}", fmt(pipe_ratio, ".2f"),
         pipe_ratio >= GOAL_RATIO),
        (f"pipeline / bare limit by CPU per article ({mode}; what a quiet machine would give "
         "if CPU-bound)", f"≥ {GOAL_RATIO}", fmt(cpu_ratio, ".2f"), cpu_ratio >= GOAL_RATIO),
        (f"pipeline / bare limit ({mode}), the cost of extraction alone", f"≥ {GOAL_RATIO_ALL}",
         fmt(pipe_ratio, ".2f"), pipe_ratio >= GOAL_RATIO_ALL),
        (f"pipeline / bare limit by CPU per article ({mode}), the cost of extraction alone",
         f"≥ {GOAL_RATIO_ALL}", fmt(cpu_ratio, ".2f"), cpu_ratio >= GOAL_RATIO_ALL),
        ("(our extract + tag) / bare limit: the most a pipeline running both can reach", "",
         fmt(ours_tag, ".2f"), None),
    ]  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    args = harness.pipeline_args(harness.pipeline_parser(__doc__.split("\n")[0]), argv)

    def body() -> None:
        pages = harness.load_pages(args.corpus)
        data: dict[str, Any] = {"machine": harness.machine(), "config": vars(args),
                                "pages": len(pages)}  # fmt: skip
        with harness.rig(args, pages) as rig:
            log(f"site {rig.site.base}, redis {rig.redis_url}, tmp {rig.tmp}; starting workers")
            data["worker_startup_cpu_s"] = harness.start_workers(rig)
            data["throughput"] = measure(rig)
            data["throughput"]["no_stories"] = args.no_stories
        lines, found = render(data)
        print("\n".join(lines + harness.goals_table(found)))

    return harness.run_main(log, body)


if __name__ == "__main__":
    raise SystemExit(main())
