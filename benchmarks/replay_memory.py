"""Replay and retag memory: peak RSS must not grow with the corpus.

    .venv/bin/python benchmarks/replay_memory.py [--sizes 10000,100000] [--since-days 1]
        [--json PATH] [--keep]

For each size: a temporary directory with a private redis-server (``EmbeddedRedis``, no
AOF) and a synthetic corpus of that many stored articles, written with the real writer
(``Corpus.write_many``, batches of 1,000). Texts are invented: one article in three about
US–China trade (tariffs, export controls, soybeans ...), the rest about sports, weather or
local news, each 12–20 paragraphs drawn from fixed word lists (about 2 KB: a vocabulary
that does not grow with the corpus, so the tagger's word cache stays small). ``fetched_at`` is
spread evenly over the 100 days before a fixed date, so ``--since-days 1`` selects about
1% of the corpus.

Then, each in its own process, as an operator would run them:

- ``python -m service retag`` (every article read and tagged; relevant ones emitted),
- ``python -m service replay --since <last day> --stream tradewire:replay:bench``.

Peak RSS is the child's ``ru_maxrss`` from ``os.wait4`` (VmHWM at exit). A first row runs
both commands over an empty corpus: the interpreter, imports and taxonomy, the part of RSS
that has nothing to do with the corpus; "above empty" is peak RSS minus that baseline.
The ratio RSS(largest)/RSS(smallest) should be close to 1 (flat), as should be the ratio
of the parts above the baseline. Time per article is wall time over corpus articles (for
replay, most of them are only looked at: their metadata is read, their text is not).

Runs in a few minutes on 2 cores with the defaults; ``--sizes 2000,20000`` in under one.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from service.embedded_redis import EmbeddedRedis  # noqa: E402
from workers.corpus import Corpus  # noqa: E402

END = datetime(2026, 11, 1, tzinfo=UTC)
SPREAD_DAYS = 100
BATCH = 1_000

TRADE = (
    "Washington and Beijing extended the tariff truce on Chinese imports; the US trade "
    "representative said talks on export controls, rare earths and soybean purchases go on; "
    "Commerce tightened chip export licences for Huawei; China's commerce ministry answered "
    "with duties on American farm goods; negotiators met in Geneva"
).split("; ")
OTHER = (
    "The home side won the derby after extra time in front of a full stadium; heavy rain is "
    "expected over the weekend with flood warnings along the river; the city council approved "
    "a new cycle lane and a library; the festival returns in June with forty bands; the "
    "museum reopened its east wing after two years of repairs; the marathon drew record "
    "entries this spring"
).split("; ")
FILLER = (
    "officials analysts residents according statement week month growth plans market local "
    "report figures said added early later talks people city season team record new"
).split()


def _text(rng: random.Random, i: int) -> tuple[str, str]:
    topic = TRADE if i % 3 == 0 else OTHER
    # No per-article token (a number) in the words: the tagger caches every distinct word
    # (up to 200,000, shared with the tag workers), which would measure that cache, not replay.
    title = rng.choice(topic).split(" ", 6)[-1].capitalize()
    paragraphs = []
    for _ in range(rng.randint(12, 20)):
        words = " ".join(rng.choices(FILLER, k=rng.randint(6, 14)))
        paragraphs.append(f"{rng.choice(topic).capitalize()}, {words}.")
    return title, title + "\n\n" + "\n\n".join(paragraphs)


def _meta(i: int, n: int, title: str) -> dict[str, Any]:
    fetched = (END - timedelta(days=SPREAD_DAYS * (n - i) / n)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "article_id": f"{i:016x}", "url": f"https://news.example/{i}",
        "canonical_url": f"https://news.example/{i}", "feed_url": "https://news.example/rss",
        "feed_title": "News", "title": title, "authors": ["A. Writer"], "published_at": fetched,
        "fetched_at": fetched, "discovered_at": fetched, "language": "en", "site_name": "News",
        "duplicate_of": None,
    }  # fmt: skip


def build_corpus(directory: Path, client: redis.Redis, n: int) -> float:
    """``n`` invented articles written as the extract workers write them; seconds taken."""
    started = time.monotonic()
    rng = random.Random(n)
    corpus = Corpus(directory, client)
    for first in range(0, n, BATCH):
        batch = []
        for i in range(first, min(first + BATCH, n)):
            title, text = _text(rng, i)
            batch.append((f"{i:016x}", text, _meta(i, n, title)))
        corpus.write_many(batch)
    return time.monotonic() - started


def run_command(args: list[str], env: dict[str, str], log: Path) -> dict[str, Any]:
    """One ``tradewire`` command in a child process: its result, wall time and peak RSS."""
    started = time.monotonic()
    with log.open("wb") as err, tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "service", *args], env=env, cwd=ROOT, stdout=out, stderr=err
        )
        # wait4 gives this child's own rusage; RUSAGE_CHILDREN would be a maximum over all.
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - started
        out.seek(0)
        stdout = out.read().decode()
    if proc.returncode != 0:
        raise SystemExit(f"{args[0]} exited {proc.returncode}: {log.read_text()[-2000:]}")
    progress = sum(1 for line in log.read_text().splitlines() if ".progress" in line)
    return {
        "result": json.loads(stdout),
        "wall_s": wall,
        "peak_rss_mb": usage.ru_maxrss / 1024,  # kB on Linux
        "progress_lines": progress,
    }


@contextlib.contextmanager
def private_redis(directory: Path) -> Iterator[str]:
    with EmbeddedRedis(directory, appendonly=False) as server:
        yield server.url


def measure(size: int, since: datetime, work: Path) -> list[dict[str, Any]]:
    """Build a corpus of ``size`` articles; run retag and replay over it."""
    base = work / f"size-{size}"
    corpus_dir = base / "corpus"
    with private_redis(base / "redis") as url:
        client = redis.Redis.from_url(url, decode_responses=True)
        built = build_corpus(corpus_dir, client, size) if size else 0.0
        client.close()
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWIRE_")}
        env |= {
            "TRADEWIRE_REDIS_URL": url,
            "TRADEWIRE_CORPUS_DIR": str(corpus_dir),
            "TRADEWIRE_TAXONOMY_FILE": str(ROOT / "config" / "taxonomy.yaml"),
            "TRADEWIRE_LOG_FORMAT": "json",
        }
        commands = {
            "retag": ["retag"],
            "replay": [
                "replay",
                "--since",
                since.isoformat(),
                "--stream",
                "tradewire:replay:bench",
            ],
        }
        rows = []
        for name, args in commands.items():
            run = run_command(args, env, base / f"{name}.log")
            rows.append({"size": size, "command": name, "build_s": built, **run})
    return rows


def render(rows: list[dict[str, Any]]) -> str:
    baseline = {r["command"]: r["peak_rss_mb"] for r in rows if r["size"] == 0}
    lines = [
        "| corpus articles | command | selected | emitted | wall s | ms/article | peak RSS MB "
        "| above empty MB | progress lines |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        res = r["result"]
        per = f"{1000 * r['wall_s'] / r['size']:.3f}" if r["size"] else "-"
        above = r["peak_rss_mb"] - baseline.get(r["command"], 0.0)
        lines.append(
            f"| {r['size']:,} | {r['command']} | {res['articles']:,} | "
            f"{res['created'] + res['updated']:,} | {r['wall_s']:.1f} | {per} | "
            f"{r['peak_rss_mb']:.1f} | {above:.1f} | {r['progress_lines']} |"
        )
    sizes = sorted({r["size"] for r in rows if r["size"]})
    if len(sizes) >= 2:
        small, big = sizes[0], sizes[-1]
        lines.append("")
        for command in ("retag", "replay"):
            rss = {r["size"]: r["peak_rss_mb"] for r in rows if r["command"] == command}
            above = {s: rss[s] - baseline.get(command, 0.0) for s in (small, big)}
            lines.append(
                f"- {command}: RSS({big:,})/RSS({small:,}) = {rss[big] / rss[small]:.3f}; "
                f"above empty: {above[big]:.1f} MB vs {above[small]:.1f} MB"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="corpus sizes, comma separated")
    parser.add_argument("--since-days", type=float, default=1.0, help="replay --since window")
    parser.add_argument("--json", type=Path, default=None, help="write the rows here too")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    since = END - timedelta(days=args.since_days)
    work = Path(tempfile.mkdtemp(prefix="tradewire-replay-memory-"))
    rows: list[dict[str, Any]] = []
    try:
        for size in [0, *sizes]:
            rows.extend(measure(size, since, work))
            done = [r for r in rows if r["size"] == size]
            print(f"# {size:,} articles: built in {done[0]['build_s']:.1f} s; "
                  + ", ".join(f"{r['command']} {r['wall_s']:.1f} s" for r in done),
                  file=sys.stderr, flush=True)  # fmt: skip
    finally:
        if args.keep:
            print(f"# kept {work}", file=sys.stderr)
        else:
            import shutil

            shutil.rmtree(work, ignore_errors=True)
    print(render(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
