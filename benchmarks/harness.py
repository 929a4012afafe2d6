"""What the benchmark scripts share: paths, logging, statistics, CPU and memory accounting
from /proc, timing, a private redis-server, service processes (workers, pollers) under a
supervisor-like fleet, the local news site over the extraction corpus, and Markdown tables.

Importing it puts the repository root first on ``sys.path``, so the scripts measure the
code of the checkout they sit in.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
import email.utils
import gc
import importlib.metadata
import multiprocessing
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "benchmarks"
RESULTS_DIR = BENCH_DIR / "results"
PEERS_DIR = ROOT / ".venv" / "bench-peers"
TAXONOMY_FILE = ROOT / "config" / "taxonomy.yaml"
SETTINGS_FILE = ROOT / "config" / "settings.yaml"
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpus" / "extraction"
for _path in (str(BENCH_DIR), str(ROOT)):
    if _path in sys.path:
        sys.path.remove(_path)
    sys.path.insert(0, _path)

import redis  # noqa: E402
import yaml  # noqa: E402
from scoring import md_table  # noqa: E402  (re-exported: every script's tables)

from core import keys  # noqa: E402
from core.urls import article_id_for, canonicalize_url  # noqa: E402
from service.embedded_redis import EmbeddedRedis, redis_server_binary  # noqa: E402

MIN_WORDS = 80  # production's min_article_words
SUPERVISOR_TICK_S = 1.0  # how often production's supervisor restarts exited workers
LIVE_WINDOW = 20  # items the latency feed keeps
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Run a command with PR_SET_PDEATHSIG, so it dies with this process even on SIGKILL.
PDEATHSIG_EXEC = (
    "import ctypes, os, signal, sys; "
    "ctypes.CDLL(None).prctl(1, signal.SIGTERM); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


class BenchError(RuntimeError):
    pass


def logger(name: str) -> Callable[[str], None]:
    """``log(message)``: a time-stamped line on stderr, prefixed with the script's name."""

    def log(message: str) -> None:
        print(f"[{name} {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    return log


def die_with_parent() -> None:
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- statistics ------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between the closest ranks."""
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def pct(values: Sequence[float], q: float) -> float | None:
    return percentile(list(values), q) if values else None


def nearest_rank(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


# --- /proc: CPU and memory of processes and of the machine -----------------------------------


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process, in clock ticks (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, ValueError, IndexError):
        return 0


def cpu_seconds(pid: int | None) -> float:
    """user+sys CPU seconds of another process (0 if unavailable)."""
    return 0.0 if pid is None else cpu_ticks(pid) / CLK_TCK


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in kB; {} when it is gone."""
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                out[name] = int(value.split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return out


def rss_kb(pid: int) -> int | None:
    return proc_status(pid).get("VmRSS")


def process_table(cmdlines: bool = False) -> dict[int, tuple[int, str]]:
    """{pid: (parent pid, command line or "")} of every process."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (
                (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode() if cmdlines else ""
            )
        except (OSError, ValueError, IndexError):
            continue
        table[int(entry.name)] = (ppid, cmdline)
    return table


def children(pid: int, table: dict[int, tuple[int, str]]) -> dict[int, str]:
    """{child pid: command line} of the direct children of ``pid``."""
    return {child: cmdline for child, (ppid, cmdline) in table.items() if ppid == pid}


def descendants(pid: int, table: dict[int, tuple[int, str]]) -> list[int]:
    kids: dict[int, list[int]] = {}
    for child, (ppid, _) in table.items():
        kids.setdefault(ppid, []).append(child)
    out, todo = [], list(kids.get(pid, []))
    while todo:
        child = todo.pop()
        out.append(child)
        todo.extend(kids.get(child, []))
    return out


def machine_ticks() -> tuple[int, int]:
    """Busy (user, nice, system, irq, softirq) and steal ticks of the whole machine."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return fields[0] + fields[1] + fields[2] + fields[5] + fields[6], fields[7]


def system_busy_s() -> float:
    """CPU seconds the whole machine spent busy (all CPUs, steal included)."""
    try:
        busy, steal = machine_ticks()
    except (OSError, ValueError, IndexError):
        return 0.0
    return (busy + steal) / CLK_TCK


def with_cpu(
    result: dict[str, Any], cpu_s: float, machine_before: tuple[int, int]
) -> dict[str, Any]:
    """CPU of the variant's own processes, and what the rest of the machine did meanwhile
    (other work, plus this harness: the site process and the 10 ms queue checks)."""
    busy, steal = machine_ticks()
    seconds = result["seconds"]
    result["cpu_s"] = cpu_s
    result["cpu_ms_per_article"] = cpu_s * 1000 / result["articles"]
    result["cores_busy"] = cpu_s / seconds
    result["other_cores_busy"] = max(
        0.0, (busy - machine_before[0]) / CLK_TCK / seconds - cpu_s / seconds
    )
    result["steal_cores"] = (steal - machine_before[1]) / CLK_TCK / seconds
    result["load_average_after"] = os.getloadavg()[0]
    return result


# --- timing ----------------------------------------------------------------------------------


def time_calls(calls: Sequence[Callable[[], Any]], warm: bool = True) -> list[float]:
    """Microseconds of each call, after a warm-up of the first ten (unless ``warm`` is off)."""
    if warm:
        for call in calls[: min(len(calls), 10)]:
            call()
    gc.collect()
    out = []
    for call in calls:
        start = time.perf_counter()
        call()
        out.append((time.perf_counter() - start) * 1e6)
    return out


# --- processes -------------------------------------------------------------------------------


def stop_process(process: Any, timeout_s: float = 5.0) -> None:
    """A multiprocessing.Process: SIGTERM, then SIGKILL."""
    if process is not None and process.is_alive():
        process.terminate()
        process.join(timeout_s)
        if process.is_alive():
            process.kill()
            process.join()


@contextlib.contextmanager
def private_redis(directory: Path, *, appendonly: bool) -> Iterator[EmbeddedRedis]:
    """A redis-server of our own on a free port (never the machine's), stopped at the end."""
    server = EmbeddedRedis(directory, port=free_port(), appendonly=appendonly)
    try:
        yield server.start()
    finally:
        server.stop()


@dataclasses.dataclass
class Child:
    name: str
    role: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    restart: bool
    named: bool = False  # gets --name <unique instance>, as the supervisor gives workers
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    exit_codes: list[int] = dataclasses.field(default_factory=list)
    peak_kb: int = 0  # max VmHWM over incarnations
    peak_sub_kb: int = 0  # its own children (RQ's forked scheduler; the poller's parsers)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Fleet:
    """Starts service processes, restarts workers that exit (as the supervisor does), samples
    their memory and CPU, and stops them all (SIGTERM, then SIGKILL)."""

    def __init__(self, logs_dir: Path) -> None:
        self.logs_dir = logs_dir
        self.children: list[Child] = []
        self.extra_pids: dict[str, int] = {}  # e.g. redis-server
        self.extra_peak_kb: dict[str, int] = {}
        self.ticks: dict[int, int] = {}  # last CPU ticks seen per pid (exited ones stay)
        self.pid_group: dict[int, str] = {}

    def spawn(
        self, name: str, role: str, args: list[str], env: dict[str, str], *, restart: bool
    ) -> Child:
        """``python -m service <args>``, dying with this process."""
        argv = [sys.executable, "-c", PDEATHSIG_EXEC, sys.executable, "-m", "service", *args]
        child = Child(name, role, argv, env, self.logs_dir / f"{name}.log", restart, restart)
        self.children.append(child)
        self._start(child)
        return child

    def _start(self, child: Child) -> None:
        argv = (
            [*child.argv, "--name", f"bench.{child.name}.{child.starts}"]
            if child.named
            else child.argv
        )
        with child.log_path.open("ab") as out:
            child.proc = subprocess.Popen(
                argv, env=child.env, cwd=self.logs_dir, stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        child.starts += 1

    def supervise(self) -> None:
        for child in self.children:
            if child.restart and child.proc is not None and child.proc.poll() is not None:
                child.exit_codes.append(int(child.proc.returncode))
                self._start(child)

    def sample(self) -> None:
        table = process_table()
        for child in self.children:
            if not child.alive():
                continue
            assert child.proc is not None
            child.peak_kb = max(child.peak_kb, proc_status(child.proc.pid).get("VmHWM", 0))
            role = child.role.split("-")[0]
            self._tick(child.proc.pid, role)
            # A worker's child is the RQ scheduler it forks; the poller's are its feed-parse
            # processes (a forkserver and the workers it forks).
            children = "poller parse processes" if role == "poller" else "RQ scheduler"
            for pid in descendants(child.proc.pid, table):
                child.peak_sub_kb = max(child.peak_sub_kb, proc_status(pid).get("VmHWM", 0))
                self._tick(pid, children)
        for name, pid in self.extra_pids.items():
            self.extra_peak_kb[name] = max(
                self.extra_peak_kb.get(name, 0), proc_status(pid).get("VmHWM", 0)
            )
            self._tick(pid, name)

    def _tick(self, pid: int, group: str) -> None:
        self.ticks[pid] = max(self.ticks.get(pid, 0), cpu_ticks(pid))
        self.pid_group[pid] = group

    def cpu_since(self, before: dict[int, int]) -> dict[str, float]:
        """CPU seconds of the service processes since ``before`` (a copy of ``ticks``), by
        group (extract, tag, poller, RQ scheduler, poller parse processes, redis-server); a
        process that exited counts up to its last sample (every 0.5 s)."""
        self.sample()
        out: dict[str, float] = {}
        for pid, t in self.ticks.items():
            group = self.pid_group.get(pid, "other")
            out[group] = out.get(group, 0.0) + (t - before.get(pid, 0)) / CLK_TCK
        return out

    def stop(self, child: Child, timeout_s: float = 15.0) -> None:
        child.restart = False
        if child.alive():
            self.sample()
            assert child.proc is not None
            child.proc.send_signal(signal.SIGTERM)
            try:
                child.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait()

    def stop_all(self) -> None:
        for child in self.children:
            child.restart = False
            if child.alive():
                assert child.proc is not None
                child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for child in self.children:
            if child.proc is not None and child.proc.poll() is None:
                try:
                    child.proc.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    child.proc.kill()
                    child.proc.wait()

    def tail(self, child: Child, chars: int = 1500) -> str:
        try:
            return child.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


# --- local HTTP sites ------------------------------------------------------------------------

Response = tuple[int, dict[str, str], bytes]


def http_server(
    respond: Callable[[str, Any], Response],
    after: Callable[[str], None] | None = None,
    *,
    nodelay: bool = False,
) -> ThreadingHTTPServer:
    """A threaded HTTP/1.1 keep-alive server on a free port of 127.0.0.1 (not yet serving):
    ``respond(path, headers)`` answers each GET; ``after(path)`` runs once it is written."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            if nodelay:
                # Headers and body go out as two writes: without this, Nagle's algorithm
                # and the client's delayed ACK add 40 ms to some responses.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_GET(self) -> None:
            status, headers, body = respond(self.path, self.headers)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body:
                self.wfile.write(body)
            if after is not None and status == 200:
                after(self.path)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    return server


def article_path(label: str, j: int, page_keys: Sequence[str]) -> str:
    """Article j of a run: copy j // 88 of page j % 88 (copy-major, as the feeds list them)."""
    return f"/a/{label}/c{j // len(page_keys)}/{page_keys[j % len(page_keys)]}.html"


# Items per bench feed at most: under the poller's max_items_per_feed (500), which reads
# no further into a feed document (a corpus of 693 pages in one feed lost 193 of them).
FEED_ITEMS_MAX = 250


def feed_paths(label: str, n: int, per_feed: int, start: int = 0) -> list[str]:
    """Feeds listing articles ``start`` to ``start + n`` (article j is page j % pages)."""
    per_feed, stop = min(per_feed, FEED_ITEMS_MAX), start + n
    return [
        f"/feeds/{label}/{s}-{min(s + per_feed, stop)}.xml" for s in range(start, stop, per_feed)
    ]


def article_ids(
    base: str, label: str, n: int, page_keys: Sequence[str], start: int = 0
) -> list[str]:
    return [
        article_id_for(canonicalize_url(base + article_path(label, j, page_keys)))
        for j in range(start, start + n)
    ]


_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.I | re.S)


def page_title(html: bytes) -> str:
    found = _TITLE.search(html[:200_000])
    text = found.group(1).decode("utf-8", "replace") if found else ""
    return " ".join(text.split())[:200] or "Untitled"


def rss(
    base: str, label: str, indices: Sequence[int], page_keys: Sequence[str], titles: dict[str, str]
) -> bytes:
    now = time.time()
    items = []
    for j in indices:
        link = escape(base + article_path(label, j, page_keys))
        items.append(
            f"<item><title>{escape(titles[page_keys[j % len(page_keys)]])}</title>"
            f'<link>{link}</link><guid isPermaLink="true">{link}</guid>'
            f"<pubDate>{email.utils.formatdate(now - 60 * (len(indices) - j), usegmt=True)}</pubDate></item>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
        f"<title>Bench {escape(label)}</title><link>{escape(base)}/</link>"
        f"<description>benchmark feed</description>{''.join(items)}</channel></rss>"
    ).encode()


class Site:
    """The extraction corpus as a news site, served by a forked process (so it never competes
    for this process's GIL): pages at /a/<label>/c<k>/<sha>.html, feeds at
    /feeds/<label>/<start>-<stop>.xml and, for latency, /live/<label>/<n>.xml, which reveals
    one more of its n items per request. Feed requests are reported through ``drain()``."""

    def __init__(self, pages: Sequence[Any], live_keys: Sequence[str] | None = None) -> None:
        ctx = multiprocessing.get_context("fork")
        self.html = {p.key: p.html for p in pages}
        self.titles = {p.key: page_title(p.html) for p in pages}
        self.page_keys = [p.key for p in pages]
        self.live_keys = list(live_keys or self.page_keys)  # the latency feed's pages
        self.events = ctx.SimpleQueue()
        self._feeds: dict[str, bytes] = {}
        self._live: dict[str, int] = {}
        self._lock = threading.Lock()
        self._last_count = threading.local()
        self.server = http_server(self.respond, self._served, nodelay=True)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.process = ctx.Process(target=self._serve, name="bench-site", daemon=True)

    def start(self) -> Site:
        self.process.start()
        self.server.socket.close()  # the child serves; the parent keeps no listener
        return self

    def stop(self) -> None:
        stop_process(self.process)

    def drain(self) -> list[tuple[str, str, float, int]]:
        """(kind, path, time served, items revealed) of each feed served since last time."""
        out = []
        while not self.events.empty():
            out.append(self.events.get())
        return out

    def respond(self, raw_path: str, headers: Any) -> Response:
        path = raw_path.split("?", 1)[0]
        body: bytes | None = None
        ctype = "application/rss+xml"
        if path == "/robots.txt":
            body, ctype = b"User-agent: *\nAllow: /\n", "text/plain"
        elif path.startswith("/a/") and path.endswith(".html"):
            body, ctype = self.html.get(path.rsplit("/", 1)[1][: -len(".html")]), "text/html"
        elif path.startswith("/feeds/"):
            body = self.feed_bytes(path)
        elif path.startswith("/live/"):
            live = self._live_bytes(path)
            if live is not None:
                body, self._last_count.value = live
        if body is None:
            return 404, {}, b""
        return 200, {"Content-Type": ctype}, body

    def _served(self, raw_path: str) -> None:
        path = raw_path.split("?", 1)[0]
        if path.startswith("/feeds/"):
            self.events.put(("feed", path, time.time(), 0))
        elif path.startswith("/live/"):
            self.events.put(("live", path, time.time(), self._last_count.value))

    def feed_bytes(self, path: str) -> bytes | None:
        if path not in self._feeds:
            parts = path.split("/")  # '', 'feeds', label, 'start-stop.xml'
            if len(parts) != 4 or not re.fullmatch(r"\d+-\d+\.xml", parts[3]):
                return None
            start, stop = (int(x) for x in parts[3][:-4].split("-"))
            self._feeds[path] = rss(
                self.base, parts[2], range(start, stop), self.page_keys, self.titles
            )
        return self._feeds[path]

    def _serve(self) -> None:
        die_with_parent()
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
        self.server.serve_forever(poll_interval=0.2)

    def _live_bytes(self, path: str) -> tuple[bytes, int] | None:
        parts = path.split("/")  # '', 'live', label, 'n.xml'
        if len(parts) != 4 or not re.fullmatch(r"\d+\.xml", parts[3]):
            return None
        with self._lock:
            count = min(int(parts[3][:-4]), self._live.get(path, 0) + 1)
            self._live[path] = count
        indices = range(max(0, count - LIVE_WINDOW), count)
        return rss(self.base, parts[2], indices, self.live_keys, self.titles), count


# --- the pipeline rig: site, private Redis and the service's processes -----------------------


@dataclasses.dataclass
class Rig:
    args: Any
    tmp: Path
    pages: list[Any]
    site: Site
    redis_url: str
    r: redis.Redis  # decode_responses=True
    fleet: Fleet
    env: dict[str, str]
    workers: list[Child] = dataclasses.field(default_factory=list)

    @property
    def page_keys(self) -> list[str]:
        return [p.key for p in self.pages]

    @property
    def corpus_dir(self) -> Path:
        return self.tmp / "corpus"


def service_env(tmp: Path, redis_url: str, args: Any) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TRADEWIRE_") and k != "PROMETHEUS_MULTIPROC_DIR"
    }
    (tmp / "metrics").mkdir(exist_ok=True)
    env.update(
        TRADEWIRE_CONFIG=str(SETTINGS_FILE),
        TRADEWIRE_REDIS_URL=redis_url,
        TRADEWIRE_ALLOW_PRIVATE_HOSTS="1",
        TRADEWIRE_CORPUS_DIR=str(tmp / "corpus"),
        TRADEWIRE_TAXONOMY_FILE=str(TAXONOMY_FILE),
        TRADEWIRE_LOG_LEVEL="WARNING",
        TRADEWIRE_LOG_FORMAT="json",
        # Per-host politeness is a policy for real sites; every bench page is on one host
        # (127.0.0.1), where production's 1 s between downloads caps the run at 1/s.
        # The gate still runs (its Lua call per download is measured), just without delay.
        TRADEWIRE_HOST_MIN_DELAY_S=str(args.host_min_delay),
        TRADEWIRE_HOST_CONCURRENCY=str(args.host_concurrency),
        TRADEWIRE_STORIES_ENABLED="false" if getattr(args, "no_stories", False) else "true",
        # As `tradewire worker`/`run` give their children: metrics in multiprocess mode.
        PROMETHEUS_MULTIPROC_DIR=str(tmp / "metrics"),
    )
    return with_checkout(env)


def with_checkout(env: dict[str, str]) -> dict[str, str]:
    """``env`` for ``python -m service`` from a temporary directory: this checkout's code
    first on the path, whichever checkout the interpreter's venv was installed from."""
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(ROOT), env.get("PYTHONPATH"))))
    return env


@contextlib.contextmanager
def rig(args: Any, pages: list[Any], live_keys: Sequence[str] | None = None) -> Iterator[Rig]:
    """The local site and a private redis-server (AOF on, as in ``make run``) in a temporary
    directory; the service processes started in it are stopped at the end."""
    tmp = Path(tempfile.mkdtemp(prefix="tradewire-bench-"))
    site = Site(pages, live_keys)
    fleet = Fleet(tmp)
    try:
        site.start()
        with private_redis(tmp / "redis", appendonly=True) as server:
            assert server.process is not None
            fleet.extra_pids["redis-server"] = server.process.pid
            r = redis.Redis.from_url(server.url, decode_responses=True)
            env = service_env(tmp, server.url, args)
            try:
                yield Rig(args, tmp, pages, site, server.url, r, fleet, env)
            finally:
                fleet.stop_all()
                r.close()
    finally:
        fleet.stop_all()
        site.stop()
        if not getattr(args, "keep_tmp", False):
            shutil.rmtree(tmp, ignore_errors=True)


def start_workers(rig: Rig) -> float:
    """Start W extract workers and one tag worker (``python -m service work-one``, restarted
    by ``Fleet.supervise``); returns the median CPU seconds one took to start (imports,
    Redis, taxonomy) until it registered: what every recycle after worker_max_jobs costs."""
    from rq.worker_registration import REDIS_WORKER_KEYS

    queues = [keys.EXTRACT_QUEUE] * rig.args.workers + [keys.TAG_QUEUE]
    for i, queue_name in enumerate(queues):
        name = f"{queue_name}-{i if queue_name == keys.EXTRACT_QUEUE else 0}"
        rig.workers.append(
            rig.fleet.spawn(name, name, ["work-one", "--queue", queue_name], rig.env, restart=True)
        )
    deadline = time.monotonic() + 90
    while int(rig.r.scard(REDIS_WORKER_KEYS)) < len(rig.workers):
        for child in rig.workers:
            if not child.alive():
                raise BenchError(f"worker {child.name} exited at start:\n{rig.fleet.tail(child)}")
        if time.monotonic() > deadline:
            raise BenchError("workers did not register with Redis within 90 s")
        time.sleep(0.1)
    time.sleep(0.5)
    return statistics.median(
        cpu_ticks(c.proc.pid) / CLK_TCK for c in rig.workers if c.proc is not None
    )


def start_poller(
    rig: Rig, label: str, feeds: list[dict[str, Any]], extra_env: dict[str, str] | None = None
) -> Child:
    """``python -m service poll`` on these feeds (not restarted when it exits)."""
    feeds_file = rig.tmp / f"feeds-{label}.yaml"
    feeds_file.write_text(yaml.safe_dump({"feeds": feeds}), encoding="utf-8")
    env = {
        **rig.env,
        "TRADEWIRE_FEEDS_FILE": str(feeds_file),
        "TRADEWIRE_HEALTH_PORT": str(free_port()),
        **(extra_env or {}),
    }
    return rig.fleet.spawn(f"poller-{label}", "poller", ["poll"], env, restart=False)


def tend(rig: Rig, poller: Child, what: str) -> None:
    """One supervisor tick: restart exited workers; fail when the poller has exited."""
    rig.fleet.supervise()
    if poller.proc is not None and poller.proc.poll() is not None:
        raise BenchError(f"{what} exited:\n{rig.fleet.tail(poller)}")


# --- reports ---------------------------------------------------------------------------------


def fmt(value: Any, spec: str = ".1f", unit: str = "", none: str = "—") -> str:
    if value is None:
        return none
    return f"{format(value, spec)}{unit}"


Goal = tuple[str, str, str, bool | None]


def goals_table(goals: Sequence[Goal]) -> list[str]:
    if not goals:
        return []
    rows = [
        (g, t or "—", v, "—" if ok is None else ("met" if ok else "**missed**"))
        for g, t, v, ok in goals
    ]
    return ["## Goals", "", *md_table(("goal", "target", "measured", "result"), rows), ""]


def machine() -> dict[str, Any]:
    """The machine, Python, redis-server and package versions, for the report's header."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gb = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_gb = int(Path("/proc/meminfo").read_text().split("\n")[0].split()[1]) / 1024 / 1024
    redis_version = ""
    with contextlib.suppress(Exception):
        redis_version = subprocess.run(
            [redis_server_binary(), "--version"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "memory_gb": round(mem_gb, 1) if mem_gb else None,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "redis_server": redis_version,
        "packages": package_versions(),
        "load_average_at_start": os.getloadavg(),
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def package_versions() -> dict[str, str | None]:
    packages: dict[str, str | None] = {}
    for name in ("trafilatura", "lxml", "htmldate", "jusText", "charset-normalizer", "feedparser", "httpx",
                 "redis", "rq", "structlog", "prometheus-client", "newspaper4k", "readability-lxml", "pyinstrument"):  # fmt: skip
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            packages[name] = None
    for name in ("newspaper4k", "readability-lxml"):
        if packages[name] is None and PEERS_DIR.is_dir():
            found = list(PEERS_DIR.glob(f"{name.replace('-', '_')}-*.dist-info"))
            packages[name] = (
                found[0].name.removesuffix(".dist-info").split("-")[-1] + " (.venv/bench-peers)"
                if found
                else None
            )
    return packages


# --- the pipeline scripts' options -----------------------------------------------------------


def pipeline_parser(description: str) -> argparse.ArgumentParser:
    """The options every pipeline measurement understands (each uses those it needs)."""
    parser = argparse.ArgumentParser(description=description)
    add = parser.add_argument
    add("--corpus", type=Path, default=DEFAULT_CORPUS)
    add("--articles", type=int, default=1000, help="articles per throughput run")
    add("--pool-articles", type=int, default=440,
        help="articles per plain-process run (5 x 88 pages: the same page mix)")  # fmt: skip
    add("--rounds", type=int, default=None,
        help="interleaved measured rounds (default 4; 2 with --fresh, whose rounds each "
        "take pages of their own). A 2-core machine's speed drifts by 10-20 %% from one "
        "round to the next: the median of more rounds is the steadier verdict")  # fmt: skip
    add("--workers", type=int, default=2, help="W: extract workers and pool size")
    add("--latency-items", type=int, default=100)
    add("--poll-interval", type=float, default=0.5, help="latency feed, seconds")
    add("--host-min-delay", type=float, default=0.0,
        help="politeness: s between downloads from one host (production: 1.0)")  # fmt: skip
    add("--host-concurrency", type=int, default=64,
        help="politeness: downloads in flight per host (production: 2)")  # fmt: skip
    add(
        "--fresh",
        action="store_true",
        help="no page twice: the warm-up takes the pages no round uses, each round its own "
        "--articles pages, the same in every variant (needs rounds x articles < pages)",
    )
    add(
        "--no-stories",
        action="store_true",
        help="the service with stories_enabled: false (story clustering off)",
    )
    add("--quick", action="store_true", help="small sizes, to check it runs")
    add("--keep-tmp", action="store_true")
    return parser


def pipeline_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> Any:
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 2 if args.fresh else 4
    if args.quick:
        args.articles = min(args.articles, 176)
        args.rounds = 1
        args.latency_items = min(args.latency_items, 20)
        args.pool_articles = min(args.pool_articles, 176)
    if min(args.articles, args.pool_articles, args.rounds, args.workers) < 1:
        parser.error("--articles, --rounds and --workers must be positive")
    return args


def load_pages(corpus: Path) -> list[Any]:
    """The extraction corpus's pages (``scoring.Page``: key, url, html, truth)."""
    from scoring import load_corpus

    pages = load_corpus(corpus, None)
    if not pages:
        raise BenchError(f"no pages in {corpus}")
    return pages


def raise_keyboard_interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def run_main(log: Callable[[str], None], body: Callable[[], Any]) -> int:
    """Run a script's body with SIGTERM as Ctrl-C; 130 when interrupted, 1 on BenchError."""
    with contextlib.suppress(ValueError):  # not the main thread
        signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
    try:
        body()
    except KeyboardInterrupt:
        log("interrupted; processes stopped")
        return 130
    except BenchError as exc:
        log(f"failed: {exc}")
        return 1
    return 0


def clear_text_caches() -> None:
    """Empty the LRU caches keyed by page text (``extraction_quality._text_caches``), so a
    page is never faster because another extractor just saw the same lines."""
    try:
        from extraction_quality import _text_caches

        for cache in _text_caches():
            cache.cache_clear()
    except ImportError:
        pass
