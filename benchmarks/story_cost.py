"""What story clustering costs per article as the store grows: in memory, in Redis, and in
Redis as an earlier commit stored it (before/after in one run, on one loaded machine).

    PYTHONPATH=. .venv/bin/python benchmarks/story_cost.py [--stored 100000] [--against REV]

``--stored`` made-up articles (Zipf-distributed words of the dev vocabulary, a few
anchors each) fill each store over seven days; then 300 real dev articles
(``../shared/corpus/clustering/dev.jsonl``, read at run time) are each placed with
``workers.stories.assign``, dated inside the hour after the made-up week so that every
stored article is in their window (the dev set's own dates span months: most stored
candidates would fall outside the window and cost the store nothing). Printed per store:
median and p99 wall ms per article, Redis commands (server-side, scripts' calls included)
and round trips per article, Redis memory per stored article, and whether the store gave
the in-memory store's story ids. Each Redis store gets its own private redis-server.
``--against REV`` times ``workers/story_redis.py`` of that git revision, with the limits of
its ``config/stories.yaml`` (candidates per article), beside this one (the rest of the code
is this tree's); the stores take turns article by article, so a machine that others load
loads them alike.
"""

from __future__ import annotations

import argparse
import inspect
import statistics
import subprocess
import sys
import time
import types
from collections import Counter
from typing import Any

import redis
import yaml
from clustering_quality import DEV, ROOT, _cpu_s, _private_redis, read_jsonl, synthetic

from workers.stories import Model, RawFeatures, assign, choose, profile, raw_features
from workers.story_store import MemoryStories, day_of, load_model

POSTING_LIMIT = 25  # the service's default story_posting_limit; --posting-limit to try others


class RoundTrips:
    """Counts what a redis-py connection sends: one call per command or pipeline."""

    count = 0

    def __init__(self) -> None:
        self.original = redis.connection.AbstractConnection.send_packed_command

        def counted(conn: Any, command: Any, check_health: bool = True) -> None:
            RoundTrips.count += 1
            self.original(conn, command, check_health)

        redis.connection.AbstractConnection.send_packed_command = counted  # type: ignore[method-assign]


def store_module(rev: str | None) -> Any:
    """``workers.story_redis`` as it is, or as it was at ``rev``."""
    if rev is None:
        import workers.story_redis

        return workers.story_redis
    source = subprocess.run(["git", "show", f"{rev}:workers/story_redis.py"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    module = types.ModuleType(f"story_redis_{rev}")
    sys.modules[module.__name__] = module  # its dataclasses look their module up
    exec(compile(source, f"{rev}:workers/story_redis.py", "exec"), module.__dict__)
    if len(inspect.signature(module.RedisStories.candidates_with_profiles).parameters) == 4:

        class Unwindowed(module.RedisStories):  # type: ignore[name-defined,misc]
            """A store from before the window argument: ``decide`` filters instead."""

            def candidates_with_profiles(
                self, index_keys: Any, me: str, limit: int, window: Any = None
            ) -> Any:
                return super().candidates_with_profiles(index_keys, me, limit)

        module.RedisStories = Unwindowed
    if not hasattr(module.RedisStories, "lookup"):  # before records were parsed on demand
        module.RedisStories.lookup = module.RedisStories.candidates_with_profiles
    return module


def revision_model(rev: str) -> Model:
    """The model ``config/stories.yaml`` held at ``rev``: its limits (candidates per
    article) are part of what a lookup costs."""
    text = subprocess.run(["git", "show", f"{rev}:config/stories.yaml"], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout  # fmt: skip
    return Model.from_mapping(yaml.safe_load(text))


def prepared(
    stored: int, model: Model, dev_dates: bool = False
) -> tuple[list[tuple[str, float, RawFeatures]], list[tuple[Any, RawFeatures, str, list[str]]]]:
    """The measured dev articles and the made-up ones, profiled once for every store."""
    rows = sorted(read_jsonl(DEV), key=lambda r: r["published_at"])[:300]
    raws = [(r["id"], raw_features(r["title"], r["text"])) for r in rows]
    vocabulary = [t for t, _ in sum((Counter(r.term_counts) for _, r in raws), Counter())
                  .most_common()]  # fmt: skip
    start = day_of(rows[0]["published_at"])
    made_up = synthetic(stored, vocabulary, start)
    df: Counter[str] = Counter()
    filled = []
    for count, (article_id, day, raw) in enumerate(made_up, start=1):
        me = profile(article_id, day, raw, df, count, model)
        keys = me.index_keys(model.index_terms, model.index_anchors)
        filled.append((me, raw, f"s{article_id}", keys))
        if count % 1000 == 1:
            df.update(raw.df_terms())
    dates = [day_of(r["published_at"]) if dev_dates else start + i / 24 / len(raws)
             for i, r in enumerate(rows)]  # fmt: skip
    measured = [(a, day, raw) for (a, raw), day in zip(raws, dates, strict=True)]
    return measured, filled


def fill_redis(store: Any, client: redis.Redis, filled: list[Any], module: Any) -> None:
    """Pipelined in batches: the fill is not what is measured."""
    pipe = client.pipeline(transaction=False)
    batch = module.RedisStories(pipe, posting_limit=POSTING_LIMIT, window_s=store.window_s)
    for i, item in enumerate(filled, start=1):
        add_filled(batch, *item)
        if i % 500 == 0:
            pipe.execute()
    pipe.execute()


def legacy(store: Any) -> bool:
    """A store of a revision whose ``add`` took the raw features (and counted every term)."""
    return "raw" in inspect.signature(store.add).parameters


def add_filled(store: Any, me: Any, raw: RawFeatures, story_id: str, keys: list[str]) -> None:
    """A made-up article stored as it stood (the fill is not measured; what the store then
    holds is)."""
    if legacy(store):
        store.add(me, raw, story_id, keys)
    else:
        store.add(me, story_id, keys, raw.sorted_df_terms())


class Variant:
    """One store under measurement, and what it cost so far."""

    def __init__(self, name: str, store: Any, client: redis.Redis | None, server_pid: int = 0,
                 per_article: float = 0.0, model: Model | None = None) -> None:  # fmt: skip
        self.name, self.store, self.client, self.server_pid = name, store, client, server_pid
        self.per_article = per_article
        self.model = model  # a revision's own limits (``--against``), else the run's
        self.times: list[float] = []
        self.client_s = self.server_s = 0.0
        self.trips = 0
        self.stories: dict[str, str] = {}
        self.commands_before = _commands(client)

    def place(self, model: Model, article_id: str, day: float, raw: RawFeatures) -> None:
        server_before = _cpu_s(self.server_pid) if self.server_pid else 0.0
        trips_before = RoundTrips.count
        cpu_before = time.thread_time()
        started = time.perf_counter()
        self.stories[article_id] = self._assign(model, article_id, day, raw)
        self.times.append((time.perf_counter() - started) * 1000)
        self.client_s += time.thread_time() - cpu_before
        self.trips += RoundTrips.count - trips_before
        if self.server_pid:
            self.server_s += _cpu_s(self.server_pid) - server_before

    def _assign(self, model: Model, article_id: str, day: float, raw: RawFeatures) -> str:
        """``assign``; for an earlier revision's store, as that revision called it."""
        if not legacy(self.store):
            return assign(self.store, model, article_id, day, raw).story_id
        frequencies = self.store.document_frequencies(raw.sorted_df_terms(), day)
        decision, me, keys = choose(self.store, model, article_id, day, raw, "", frequencies)
        self.store.add(me, raw, decision.story_id, keys)
        return decision.story_id

    def row(self) -> dict[str, Any]:
        n = len(self.times)
        ordered = sorted(self.times)
        return {
            "client_cpu": self.client_s * 1000 / n, "server_cpu": self.server_s * 1000 / n,
            "median": statistics.median(self.times), "p99": ordered[int(n * 0.99) - 1],
            "commands": (_commands(self.client) - self.commands_before) / n if self.client
            else 0.0,
            "trips": self.trips / n, "stories": self.stories,
        }  # fmt: skip


def measure(variants: list[Variant], model: Model, measured: list[Any]) -> None:
    """Article by article, each store in turn (the order rotating): whatever else loads the
    machine loads every store alike, so their figures compare even when it is busy."""
    for i, (article_id, day, raw) in enumerate(measured):
        for variant in variants[i % len(variants) :] + variants[: i % len(variants)]:
            variant.place(variant.model or model, article_id, day, raw)


def _commands(client: redis.Redis | None) -> int:
    if client is None:
        return 0
    stats = client.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")


def run(stored: int, against: str | None, dev_dates: bool) -> None:
    model = load_model()
    RoundTrips()
    measured, filled = prepared(stored, model, dev_dates)
    memory = MemoryStories(POSTING_LIMIT)
    for item in filled:
        add_filled(memory, *item)
    variants = [Variant("in memory", memory, None)]
    modules = [(f"redis ({against})", store_module(against))] if against else []
    modules.append(("redis (this tree)", store_module(None)))
    models = [revision_model(against), None] if against else [None]
    servers = []
    try:
        for (name, module), own_model in zip(modules, models, strict=True):
            server, client = _private_redis()
            servers.append(server)
            store = module.RedisStories(client, posting_limit=POSTING_LIMIT,
                                        window_s=int(model.window_days * 86400) + 86400)  # fmt: skip
            before = int(client.info("memory")["used_memory"])
            fill_redis(store, client, filled, module)
            per_article = (int(client.info("memory")["used_memory"]) - before) / stored
            variants.append(Variant(name, store, client, server.pid, per_article, own_model))
        measure(variants, model, measured)
        rows = [(v.name, v.row(), v.per_article) for v in variants]
        floor = round_trip_floor(variants[-1].client)
    finally:
        for server in servers:
            server.terminate()
            server.wait()
    reference = rows[0][1]["stories"]
    where = ("the week before the first (--dev-dates: the others' own dates, months later)"
             if dev_dates else "their window")  # fmt: skip
    print(f"story clustering cost per article: {len(measured)} real dev articles placed with "
          f"{stored:,} made-up articles stored in {where} (goal: median <= 2 ms)")  # fmt: skip
    print("(wall: what a job waits on a loaded machine; CPU: client thread + redis-server; "
          "the stores take turns article by article)")  # fmt: skip
    print(f"{'store':<20}{'stored':>9}{'median ms':>11}{'p99 ms':>8}{'CPU ms':>13}"
          f"{'cmds/art':>10}{'trips/art':>10}{'KiB/art':>9}  same stories")  # fmt: skip
    for name, row, per_article in rows:
        same = "yes" if row["stories"] == reference else "NO"
        cpu = f"{row['client_cpu']:.2f}+{row['server_cpu']:.2f}"
        print(f"{name:<20}{stored:>9,}{row['median']:>11.2f}{row['p99']:>8.2f}{cpu:>13}"
              f"{row['commands']:>10.1f}{row['trips']:>10.2f}{per_article / 1024:>9.2f}  {same}")  # fmt: skip
    print(f"a PING round trip on this machine: {floor[0]:.3f} ms wall, {floor[1]:.3f} ms client "
          f"CPU (redis-py); x {rows[-1][1]['trips']:.2f} trips = "
          f"{floor[0] * rows[-1][1]['trips']:.2f} ms of each article's median")  # fmt: skip


def round_trip_floor(client: redis.Redis | None, n: int = 2000) -> tuple[float, float]:
    """What one trivial command (PING) costs here, wall and client CPU in ms: the part of
    each round trip no store can save, and the reason absolute figures differ between
    machines (a trip cost 0.11 ms on one run of this machine, 0.16 ms on another)."""
    if client is None:
        return 0.0, 0.0
    client.ping()
    started, cpu = time.perf_counter(), time.thread_time()
    for _ in range(n):
        client.ping()
    return (time.perf_counter() - started) * 1000 / n, (time.thread_time() - cpu) * 1000 / n


def dev_set_equivalence() -> None:
    """The whole dev set, in time order, through an empty in-memory and an empty Redis
    store: the story ids must be the same."""
    from workers.story_redis import RedisStories

    model = load_model()
    rows = sorted(read_jsonl(DEV), key=lambda r: r["published_at"])
    server, client = _private_redis()
    try:
        stores = (
            MemoryStories(POSTING_LIMIT),
            RedisStories(
                client, posting_limit=POSTING_LIMIT, window_s=int(model.window_days * 86400) + 86400
            ),
        )
        results = [{r["id"]: assign(s, model, r["id"], day_of(r["published_at"]),
                                    raw_features(r["title"], r["text"]), r["source"]).story_id
                    for r in rows} for s in stores]  # fmt: skip
    finally:
        server.terminate()
        server.wait()
    same = results[0] == results[1]
    print(
        f"dev set ({len(rows)} articles): in-memory and Redis story ids identical: "
        f"{'yes' if same else 'NO'} ({len(set(results[1].values()))} stories)"
    )


def main() -> None:
    global POSTING_LIMIT
    parser = argparse.ArgumentParser()
    parser.add_argument("--stored", type=int, default=100_000)
    parser.add_argument("--against", help="a git revision whose Redis store to time too")
    parser.add_argument(
        "--dev-dates",
        action="store_true",
        help="the dev articles keep their own dates (how clustering_quality.py "
        "measured before): most stored articles are then outside their window",
    )
    parser.add_argument("--posting-limit", type=int, default=POSTING_LIMIT)
    args = parser.parse_args()
    POSTING_LIMIT = args.posting_limit
    dev_set_equivalence()
    run(args.stored, args.against, args.dev_dates)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
