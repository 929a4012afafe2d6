"""Soak: the whole pipeline against a local site publishing at a steady rate; memory over time.

    .venv/bin/python benchmarks/soak.py [--articles 10000] [--rate 40] [--minutes N]
        [--feeds 8] [--workers 2] [--worker-max-jobs 100000] [--drain-timeout 900]
        [--json PATH] [--keep]
    .venv/bin/python benchmarks/soak.py --leak-check 5000   # in-process tracemalloc, no service

The goal (the issue): after 10,000 articles, worker and poller RSS has grown less than 10%
from its value at 1,000 articles; zero articles lost, zero events duplicated.

Everything runs on 127.0.0.1, in a temporary directory removed at the end (``--keep`` keeps
it, with the service log):

- a local news site (in this process, a thread per connection): article ``n`` (0, 1, 2 ...)
  is a copy of demo page ``n % 10`` at ``/c<n // 10>/<page>``, with its own canonical URL,
  and is published at ``start + n / rate``; ``--feeds`` RSS feeds each list the newest 200
  published items with ``n % feeds == i`` (with pubDate and an ETag, answering 304 to a
  matching If-None-Match), so feed size stays bounded. Publishing stops after ``--articles``
  (``--minutes N`` instead sets articles = rate x 60 x N). The clock starts once the
  service's workers are running.
- ``python -m service run`` with its private (embedded) redis-server, feeds polled every
  5 s, ``--workers`` extract workers and one tag worker. ``TRADEWIRE_WORKER_MAX_JOBS`` is
  ``--worker-max-jobs``: by design a worker process exits after that many jobs (default
  1000) and the supervisor starts a fresh one, which hides a leak. The default here,
  100000, keeps each worker process alive for the whole soak, so its RSS curve is the
  honest measure of growth; ``--worker-max-jobs 1000`` shows production's recycling
  (pid changes are counted per worker slot either way).

Every 2 s: VmRSS of the ``run`` process (poller, supervisor, health server), of each worker
(``work-one --queue extract|tag``, by supervisor slot) and of redis-server; articles tagged
(keys ``tradewire:verdict:*``), stream entries (XLEN ``tradewire:events``), queue lengths
and failed jobs (RQ failed registries of ``extract`` and ``tag``).

At the end, once the backlog has drained (queues, started and scheduled registries empty,
or ``--drain-timeout``): published, tagged, refused (the ``tradewire_articles_total``
counter from /metrics), lost = published articles with neither a verdict nor a refusal
(computed per article id: ``article_id_for(canonical URL)``), events vs relevant verdicts,
duplicate events (stream entries sharing an article_id), near-duplicates (events with
``duplicate_of``: every copy of a demo page after the first is one, and still gets its
event), RSS of each process at the first sample with >= 1,000 articles tagged and at the end
(growth %), throughput. A Markdown table, an RSS-over-time table (every ~1,000 articles),
and ``--json``.

``--leak-check N`` runs no service: in this process, ``page_to_extraction`` + tagging on the
10 demo pages (as the site serves them, distinct URLs) N times, with tracemalloc; it prints
RSS and traced memory at 1/10 of N and at N and the top allocation differences between the
two snapshots (``trafilatura.meta.reset_caches()`` is NOT called, as in a worker).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from email.utils import formatdate
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import harness
import redis
import yaml
from harness import ROOT, children, free_port, md_table, process_table, rss_kb

from core import keys, queues
from core.urls import article_id_for, canonicalize_url
from service.demo import SITE_DIR

PAGES = sorted(p.name for p in (SITE_DIR / "articles").glob("*.html"))
FEED_WINDOW = 200
SAMPLE_EVERY_S = 2.0
STREAM = "tradewire:events"


log = harness.logger("soak")


# --- the site ---------------------------------------------------------------------------


class GrowingSite:
    """Article n = demo page n % 10 at /c<n // 10>/<page>, published at start + n / rate."""

    def __init__(
        self, articles: int, rate: float, feeds: int, canonical_differs: float = 0.0
    ) -> None:
        self.articles = articles
        self.canonical_differs = canonical_differs
        self.rate = rate
        self.feeds = feeds
        self.base = ""
        self.start_at: float | None = None  # time.time() of article 0
        self.page_hits = 0
        self.feed_hits = 0
        self.not_modified = 0
        self._lock = threading.Lock()
        self._bodies = {name: (SITE_DIR / "articles" / name).read_bytes() for name in PAGES}
        self._server: ThreadingHTTPServer | None = None

    def path(self, n: int) -> str:
        return f"/c{n // len(PAGES)}/{PAGES[n % len(PAGES)]}"

    def url(self, n: int) -> str:
        """Article n's canonical URL (what its page names in <link rel=canonical>)."""
        return f"{self.base}{self.path(n)}"

    def link(self, n: int) -> str:
        """The link the feed gives: for a share of articles an AMP URL whose page names the
        plain URL as canonical, as real feeds do (also FeedBurner links, http vs https)."""
        if (n * 7919) % 1000 < self.canonical_differs * 1000:
            return f"{self.base}/amp{self.path(n)}"
        return self.url(n)

    def feed_urls(self) -> list[str]:
        return [f"{self.base}/feed/{i}.xml" for i in range(self.feeds)]

    def published(self, now: float | None = None) -> int:
        if self.start_at is None:
            return 0
        now = time.time() if now is None else now
        return max(0, min(self.articles, int((now - self.start_at) * self.rate) + 1))

    def feed(self, index: int, if_none_match: str | None) -> tuple[int, dict[str, str], bytes]:
        count = self.published()
        mine = list(range(index, count, self.feeds))[-FEED_WINDOW:]
        etag = f'"{index}-{mine[-1] if mine else -1}"'
        if if_none_match == etag:
            with self._lock:
                self.not_modified += 1
            return 304, {"ETag": etag}, b""
        assert self.start_at is not None or not mine
        items = "".join(
            f"<item><title>Article {n}</title><link>{self.link(n)}</link>"
            f"<guid isPermaLink='true'>{self.link(n)}</guid>"
            f"<pubDate>{formatdate((self.start_at or 0) + n / self.rate, usegmt=True)}</pubDate>"
            "</item>"
            for n in reversed(mine)
        )
        body = (
            "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel>"
            f"<title>Soak feed {index}</title><link>{self.base}/</link>"
            f"<description>soak</description>{items}</channel></rss>"
        ).encode()
        return 200, {"Content-Type": "application/rss+xml", "ETag": etag}, body

    def respond(self, path: str, if_none_match: str | None) -> tuple[int, dict[str, str], bytes]:
        match = re.fullmatch(r"/feed/(\d+)\.xml", path)
        if match and int(match.group(1)) < self.feeds:
            with self._lock:
                self.feed_hits += 1
            return self.feed(int(match.group(1)), if_none_match)
        match = re.fullmatch(r"(?:/amp)?/c(\d+)/([\w.-]+)", path)
        if match and match.group(2) in self._bodies:
            n = int(match.group(1)) * len(PAGES) + PAGES.index(match.group(2))
            if n < self.published():
                with self._lock:
                    self.page_hits += 1
                page = match.group(2)
                canonical = path.removeprefix("/amp")
                body = self._bodies[page].replace(
                    f"{{{{BASE}}}}/articles/{page}".encode(), f"{self.base}{canonical}".encode()
                )
                body = body.replace(b"{{BASE}}", self.base.encode())
                return 200, {"Content-Type": "text/html; charset=utf-8"}, body
        return 404, {"Content-Type": "text/plain"}, b"not found"

    def start(self) -> GrowingSite:
        self._server = harness.http_server(
            lambda path, headers: self.respond(path, headers.get("If-None-Match"))
        )
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


# --- processes ----------------------------------------------------------------------------


def child_commands(pid: int) -> dict[int, str]:
    """{child pid: command line} of the direct children of ``pid``."""
    return children(pid, process_table(cmdlines=True))


def classify(cmdline: str) -> str | None:
    """The supervisor slot ("extract-0", "tag-0") of a worker, "redis" for redis-server."""
    if "redis-server" in cmdline:
        return "redis"
    if "work-one" not in cmdline:
        return None
    name = re.search(r"--name (\S+)", cmdline)
    if name:  # <hostname>.<pid>.<slot>.<restarts>
        return name.group(1).split(".")[-2]
    queue = re.search(r"--queue (\S+)", cmdline)
    return f"{queue.group(1)}-?" if queue else "worker-?"


def start_run(tmp: Path, site: GrowingSite, args: argparse.Namespace, health_port: int) -> Any:
    feeds = tmp / "feeds.yaml"
    feeds.write_text(
        yaml.safe_dump({"feeds": [{"url": u, "interval_s": 5} for u in site.feed_urls()]})
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWIRE_")} | {
        "TRADEWIRE_FEEDS_FILE": str(feeds),
        "TRADEWIRE_POLL_MIN_INTERVAL_S": "5",
        "TRADEWIRE_CORPUS_DIR": str(tmp / "corpus"),
        "TRADEWIRE_REDIS_EMBEDDED_DIR": str(tmp / "redis"),
        "TRADEWIRE_HEALTH_PORT": str(health_port),
        "TRADEWIRE_ALLOW_PRIVATE_HOSTS": "1",
        "TRADEWIRE_HOST_MIN_DELAY_S": "0",
        "TRADEWIRE_HOST_CONCURRENCY": "8",
        "TRADEWIRE_WORKERS": str(args.workers),
        "TRADEWIRE_WORKER_MAX_JOBS": str(args.worker_max_jobs),
        "TRADEWIRE_LOG_LEVEL": "WARNING",
        "TRADEWIRE_CONFIG": str(ROOT / "config" / "settings.yaml"),
        "TRADEWIRE_TAXONOMY_FILE": str(ROOT / "config" / "taxonomy.yaml"),
    }
    env = harness.with_checkout(env)
    out = (tmp / "run.log").open("ab")
    try:
        # Its own session: Ctrl-C reaches only this script, which then stops it in order.
        return subprocess.Popen(
            [sys.executable, "-m", "service", "run"],
            env=env,
            cwd=tmp,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    finally:
        out.close()


def stop_run(proc: Any, timeout_s: float = 60.0) -> None:
    """SIGTERM (readiness off, poller stops, workers finish their job), then SIGKILL of the
    run process and of any child it left behind."""
    if proc.poll() is not None:
        return
    kids = list(child_commands(proc.pid))
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout_s)
        return
    except subprocess.TimeoutExpired:
        log(f"run process {proc.pid} did not stop in {timeout_s:.0f}s: killing it")
    kids = list(set(kids) | set(child_commands(proc.pid)))
    proc.kill()
    proc.wait()
    for pid in kids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


# --- measuring ----------------------------------------------------------------------------


def count_verdicts(client: redis.Redis) -> int:
    return sum(1 for _ in client.scan_iter(keys.verdict("*"), count=5000))


def queue_state(rq_client: redis.Redis) -> dict[str, int]:
    state = {}
    for name, counts in queues.queue_counts(rq_client, with_workers=False).items():
        state[f"q_{name}"] = counts.waiting
        state[f"started_{name}"] = counts.running
        state[f"scheduled_{name}"] = counts.scheduled_retries
        state[f"failed_{name}"] = counts.failed
    return state


def metric_counts(health_port: int) -> dict[str, float]:
    """tradewire_articles_total and tradewire_events_total, by label set, from /metrics."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{health_port}/metrics", timeout=10) as r:
            text = r.read().decode()
    except OSError:
        return {}
    found = {}
    for line in text.splitlines():
        if line.startswith(("tradewire_articles_total{", "tradewire_events_total{")):
            name, value = line.rsplit(" ", 1)
            found[name] = float(value)
    return found


class Sampler:
    def __init__(
        self,
        run_pid: int,
        site: GrowingSite,
        client: redis.Redis,
        rq_client: redis.Redis,
        t0: float,
    ) -> None:
        self.run_pid = run_pid
        self.site = site
        self.client = client
        self.rq_client = rq_client
        self.t0 = t0
        self.samples: list[dict[str, Any]] = []
        self.pids: dict[str, list[int]] = collections.defaultdict(list)  # slot -> pids seen
        self.killer: WorkerKiller | None = None

    def sample(self) -> dict[str, Any]:
        procs: dict[str, dict[str, int | None]] = {"run": {"pid": self.run_pid}}
        table = process_table(cmdlines=True)
        for pid, cmdline in children(self.run_pid, table).items():
            slot = classify(cmdline)
            if slot is None:
                continue
            procs[slot] = {"pid": pid}
            if slot != "redis":
                # RQ forks its scheduler from the worker that holds a queue's scheduler lock.
                for sched in children(pid, table):
                    procs[f"{slot}.scheduler"] = {"pid": sched}
        for slot, info in procs.items():
            pid = info["pid"]
            assert pid is not None
            info["rss_kb"] = rss_kb(pid)
            if slot in ("run", "redis") or slot.endswith(".scheduler"):
                continue
            if not self.pids[slot] or self.pids[slot][-1] != pid:
                self.pids[slot].append(pid)
        sample: dict[str, Any] = {
            "t_s": round(time.time() - self.t0, 1),
            "published": self.site.published(),
            "tagged": count_verdicts(self.client),
            "events": int(self.client.xlen(STREAM)),
            **queue_state(self.rq_client),
            "procs": procs,
        }
        self.samples.append(sample)
        return sample


def stream_summary(client: redis.Redis) -> dict[str, Any]:
    per_id: collections.Counter[str] = collections.Counter()
    types: collections.Counter[str] = collections.Counter()
    near_duplicates = 0
    last = "-"
    while True:
        batch = client.xrange(STREAM, min=last, max="+", count=1000)
        if last != "-" and batch and batch[0][0] == last:
            batch = batch[1:]
        if not batch:
            break
        for entry_id, fields in batch:
            per_id[fields["article_id"]] += 1
            types[fields.get("event_type", "?")] += 1
            if json.loads(fields["data"]).get("duplicate_of"):
                near_duplicates += 1
            last = entry_id
    return {
        "entries": sum(per_id.values()),
        "distinct_ids": len(per_id),
        "duplicate_entries": sum(c - 1 for c in per_id.values() if c > 1),
        "event_types": dict(types),
        "near_duplicate_events": near_duplicates,
        "ids": set(per_id),
    }


def verdict_summary(client: redis.Redis) -> dict[str, Any]:
    names = list(client.scan_iter(keys.verdict("*"), count=5000))
    verdicts: dict[str, dict[str, Any]] = {}
    for i in range(0, len(names), 1000):
        chunk = names[i : i + 1000]
        for name, raw in zip(chunk, client.mget(chunk), strict=True):
            verdicts[name.rsplit(":", 1)[1]] = json.loads(raw or "{}")
    return verdicts


def pct(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not a:
        return None
    return round(100.0 * (b - a) / a, 1)


def mib(kb: int | float | None) -> str:
    return "-" if kb is None else f"{kb / 1024:.1f}"


# --- the soak -----------------------------------------------------------------------------


def wait_started(proc: Any, tmp: Path, workers: int) -> Path:
    """Until the service's redis-server and every worker slot run; its Redis socket."""
    sock = tmp / "redis" / "redis.sock"
    deadline = time.monotonic() + 60
    want = {f"extract-{i}" for i in range(workers)} | {"tag-0", "redis"}
    while True:
        slots = {classify(c) for c in child_commands(proc.pid).values()}
        if sock.exists() and want <= slots:
            return sock
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("service did not start: " + (tmp / "run.log").read_text()[-3000:])
        time.sleep(0.2)


def progress(sample: dict[str, Any]) -> None:
    workers = " ".join(
        f"{slot}={mib(info['rss_kb'])}" for slot, info in sorted(sample["procs"].items())
    )
    log(
        f"t={sample['t_s']:.0f}s published={sample['published']} "
        f"tagged={sample['tagged']} events={sample['events']} "
        f"backlog={sample['q_extract']}+{sample['q_tag']} RSS MiB: {workers}"
    )


def drained(
    sample: dict[str, Any], args: argparse.Namespace, health_port: int, hard_deadline: float
) -> bool:
    """Everything published, queues and registries empty, every article tagged or refused."""
    if sample["published"] < args.articles:
        return False
    pending = sum(
        sample[f"{kind}_{q}"] for kind in ("q", "started", "scheduled") for q in keys.QUEUES
    )
    if pending or sample["tagged"] == 0:
        return False
    refused = sum(v for k, v in metric_counts(health_port).items() if 'status="refused"' in k)
    return sample["tagged"] + refused >= args.articles or time.time() > hard_deadline


class WorkerKiller:
    """SIGKILLs an extract worker ``times`` times, spread over the publishing, each one
    while it holds a job (so a batch dies half done, and its retry must lose nothing)."""

    def __init__(self, run_pid: int, times: int, articles: int) -> None:
        self.run_pid = run_pid
        self.due_at = [articles * (k + 1) / (times + 1) for k in range(times)]
        self.kills: list[dict[str, Any]] = []

    def maybe_kill(self, sample: dict[str, Any], rq_client: redis.Redis) -> None:
        if not self.due_at or sample["published"] < self.due_at[0]:
            return
        for job_id in rq_client.zrange(f"rq:wip:{keys.EXTRACT_QUEUE}", 0, -1):
            job_key = f"rq:job:{job_id.decode().split(':', 1)[0]}"
            worker = (rq_client.hget(job_key, "worker_name") or b"").decode()
            for pid, cmdline in child_commands(self.run_pid).items():
                if worker and f"--name {worker}" in cmdline:
                    os.kill(pid, signal.SIGKILL)
                    self.kills.append({"at_published": sample["published"], "worker": worker,
                                       "job": job_key.removeprefix("rq:job:")})  # fmt: skip
                    self.due_at.pop(0)
                    log(f"killed {worker} (pid {pid}) holding {job_key}")
                    return


def watch(
    proc: Any, tmp: Path, sampler: Sampler, args: argparse.Namespace, health_port: int
) -> float | None:
    """Sample every 2 s until drained (its time) or ``--drain-timeout`` (None)."""
    hard_deadline = sampler.t0 + args.articles / args.rate + args.drain_timeout
    next_log = 0
    while True:
        sample = sampler.sample()
        if sampler.killer is not None:
            sampler.killer.maybe_kill(sample, sampler.rq_client)
        if proc.poll() is not None:
            raise RuntimeError(
                f"service exited ({proc.returncode}): " + (tmp / "run.log").read_text()[-3000:]
            )
        if sample["tagged"] >= next_log:
            progress(sample)
            next_log += 1000
        if drained(sample, args, health_port, hard_deadline):
            return time.time()
        if time.time() > hard_deadline:
            log("drain timeout: stopping with work outstanding")
            return None
        time.sleep(max(0.0, SAMPLE_EVERY_S - (time.time() - sampler.t0 - sample["t_s"])))


def run_soak(tmp: Path, site: GrowingSite, args: argparse.Namespace) -> dict[str, Any]:
    """Start the service, let the site publish, watch it drain; what was measured."""
    health_port = free_port()
    proc = start_run(tmp, site, args, health_port)
    try:
        sock = wait_started(proc, tmp, args.workers)
        client = redis.Redis(unix_socket_path=str(sock), decode_responses=True, socket_timeout=30)
        rq_client = redis.Redis(unix_socket_path=str(sock), socket_timeout=30)
        time.sleep(3)  # workers import and register; then the site starts publishing
        t0 = site.start_at = time.time()
        log(
            f"site {site.base}: publishing {args.articles} articles at {args.rate}/s in "
            f"{args.feeds} feeds; run pid {proc.pid}, worker_max_jobs {args.worker_max_jobs}"
        )
        sampler = Sampler(proc.pid, site, client, rq_client, t0)
        if args.kill_workers:
            sampler.killer = WorkerKiller(proc.pid, args.kill_workers, args.articles)
        drained_at = watch(proc, tmp, sampler, args, health_port)
        time.sleep(SAMPLE_EVERY_S)
        final = sampler.sample()
        found = {
            "t0": t0, "drained_at": drained_at, "sampler": sampler, "final": final,
            "metrics": metric_counts(health_port), "streamed": stream_summary(client),
            "kills": sampler.killer.kills if sampler.killer else [],
            "verdicts": verdict_summary(client),
            "corpus_files": len(list((tmp / "corpus").glob("*.txt"))),
            "run_log": (tmp / "run.log").read_text(errors="replace"),
        }  # fmt: skip
        client.close()
        rq_client.close()
        return found
    finally:
        stop_run(proc)


def soak(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="tradewire-soak-"))
    site = GrowingSite(args.articles, args.rate, args.feeds, args.canonical_differs).start()
    started = time.time()
    try:
        found = run_soak(tmp, site, args)
    finally:
        site.stop()
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return summarise(args, site, found, started)


def memory_by_slot(
    samples: list[dict[str, Any]], final: dict[str, Any], sampler: Sampler, articles: int
) -> dict[str, Any]:
    """Per process slot: RSS at the first sample with 1,000 articles tagged, at the end, peak."""
    at_1000 = next((s for s in samples if s["tagged"] >= min(1000, articles)), samples[0])
    later = samples[samples.index(at_1000) :]
    memory = {}
    for slot in sorted({slot for s in samples for slot in s["procs"]}, key=_slot_order):
        # The first sample from the 1,000 mark on where the process was there (a recycled
        # worker may be between two processes at the mark).
        first = next(
            (s["procs"][slot] for s in later if s["procs"].get(slot, {}).get("rss_kb")), {}
        )
        last = final["procs"].get(slot, {})
        memory[slot] = {
            "rss_kb_at_1000": first.get("rss_kb"),
            "rss_kb_end": last.get("rss_kb"),
            "rss_kb_peak": max((s["procs"].get(slot, {}).get("rss_kb") or 0) for s in samples),
            "growth_pct": pct(first.get("rss_kb"), last.get("rss_kb")),
            "same_process": first.get("pid") == last.get("pid"),
            "processes": len(sampler.pids[slot]) if slot in sampler.pids else 1,
        }
    return memory


def config_of(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "articles": args.articles,
        "rate_per_s": args.rate,
        "feeds": args.feeds,
        "feed_window": FEED_WINDOW,
        "extract_workers": args.workers,
        "tag_workers": 1,
        "worker_max_jobs": args.worker_max_jobs,
        "poll_interval_s": 5,
        "canonical_differs": args.canonical_differs,
        "kill_workers": args.kill_workers,
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
    }


def summarise(
    args: argparse.Namespace, site: GrowingSite, found: dict[str, Any], started: float
) -> dict[str, Any]:
    verdicts, streamed, metrics = found["verdicts"], found["streamed"], found["metrics"]
    sampler, final = found["sampler"], found["final"]
    published_ids = {article_id_for(canonicalize_url(site.url(n))): n for n in range(args.articles)}
    refused = int(sum(v for k, v in metrics.items() if 'status="refused"' in k))
    missing = set(published_ids) - set(verdicts)
    relevant_ids = {aid for aid, v in verdicts.items() if v.get("us_china_trade")}
    end_t = (found["drained_at"] or time.time()) - found["t0"]
    samples = sampler.samples
    return {
        "config": config_of(args),
        "published": site.published(time.time()),
        "tagged": len(verdicts),
        "refused": refused,
        "lost": max(0, len(missing) - refused),
        "missing_ids": sorted(missing)[:20],
        "unexpected_verdicts": len(set(verdicts) - set(published_ids)),
        "corpus_files": found["corpus_files"],
        "relevant_verdicts": len(relevant_ids),
        "events": streamed["entries"],
        "event_ids": streamed["distinct_ids"],
        "duplicate_events": streamed["duplicate_entries"],
        "events_without_relevant_verdict": len(streamed["ids"] - relevant_ids),
        "relevant_without_event": len(relevant_ids - streamed["ids"]),
        "event_types": streamed["event_types"],
        "near_duplicate_events": streamed["near_duplicate_events"],
        "canonical_differs": sum(site.link(n) != site.url(n) for n in range(args.articles)),
        "workers_killed": len(found["kills"]),
        "failed_jobs": {q: final[f"failed_{q}"] for q in keys.QUEUES},
        "metrics": metrics,
        "drained": found["drained_at"] is not None,
        "duration_s": round(end_t, 1),
        "publish_s": round(args.articles / args.rate, 1),
        "throughput_per_s": round(len(verdicts) / end_t, 2) if end_t else None,
        "max_backlog": max(s["q_extract"] + s["q_tag"] for s in samples),
        "site": {
            "page_hits": site.page_hits,
            "feed_hits": site.feed_hits,
            "not_modified": site.not_modified,
        },
        "memory": memory_by_slot(samples, final, sampler, args.articles),
        "recycles": {slot: len(pids) - 1 for slot, pids in sampler.pids.items()},
        "log_warnings": _log_summary(found["run_log"]),
        "wall_s": round(time.time() - started, 1),
        "samples": samples,
    }


def _slot_order(slot: str) -> tuple[int, str]:
    if slot.endswith(".scheduler"):
        return (8, slot)
    return ({"run": 0, "redis": 9}.get(slot, 5 if slot.startswith("extract") else 6), slot)


def _log_summary(text: str) -> dict[str, int]:
    """Counts of WARNING+ log events by event name (JSON log lines)."""
    counts: collections.Counter[str] = collections.Counter()
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            if line.strip():
                counts["(non-JSON line)"] += 1
            continue
        if isinstance(record, dict):
            counts[str(record.get("event", "?"))] += 1
    return dict(counts)


NAMES = {"run": "poller (run process)", "redis": "redis-server"}


def summary_rows(result: dict[str, Any]) -> list[tuple[str, Any]]:
    r = result
    return [
        ("articles published", r["published"]),
        ("tagged (verdicts)", r["tagged"]),
        ("refused", r["refused"]),
        ("**lost** (published, no verdict, not refused)", f"**{r['lost']}**"),
        ("corpus files", r["corpus_files"]),
        ("relevant verdicts / events / distinct ids",
         f"{r['relevant_verdicts']} / {r['events']} / {r['event_ids']}"),
        ("**duplicate events** (same article_id)", f"**{r['duplicate_events']}**"),
        ("relevant without event / event without relevant verdict",
         f"{r['relevant_without_event']} / {r['events_without_relevant_verdict']}"),
        ("near-duplicate events (duplicate_of set)", r["near_duplicate_events"]),
        ("feed links whose page names another canonical URL", r["canonical_differs"]),
        ("extract workers SIGKILLed holding a job", r["workers_killed"]),
        ("failed jobs (extract, tag)", f"{r['failed_jobs']['extract']}, {r['failed_jobs']['tag']}"),
        ("drained", "yes" if r["drained"] else "NO"),
        ("duration (first publish → drained)", f"{r['duration_s']} s (publishing {r['publish_s']} s)"),
        ("throughput", f"{r['throughput_per_s']} articles/s"),
        ("max backlog (extract + tag queues)", r["max_backlog"]),
    ]  # fmt: skip


def memory_rows(mem: dict[str, Any]) -> list[tuple[str, str]]:
    rows = []
    for slot, m in mem.items():
        label = NAMES.get(slot, f"worker {slot}")
        if slot.endswith(".scheduler"):
            label = f"RQ scheduler (forked by {slot.split('.')[0]})"
        note = "" if m["same_process"] else " (different process at the end)"
        if m["processes"] > 1:
            note += f", {m['processes'] - 1} recycle(s)"
        growth = "-" if m["growth_pct"] is None else f"{m['growth_pct']:+.1f}%"
        rows.append((
            f"RSS MiB {label}: at 1,000 → end (peak)",
            f"{mib(m['rss_kb_at_1000'])} → {mib(m['rss_kb_end'])} ({mib(m['rss_kb_peak'])}), "
            f"**{growth}**{note}",
        ))  # fmt: skip
    return rows


def rss_over_time(samples: list[dict[str, Any]], slots: list[str]) -> list[str]:
    """One row about every 1,000 articles tagged, and the last sample."""
    header = [
        "t s", "published", "tagged", "backlog",
        *[NAMES.get(s, s.replace(".scheduler", " sched")) for s in slots],
    ]  # fmt: skip
    rows, mark = [], 0
    for s in samples:
        if s["tagged"] >= mark:
            rows.append(s)
            mark = (s["tagged"] // 1000 + 1) * 1000
    if rows[-1] is not samples[-1]:
        rows.append(samples[-1])
    cells = [
        (f"{s['t_s']:.0f}", s["published"], s["tagged"], s["q_extract"] + s["q_tag"],
         *[mib(s["procs"].get(slot, {}).get("rss_kb")) for slot in slots])
        for s in rows
    ]  # fmt: skip
    return md_table(header, cells)


def report(result: dict[str, Any]) -> str:
    c = result["config"]
    lines = [
        f"## Soak: {c['articles']} articles at {c['rate_per_s']}/s, {c['extract_workers']} extract "
        f"+ 1 tag worker, worker_max_jobs {c['worker_max_jobs']}",
        "",
        *md_table(("measure", "value"), [*summary_rows(result), *memory_rows(result["memory"])]),
        "",
        "RSS over time (MiB):",
        "",
        *rss_over_time(result["samples"], list(result["memory"])),
    ]
    if result["log_warnings"]:
        lines += ["", f"service log (WARNING+ events): {result['log_warnings']}"]
    return "\n".join(lines)


# --- in-process leak check ------------------------------------------------------------------


def leak_check(n: int, top: int = 15) -> dict[str, Any]:
    import gc
    import tracemalloc

    from core.settings import settings_from_environment
    from workers.pipeline import page_to_extraction, tag_document
    from workers.tagging import load_taxonomy

    settings = settings_from_environment()
    taxonomy = load_taxonomy(ROOT / "config" / "taxonomy.yaml")
    site = GrowingSite(n + 20, 1.0, 1)
    site.base = "http://127.0.0.1:8000"
    site.start_at = 0.0

    def one(i: int) -> None:
        status, _, body = site.respond(site.path(i), None)
        assert status == 200
        extraction = page_to_extraction(
            body, "text/html; charset=utf-8", site.url(i), settings.min_article_words, ""
        )
        tag_document(taxonomy, extraction.text, extraction.title)

    for i in range(20):  # warm-up: imports, lazy initialisation
        one(i)
    tracemalloc.start(10)
    warm = max(1, n // 10)
    rows = []
    snapshot = None
    for i in range(20, 20 + n):
        one(i)
        done = i - 19
        if done in (warm, n) or done % max(1, n // 10) == 0:
            gc.collect()
            current, _ = tracemalloc.get_traced_memory()
            rows.append({"done": done, "rss_kb": rss_kb(os.getpid()), "traced_kb": current // 1024})
            log(
                f"leak-check {done}: RSS {mib(rss_kb(os.getpid()))} MiB, traced {current >> 20} MiB"
            )
            if done == warm:
                snapshot = tracemalloc.take_snapshot()
    assert snapshot is not None
    end = tracemalloc.take_snapshot()
    filters = [tracemalloc.Filter(False, tracemalloc.__file__)]
    diff = end.filter_traces(filters).compare_to(snapshot.filter_traces(filters), "traceback")
    tops = []
    for stat in diff[:top]:
        frames = [f"{f.filename.replace(str(ROOT), '.')}:{f.lineno}" for f in stat.traceback]
        tops.append(
            {"size_diff_kb": stat.size_diff // 1024, "count_diff": stat.count_diff, "at": frames}
        )
    tracemalloc.stop()
    return {"iterations": n, "progress": rows, "top_diffs": tops}


def leak_report(result: dict[str, Any]) -> str:
    lines = [
        f"## In-process leak check: extract + tag x {result['iterations']}",
        "",
        "| done | RSS MiB | traced MiB |",
        "| --- | --- | --- |",
    ]
    lines += [
        f"| {r['done']} | {mib(r['rss_kb'])} | {r['traced_kb'] / 1024:.1f} |"
        for r in result["progress"]
    ]
    lines += ["", "Top allocation growth (traced), snapshot at 1/10 vs at the end:", ""]
    for t in result["top_diffs"]:
        where = " <- ".join(reversed(t["at"][-6:]))
        lines.append(f"- {t['size_diff_kb']:+d} KiB, {t['count_diff']:+d} blocks: {where}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=40.0, help="articles published per second")
    parser.add_argument("--minutes", type=float, default=None, help="articles = rate x 60 x N")
    parser.add_argument("--feeds", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="extract worker processes")
    parser.add_argument("--worker-max-jobs", type=int, default=100_000)
    parser.add_argument("--drain-timeout", type=float, default=900.0)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--leak-check", type=int, default=0, metavar="N")
    parser.add_argument(
        "--canonical-differs", type=float, default=0.3,
        help="share of feed links (AMP URLs) whose page names another canonical URL",
    )  # fmt: skip
    parser.add_argument(
        "--kill-workers", type=int, default=3,
        help="SIGKILL an extract worker holding a job this many times during the run",
    )  # fmt: skip
    args = parser.parse_args()
    if args.minutes is not None:
        args.articles = round(args.rate * 60 * args.minutes)

    signal.signal(signal.SIGTERM, harness.raise_keyboard_interrupt)
    try:
        if args.leak_check:
            result = leak_check(args.leak_check)
            print(leak_report(result))
        else:
            result = soak(args)
            print(report(result))
    except KeyboardInterrupt:
        log("interrupted: service stopped, temporary files removed")
        return 130
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1, default=str) + "\n")
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
