"""What JSON jobs cost against RQ's default pickle: encode and decode time and the stored size
(zlib-compressed, as RQ keeps a job's data) of real tag-job payloads, in one run.

    .venv/bin/python benchmarks/job_serializers.py [--batch 16] [--repeat 200]

Payloads are batches of ``Article.to_dict()`` built from the real articles of
../shared/corpus/tagging/real_dev.jsonl (English and Chinese), the largest argument our
jobs carry (a tag job holds each article's text). Pickle is measured only on data this
script made itself.
"""

from __future__ import annotations

import argparse
import functools
import json
import pickle
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rq.serializers import JSONSerializer as RQJSONSerializer

from core.models import Article
from core.queues import JSONSerializer

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "tagging" / "real_dev.jsonl"


def payloads(batch: int) -> list[tuple[str, None, list[Any], dict[str, Any]]]:
    rows = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines()]
    articles = [
        Article(article_id=f"{i:016x}", url=f"https://example.com/{row['id']}",
                canonical_url=f"https://example.com/{row['id']}", feed_url="https://example.com/rss",
                feed_title="Example", title=row["title"], text=row["text"], authors=("A. Writer",),
                published_at="2026-11-30T00:00:00Z", fetched_at="2026-11-30T00:00:01Z",
                discovered_at="2026-11-30T00:00:00Z", language=None, site_name="Example",
                corpus_file=f"{i:06d}.txt").to_dict()
        for i, row in enumerate(rows)
    ]  # fmt: skip
    return [
        ("workers.jobs.tag_job", None, [articles[i : i + batch]], {})
        for i in range(0, len(articles) - batch + 1, batch)
    ]


Codec = tuple[Callable[[Any], bytes], Callable[[bytes], Any]]


def codec(name: str, serializer: Any) -> Codec:
    if name.startswith("pickle"):
        # Loads only the bytes this script pickled a moment before.
        return functools.partial(pickle.dumps, protocol=5), pickle.loads
    return serializer.dumps, serializer.loads


def encode(dumps: Callable[[Any], bytes], job: Any) -> bytes:
    return zlib.compress(dumps(job))


def decode(loads: Callable[[bytes], Any], stored: bytes) -> Any:
    return loads(zlib.decompress(stored))


def per_call_us(fn: Callable[[], Any], repeat: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat * 1e6


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args(argv)
    jobs = payloads(args.batch)
    serializers: dict[str, Any] = {
        "pickle (RQ default)": pickle.HIGHEST_PROTOCOL,
        "rq JSONSerializer": RQJSONSerializer,
        "core.queues.JSONSerializer": JSONSerializer,
    }
    rows: list[tuple[str, float, float, float]] = []
    for name, serializer in serializers.items():
        dumps, loads = codec(name, serializer)
        stored = [zlib.compress(dumps(job)) for job in jobs]
        enc = [per_call_us(functools.partial(encode, dumps, job), args.repeat) for job in jobs]
        dec = [per_call_us(functools.partial(decode, loads, z), args.repeat) for z in stored]
        n = len(jobs)
        rows.append((name, sum(enc) / n, sum(dec) / n, sum(len(z) for z in stored) / n))
    base = rows[0]
    print(f"{len(jobs)} tag jobs of {args.batch} real articles each, {args.repeat} calls each")
    print("| serializer | encode+zlib µs/job | zlib+decode µs/job | stored bytes/job "
          "| encode ratio | decode ratio | size ratio |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, enc_us, dec_us, size in rows:
        print(f"| {name} | {enc_us:.0f} | {dec_us:.0f} | {size:.0f} | {enc_us / base[1]:.2f} "
              f"| {dec_us / base[2]:.2f} | {size / base[3]:.2f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
