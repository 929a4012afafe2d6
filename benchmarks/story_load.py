"""Story quality on a loaded store: the dev set with made-up articles around it, per limit.

    PYTHONPATH=. .venv/bin/python benchmarks/story_load.py [--per-day 1000] [15/25 25/25/8/8 ...]

The real dev set (``../shared/corpus/clustering/dev.jsonl``, read at run time) is placed in
time order with ``workers.stories.assign`` through the in-memory store, among ``--per-day``
made-up articles a day over its whole span (``clustering_quality.synthetic``'s kind: Zipf
words of the dev vocabulary, a few anchors each, stored and counted as documents, never
scored). That is the harshest background a real stream could be: every made-up article
shares the dev set's vocabulary, so it fills the posting lists of the dev articles' terms
and competes for their candidate places. Printed per ``max_candidates/posting_limit``
pair (optionally ``/index_terms/index_anchors``, else the shipped model's): pairwise P/R/F1 and BCubed F1 against the gold, and the ms per dev article. The
limits shipped are the smallest that lose nothing here and in ``fit_stories.py --sweep``.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections import Counter

from clustering_quality import DEV, read_jsonl, synthetic
from story_scores import bcubed, pairwise

from workers.stories import assign, profile, raw_features
from workers.story_store import MemoryStories, day_of, load_model


def run(per_day: int, limits: list[list[int]]) -> None:
    model = load_model()
    rows = sorted(read_jsonl(DEV), key=lambda r: r["published_at"])
    raws = [raw_features(r["title"], r["text"]) for r in rows]
    vocabulary = [t for t, _ in sum((Counter(r.term_counts) for r in raws), Counter())
                  .most_common()]  # fmt: skip
    first, last = day_of(rows[0]["published_at"]) - 7, day_of(rows[-1]["published_at"])
    dev = [
        (day_of(r["published_at"]), r["id"], raw, True) for r, raw in zip(rows, raws, strict=True)
    ]
    made_up = synthetic(int((last - first) * per_day), vocabulary, last, last - first)
    background = [(day, article_id, raw, False) for article_id, day, raw in made_up]
    stream = sorted(dev + background, key=lambda e: e[0])
    gold = {r["id"]: r["gold_cluster"] for r in rows}
    print(
        f"{len(stream) - len(dev):,} made-up articles ({per_day}/day) around {len(dev)} dev articles"
    )
    for candidates, posting_limit, *index in limits:
        n_terms, n_anchors = index or (model.index_terms, model.index_anchors)
        limited = dataclasses.replace(
            model, max_candidates=candidates, index_terms=n_terms, index_anchors=n_anchors
        )
        store, stories, spent = MemoryStories(posting_limit), {}, 0.0
        for day, article_id, raw, measured in stream:
            if measured:
                started = time.perf_counter()
                stories[article_id] = assign(store, limited, article_id, day, raw).story_id
                spent += time.perf_counter() - started
                continue
            terms = raw.sorted_df_terms()
            me = profile(article_id, day, raw, *store.document_frequencies(terms, day), limited)
            keys = me.index_keys(limited.index_terms, limited.index_anchors)
            store.add(me, f"s{article_id}", keys, terms)
        p, r, f = pairwise(gold, stories)
        print(f"  {candidates:3d} candidates / {posting_limit:5d} per posting list / index keys "
              f"{n_terms}+{n_anchors}: pairwise P "
              f"{p:.3f} R {r:.3f} F1 {f:.3f}  BCubed F1 {bcubed(gold, stories)[2]:.3f}  "
              f"{spent * 1000 / len(dev):.2f} ms per dev article")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-day", type=int, default=1000)
    parser.add_argument("limits", nargs="*", default=["15/25", "25/25", "25/50"],
                        help="max_candidates/posting_limit[/index_terms/index_anchors]")  # fmt: skip
    args = parser.parse_args()
    limits = [[int(n) for n in x.split("/")] for x in args.limits]
    if any(len(limit) not in (2, 4) for limit in limits):
        parser.error("each limit is candidates/posting or candidates/posting/terms/anchors")
    run(args.per_day, limits)


if __name__ == "__main__":
    main()
