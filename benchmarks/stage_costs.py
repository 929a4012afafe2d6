"""Stage costs: median microseconds per call of each step of an article's way, in this process.

    .venv/bin/python benchmarks/stage_costs.py [--articles 1000] [--quick]

The local site and a private redis-server run; the service processes do not (in
``pipeline_bench.py`` they have been stopped). The steps are the product's own functions:
feed parsing, canonicalisation, extraction, tagging, emitting (``Emitter.emit``, on events
the tag job's path ``workers.announce.Announcer`` built) and that whole path per article;
extras for the other steps of a job: storage, RQ (``core.queues``), host gate,
near-duplicates, download.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import harness
import redis
from harness import (
    CLK_TCK,
    MIN_WORDS,
    TAXONOMY_FILE,
    Rig,
    article_path,
    cpu_ticks,
    feed_paths,
    fmt,
    md_table,
    median,
    pct,
    time_calls,
)

from core import keys, queues
from core.errors import RefusedArticleError
from core.fetch import Fetcher
from core.models import Article, ArticleJob
from core.settings import Settings
from core.urls import article_id_for, canonicalize_url
from service.feeds import parse_feed
from workers.announce import Announcer
from workers.corpus import Corpus
from workers.duplicates import DUPLICATE_SHARED, DuplicateIndex, sketch
from workers.extract import Extraction
from workers.jobs import PAGE_TYPES, tag_job
from workers.pipeline import build_article, page_to_extraction, tag_document
from workers.politeness import HostGate
from workers.stream import Emitter
from workers.tagging import load_taxonomy

log = harness.logger("stage_costs")
Row = dict[str, Any]


def row(stage: str, unit: str, us: list[float], note: str = "") -> Row:
    return {
        "stage": stage,
        "unit": unit,
        "n": len(us),
        "median_us": median(us),
        "p90_us": pct(us, 0.9),
        "note": note,
    }


def parse_rows(rig: Rig) -> list[Row]:
    base, pk = rig.site.base, rig.page_keys
    feed_body = rig.site.feed_bytes(feed_paths("stage", len(pk), len(pk))[0]) or b""
    headers = {"content-type": "application/rss+xml"}
    feed_url = base + "/feeds/stage/0-88.xml"
    us = time_calls([lambda: parse_feed(feed_body, headers, feed_url, 500)] * 30)
    links = [base + article_path("stage", j, pk) for j in range(min(rig.args.articles, 1000))]
    links += [u + "?utm_source=rss&utm_medium=feed&id=7#top" for u in links[:200]]
    return [
        row("feed parse (service.feeds.parse_feed)", f"per feed of {len(pk)} items", us,
            f"{median(us) / len(pk):.0f} µs per item"),  # type: ignore[operator]
        row("canonicalisation (core.urls.canonicalize_url)", "per URL",
            time_calls([lambda u=u: canonicalize_url(u) for u in links])),
    ]  # fmt: skip


def extraction_row(rig: Rig) -> tuple[Row, list[tuple[str, Extraction]]]:
    """Every page once (text caches cleared before each), after a warm-up pass."""
    base = rig.site.base
    for page in rig.pages:  # warm-up pass
        with contextlib.suppress(RefusedArticleError):
            page_to_extraction(page.html, "text/html", base + "/a/s/c0/x.html", MIN_WORDS, "")
    gc.collect()
    extractions, us = [], []
    for j, page in enumerate(rig.pages):
        harness.clear_text_caches()
        url = base + article_path("stage", j, rig.page_keys)
        start = time.perf_counter()
        try:
            extraction = page_to_extraction(page.html, "text/html", url, MIN_WORDS, "")
        except RefusedArticleError:
            extraction = None
        us.append((time.perf_counter() - start) * 1e6)
        if extraction is not None:
            extractions.append((url, extraction))
    refused = len(rig.pages) - len(extractions)
    note = f"{refused} of {len(rig.pages)} pages refused"
    return row(
        "extraction (workers.pipeline.page_to_extraction)", "per page", us, note
    ), extractions


def build_articles(rig: Rig, extractions: list[tuple[str, Extraction]]) -> list[Article]:
    now = datetime.now(UTC)
    articles = []
    for url, extraction in extractions:
        canonical = canonicalize_url(url)
        job = ArticleJob(
            article_id_for(canonical), url, canonical, rig.site.base + "/feeds/x.xml",
            "bench", "", None, "2025-01-01T00:00:00Z",
        )  # fmt: skip
        articles.append(build_article(job, extraction, now))
    return articles


def announce_rows(
    text_redis: redis.Redis, settings: Settings, articles: list[Article]
) -> tuple[list[Row], list[dict[str, Any]]]:
    """Tagging alone, then the tag job's whole path per article (``Announcer.announce``:
    tag, build the event, emit it when relevant, record the verdict), into scratch streams;
    the events it built (every article's, from its articles stream) come back for the emit
    row."""
    taxonomy = load_taxonomy(TAXONOMY_FILE)
    tagging = time_calls([lambda a=a: tag_document(taxonomy, a.text, a.title) for a in articles])
    streams = ("bench:stage-announce", "bench:stage-articles")
    announcer = Announcer(
        taxonomy, Emitter(text_redis, settings, stream=streams[0]), verdicts=text_redis,
        verdict_ttl_s=settings.emitted_ttl_s,
        articles_emitter=Emitter(text_redis, settings, stream=streams[1]),
    )  # fmt: skip
    now = datetime.now(UTC)
    us = time_calls([lambda a=a: announcer.announce(a, now) for a in articles], warm=False)
    events = [json.loads(f["data"]) for _, f in text_redis.xrange(streams[1])]
    relevant = int(text_redis.xlen(streams[0]))
    text_redis.delete(
        *streams,
        *(keys.emitted(s, a.article_id) for s in streams for a in articles),
        *(keys.verdict(a.article_id) for a in articles),
    )
    return [
        row("tagging (workers.pipeline.tag_document)", "per article", tagging),
        row("tag → event → emit → verdict (workers.announce.Announcer.announce)", "per article",
            us, f"the tag job's path, word cache warm; {relevant} of {len(articles)} relevant: emitted"),
    ], events  # fmt: skip


def emit_row(text_redis: redis.Redis, settings: Settings, events: list[dict[str, Any]]) -> Row:
    """300 real events, each under a new article id, onto a scratch stream."""
    stream = "bench:stage-emit"
    emitter = Emitter(text_redis, settings, stream=stream)
    batch = [{**events[i % len(events)], "article_id": f"{i:016x}"} for i in range(300)]
    us = time_calls([lambda e=e: emitter.emit(e) for e in batch], warm=False)
    text_redis.delete(stream, *(keys.emitted(stream, e["article_id"]) for e in batch))
    return row("emit (workers.stream.Emitter.emit)", "per event", us,
               "Lua: GET + XADD + XTRIM + SET; real events")  # fmt: skip


def storage_rows(
    rig: Rig, text_redis: redis.Redis, rq_redis: redis.Redis, settings: Settings,
    articles: list[Article],
) -> list[Row]:  # fmt: skip
    corpus = Corpus(rig.tmp / "stage-corpus", text_redis)
    size = settings.job_batch_size
    batches = [articles[i : i + size] for i in range(0, len(articles), size)]
    out = [
        row("extra: corpus write of one job's articles (workers.corpus.Corpus.write_many)",
            f"per batch of up to {size}",
            time_calls([lambda b=b: corpus.write_many([(a.article_id, a.text, {"title": a.title}) for a in b]) for b in batches], warm=False),
            "2 files per article, 1 syncfs, 2 directory fsyncs, 1 pipelined Lua round trip"),
        row("extra: enqueue one RQ job (core.queues.enqueue_tags)", f"per job of up to {size}",
            time_calls([lambda b=b: queues.enqueue_tags(rq_redis, settings, tag_job, [a.to_dict() for a in b])
                        for b in batches * 3], warm=False)),
    ]  # fmt: skip
    queues.queue(rq_redis, keys.TAG_QUEUE).empty()
    text_redis.delete(keys.CORPUS_SEQ, *(keys.corpus_number(a.article_id) for a in articles))
    return out


def redis_rows(text_redis: redis.Redis, articles: list[Article]) -> list[Row]:
    gate = HostGate(text_redis, 64, 0.0, 20.0, lease_s=35.0)

    def gate_slot(i: int) -> None:
        gate.try_acquire("bench.example", f"t{i}")
        gate.release("bench.example", f"t{i}")

    dup_index = DuplicateIndex(text_redis, DUPLICATE_SHARED, 3600)
    return [
        row("extra: host gate slot (workers.politeness.HostGate acquire + release)", "per download",
            time_calls([lambda i=i: gate_slot(i) for i in range(300)]), "2 Redis round trips"),
        row("extra: near-duplicate check (workers.duplicates.sketch + DuplicateIndex.originals_of)", "per article",
            time_calls([lambda i=i, a=a: dup_index.originals_of([(f"{i:015x}d", sketch(a.text))]) for i, a in enumerate(articles)], warm=False),
            "sketch in Python + 1 Lua call"),
    ]  # fmt: skip


def _redis_calls(conn: redis.Redis) -> int:
    return sum(int(v["calls"]) for v in conn.info("commandstats").values())


def rq_noop_row(conn: redis.Redis, settings: Settings, redis_pid: int | None, n: int = 400) -> Row:
    """RQ's own cost per job: enqueue n no-op jobs (``core.queues.job_options``), then one
    worker as production builds it (``core.queues.work``) runs them in burst mode here."""
    queue = queues.queue(conn, "bench-noop")
    payload = {"article_id": "0" * 16, "text": "x" * 5000}  # an article-sized argument

    def enqueue(job_id: str) -> None:
        queue.enqueue_call("builtins.len", args=(payload,), **queues.job_options(settings, job_id))

    def burst() -> None:
        queues.work(conn, "bench-noop", functions=(len,), name=None, burst=True, max_jobs=None)

    for i in range(20):  # warm-up
        enqueue(f"noop-w{i}")
    burst()
    enqueue_us = time_calls([lambda i=i: enqueue(f"noop-{i}") for i in range(n)], warm=False)
    redis_ticks = cpu_ticks(redis_pid) if redis_pid else 0
    calls = _redis_calls(conn)
    cpu, start = time.process_time(), time.perf_counter()
    burst()
    calls = _redis_calls(conn) - calls - 1
    wall_us = (time.perf_counter() - start) * 1e6 / n
    cpu_us = (time.process_time() - cpu) * 1e6 / n
    redis_us = ((cpu_ticks(redis_pid) - redis_ticks) / CLK_TCK * 1e6 / n) if redis_pid else 0.0
    queue.empty()
    note = (
        f"enqueue median {median(enqueue_us):,.0f} µs (shown); worker side, mean of {n}: "
        f"{wall_us:,.0f} µs wall, {cpu_us:,.0f} µs CPU in the worker, {redis_us:,.0f} µs CPU in redis-server, "
        f"{calls / n:.0f} Redis commands"
    )
    return row("extra: RQ job lifecycle with a no-op function", "per job", enqueue_us, note)


def download_row(rig: Rig, settings: Settings) -> Row:
    pk = rig.page_keys

    async def fetch_all() -> list[float]:
        fetcher = Fetcher(settings)
        out = []
        try:
            for j in range(len(pk) + 10):
                url = rig.site.base + article_path("stage", j % len(pk), pk)
                start = time.perf_counter()
                await fetcher.get(url, max_bytes=settings.max_page_bytes, accept_types=PAGE_TYPES)
                out.append((time.perf_counter() - start) * 1e6)
        finally:
            await fetcher.aclose()
        return out[10:]

    return row("extra: page download (core.fetch.Fetcher.get, local site)", "per page",
               asyncio.run(fetch_all()), "keep-alive, ~180 KB pages")  # fmt: skip


def stage_costs(rig: Rig) -> list[Row]:
    settings = Settings(
        redis_url=rig.redis_url, allow_private_hosts=True, taxonomy_file=TAXONOMY_FILE
    )
    rows = parse_rows(rig)
    extraction, extractions = extraction_row(rig)
    rows.append(extraction)
    articles = build_articles(rig, extractions)
    text_redis = redis.Redis.from_url(rig.redis_url, decode_responses=True)
    rq_redis = redis.Redis.from_url(rig.redis_url)
    try:
        announced, events = announce_rows(text_redis, settings, articles)
        rows += [announced[0], emit_row(text_redis, settings, events), announced[1]]
        rows += storage_rows(rig, text_redis, rq_redis, settings, articles)
        rows += redis_rows(text_redis, articles)
        rows.append(rq_noop_row(rq_redis, settings, rig.fleet.extra_pids.get("redis-server")))
        rows.append(download_row(rig, settings))
    finally:
        text_redis.close()
        rq_redis.close()
    return rows


def render(data: dict[str, Any]) -> tuple[list[str], list[harness.Goal]]:
    st = data.get("stages")
    if not st:
        return [], []
    rows = [
        (r["stage"], r["unit"], fmt(r["median_us"], ",.0f"), fmt(r["p90_us"], ",.0f"), r["n"], r["note"])
        for r in st
    ]  # fmt: skip
    header = ("stage", "unit", "median µs", "p90 µs", "n", "note")
    out = ["## 5. Per-stage costs (this process alone, service processes stopped)", ""]
    return [*out, *md_table(header, rows), ""], []


def main(argv: Sequence[str] | None = None) -> int:
    args = harness.pipeline_args(harness.pipeline_parser(__doc__.split("\n")[0]), argv)

    def body() -> None:
        pages = harness.load_pages(args.corpus)
        with harness.rig(args, pages) as rig:
            log("per-stage costs")
            data = {"stages": stage_costs(rig)}
        print("\n".join(render(data)[0]))

    return harness.run_main(log, body)


if __name__ == "__main__":
    raise SystemExit(main())
