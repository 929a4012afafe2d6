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
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
import yaml  # noqa: E402
from rq import Queue  # noqa: E402
from rq.registry import (  # noqa: E402
    FailedJobRegistry,
    ScheduledJobRegistry,
    StartedJobRegistry,
)

from core.urls import article_id_for, canonicalize_url  # noqa: E402
from service import keys  # noqa: E402
from service.demo import SITE_DIR  # noqa: E402

PAGES = sorted(p.name for p in (SITE_DIR / "articles").glob("*.html"))
FEED_WINDOW = 200
SAMPLE_EVERY_S = 2.0
STREAM = "tradewire:events"


def log(message: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the site ---------------------------------------------------------------------------


class GrowingSite:
    """Article n = demo page n % 10 at /c<n // 10>/<page>, published at start + n / rate."""

    def __init__(self, articles: int, rate: float, feeds: int) -> None:
        self.articles = articles
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
        return f"{self.base}{self.path(n)}"

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
            f"<item><title>Article {n}</title><link>{self.url(n)}</link>"
            f"<guid isPermaLink='true'>{self.url(n)}</guid>"
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
        match = re.fullmatch(r"/c(\d+)/([\w.-]+)", path)
        if match and match.group(2) in self._bodies:
            n = int(match.group(1)) * len(PAGES) + PAGES.index(match.group(2))
            if n < self.published():
                with self._lock:
                    self.page_hits += 1
                page = match.group(2)
                body = self._bodies[page].replace(
                    f"{{{{BASE}}}}/articles/{page}".encode(), f"{self.base}{path}".encode()
                )
                body = body.replace(b"{{BASE}}", self.base.encode())
                return 200, {"Content-Type": "text/html; charset=utf-8"}, body
        return 404, {"Content-Type": "text/plain"}, b"not found"

    def start(self) -> GrowingSite:
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                status, headers, body = site.respond(self.path, self.headers.get("If-None-Match"))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if body:
                    self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


# --- processes ----------------------------------------------------------------------------


def rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def process_table() -> dict[int, tuple[int, str]]:
    """{pid: (parent pid, command line)} of every process."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError, IndexError):
            continue
        table[int(entry.name)] = (ppid, cmdline)
    return table


def children(pid: int, table: dict[int, tuple[int, str]] | None = None) -> dict[int, str]:
    """{child pid: command line} of the direct children of ``pid``."""
    table = process_table() if table is None else table
    return {child: cmdline for child, (ppid, cmdline) in table.items() if ppid == pid}


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
    kids = list(children(proc.pid))
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout_s)
        return
    except subprocess.TimeoutExpired:
        log(f"run process {proc.pid} did not stop in {timeout_s:.0f}s: killing it")
    kids = list(set(kids) | set(children(proc.pid)))
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
    for name in keys.QUEUES:
        queue = Queue(name, connection=rq_client)
        state[f"q_{name}"] = queue.count
        state[f"started_{name}"] = StartedJobRegistry(queue=queue).count
        state[f"scheduled_{name}"] = ScheduledJobRegistry(queue=queue).count
        state[f"failed_{name}"] = FailedJobRegistry(queue=queue).count
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

    def sample(self) -> dict[str, Any]:
        procs: dict[str, dict[str, int | None]] = {"run": {"pid": self.run_pid}}
        table = process_table()
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


def soak(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="tradewire-soak-"))
    site = GrowingSite(args.articles, args.rate, args.feeds).start()
    proc = None
    health_port = free_port()
    started = time.time()
    try:
        proc = start_run(tmp, site, args, health_port)
        sock = tmp / "redis" / "redis.sock"
        deadline = time.monotonic() + 60
        want = {f"extract-{i}" for i in range(args.workers)} | {"tag-0", "redis"}
        while True:
            slots = {classify(c) for c in children(proc.pid).values()}
            if sock.exists() and want <= slots:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    "service did not start: " + (tmp / "run.log").read_text()[-3000:]
                )
            time.sleep(0.2)
        client = redis.Redis(unix_socket_path=str(sock), decode_responses=True, socket_timeout=30)
        rq_client = redis.Redis(unix_socket_path=str(sock), socket_timeout=30)
        time.sleep(3)  # workers import and register; then the site starts publishing
        t0 = site.start_at = time.time()
        log(
            f"site {site.base}: publishing {args.articles} articles at {args.rate}/s in "
            f"{args.feeds} feeds; run pid {proc.pid}, worker_max_jobs {args.worker_max_jobs}"
        )
        sampler = Sampler(proc.pid, site, client, rq_client, t0)
        publish_s = args.articles / args.rate
        hard_deadline = t0 + publish_s + args.drain_timeout
        drained_at = None
        next_log = 0
        while True:
            sample = sampler.sample()
            if proc.poll() is not None:
                raise RuntimeError(
                    f"service exited ({proc.returncode}): " + (tmp / "run.log").read_text()[-3000:]
                )
            if sample["tagged"] >= next_log:
                workers = " ".join(
                    f"{slot}={mib(info['rss_kb'])}"
                    for slot, info in sorted(sample["procs"].items())
                )
                log(
                    f"t={sample['t_s']:.0f}s published={sample['published']} "
                    f"tagged={sample['tagged']} events={sample['events']} "
                    f"backlog={sample['q_extract']}+{sample['q_tag']} RSS MiB: {workers}"
                )
                next_log += 1000
            if sample["published"] >= args.articles:
                pending = sum(
                    sample[f"{kind}_{q}"]
                    for kind in ("q", "started", "scheduled")
                    for q in keys.QUEUES
                )
                if pending == 0 and sample["tagged"] > 0:
                    refused = sum(
                        v for k, v in metric_counts(health_port).items() if 'status="refused"' in k
                    )
                    if sample["tagged"] + refused >= args.articles or time.time() > hard_deadline:
                        drained_at = time.time()
                        break
            if time.time() > hard_deadline:
                log("drain timeout: stopping with work outstanding")
                break
            time.sleep(max(0.0, SAMPLE_EVERY_S - (time.time() - t0 - sample["t_s"])))
        time.sleep(SAMPLE_EVERY_S)
        final = sampler.sample()
        metrics = metric_counts(health_port)
        streamed = stream_summary(client)
        verdicts = verdict_summary(client)
        corpus_files = len(list((tmp / "corpus").glob("*.txt")))
        run_log = (tmp / "run.log").read_text(errors="replace")
        client.close()
        rq_client.close()
    finally:
        if proc is not None:
            stop_run(proc)
        site.stop()
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    published_ids = {article_id_for(canonicalize_url(site.url(n))): n for n in range(args.articles)}
    refused = int(sum(v for k, v in metrics.items() if 'status="refused"' in k))
    missing = set(published_ids) - set(verdicts)
    unexpected = set(verdicts) - set(published_ids)
    relevant_ids = {aid for aid, v in verdicts.items() if v.get("us_china_trade")}
    end_t = (drained_at or time.time()) - t0
    samples = sampler.samples
    at_1000 = next((s for s in samples if s["tagged"] >= min(1000, args.articles)), samples[0])
    slots = sorted({slot for s in samples for slot in s["procs"]}, key=_slot_order)
    memory = {}
    for slot in slots:
        # The first sample from the 1,000 mark on where the process was there (a recycled
        # worker may be between two processes at the mark).
        first = next(
            (
                s["procs"][slot]
                for s in samples[samples.index(at_1000) :]
                if s["procs"].get(slot, {}).get("rss_kb")
            ),
            {},
        )
        last = final["procs"].get(slot, {})
        peak = max((s["procs"].get(slot, {}).get("rss_kb") or 0) for s in samples)
        memory[slot] = {
            "rss_kb_at_1000": first.get("rss_kb"),
            "rss_kb_end": last.get("rss_kb"),
            "rss_kb_peak": peak,
            "growth_pct": pct(first.get("rss_kb"), last.get("rss_kb")),
            "same_process": first.get("pid") == last.get("pid"),
            "processes": len(sampler.pids[slot]) if slot in sampler.pids else 1,
        }
    tagged = len(verdicts)
    return {
        "config": {
            "articles": args.articles,
            "rate_per_s": args.rate,
            "feeds": args.feeds,
            "feed_window": FEED_WINDOW,
            "extract_workers": args.workers,
            "tag_workers": 1,
            "worker_max_jobs": args.worker_max_jobs,
            "poll_interval_s": 5,
            "python": sys.version.split()[0],
            "cpus": os.cpu_count(),
        },
        "published": site.published(time.time()),
        "tagged": tagged,
        "refused": refused,
        "lost": max(0, len(missing) - refused),
        "missing_ids": sorted(missing)[:20],
        "unexpected_verdicts": len(unexpected),
        "corpus_files": corpus_files,
        "relevant_verdicts": len(relevant_ids),
        "events": streamed["entries"],
        "event_ids": streamed["distinct_ids"],
        "duplicate_events": streamed["duplicate_entries"],
        "events_without_relevant_verdict": len(streamed["ids"] - relevant_ids),
        "relevant_without_event": len(relevant_ids - streamed["ids"]),
        "event_types": streamed["event_types"],
        "near_duplicate_events": streamed["near_duplicate_events"],
        "failed_jobs": {q: final[f"failed_{q}"] for q in keys.QUEUES},
        "metrics": metrics,
        "drained": drained_at is not None,
        "duration_s": round(end_t, 1),
        "publish_s": round(publish_s, 1),
        "throughput_per_s": round(tagged / end_t, 2) if end_t else None,
        "max_backlog": max(s["q_extract"] + s["q_tag"] for s in samples),
        "site": {
            "page_hits": site.page_hits,
            "feed_hits": site.feed_hits,
            "not_modified": site.not_modified,
        },
        "memory": memory,
        "recycles": {slot: len(pids) - 1 for slot, pids in sampler.pids.items()},
        "log_warnings": _log_summary(run_log),
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


def report(result: dict[str, Any]) -> str:
    c = result["config"]
    mem = result["memory"]
    names = {"run": "poller (run process)", "redis": "redis-server"}
    lines = [
        f"## Soak: {c['articles']} articles at {c['rate_per_s']}/s, {c['extract_workers']} extract "
        f"+ 1 tag worker, worker_max_jobs {c['worker_max_jobs']}",
        "",
        "| measure | value |",
        "| --- | --- |",
        f"| articles published | {result['published']} |",
        f"| tagged (verdicts) | {result['tagged']} |",
        f"| refused | {result['refused']} |",
        f"| **lost** (published, no verdict, not refused) | **{result['lost']}** |",
        f"| corpus files | {result['corpus_files']} |",
        f"| relevant verdicts / events / distinct ids | {result['relevant_verdicts']} / "
        f"{result['events']} / {result['event_ids']} |",
        f"| **duplicate events** (same article_id) | **{result['duplicate_events']}** |",
        f"| relevant without event / event without relevant verdict | "
        f"{result['relevant_without_event']} / {result['events_without_relevant_verdict']} |",
        f"| near-duplicate events (duplicate_of set) | {result['near_duplicate_events']} |",
        f"| failed jobs (extract, tag) | {result['failed_jobs']['extract']}, "
        f"{result['failed_jobs']['tag']} |",
        f"| drained | {'yes' if result['drained'] else 'NO'} |",
        f"| duration (first publish → drained) | {result['duration_s']} s "
        f"(publishing {result['publish_s']} s) |",
        f"| throughput | {result['throughput_per_s']} articles/s |",
        f"| max backlog (extract + tag queues) | {result['max_backlog']} |",
    ]
    for slot, m in mem.items():
        label = names.get(slot, f"worker {slot}")
        if slot.endswith(".scheduler"):
            label = f"RQ scheduler (forked by {slot.split('.')[0]})"
        note = "" if m["same_process"] else " (different process at the end)"
        if m["processes"] > 1:
            note += f", {m['processes'] - 1} recycle(s)"
        growth = "-" if m["growth_pct"] is None else f"{m['growth_pct']:+.1f}%"
        lines.append(
            f"| RSS MiB {label}: at 1,000 → end (peak) | {mib(m['rss_kb_at_1000'])} → "
            f"{mib(m['rss_kb_end'])} ({mib(m['rss_kb_peak'])}), **{growth}**{note} |"
        )
    lines += ["", "RSS over time (MiB):", ""]
    slots = list(mem)
    header = [
        "t s", "published", "tagged", "backlog",
        *[names.get(s, s.replace(".scheduler", " sched")) for s in slots],
    ]  # fmt: skip
    lines += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    samples = result["samples"]
    rows, mark = [], 0
    for s in samples:
        if s["tagged"] >= mark:
            rows.append(s)
            mark = (s["tagged"] // 1000 + 1) * 1000
    if rows[-1] is not samples[-1]:
        rows.append(samples[-1])
    for s in rows:
        cells = [
            f"{s['t_s']:.0f}",
            str(s["published"]),
            str(s["tagged"]),
            str(s["q_extract"] + s["q_tag"]),
            *[mib(s["procs"].get(slot, {}).get("rss_kb")) for slot in slots],
        ]
        lines.append("| " + " | ".join(cells) + " |")
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
    args = parser.parse_args()
    if args.minutes is not None:
        args.articles = round(args.rate * 60 * args.minutes)

    def terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
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
