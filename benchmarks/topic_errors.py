"""List every out-of-fold topic error on the real development set, with what to judge it by.

    python benchmarks/topic_errors.py [--topic tariffs] [--lang zh-Hant] [--sentences 3]

Runs ``fit_tagger.cross_validate`` (the same folds and selection as ``tagging_quality.py``)
and prints, for each positive article, the topics the held-out model got wrong: FP (given,
not in the hand topics) and FN (in the hand topics, not given), with the held-out
probability against the fold's threshold (``no term``: the taxonomy has no term of the
topic in the article, so the model never saw it), the topic features, the record's
``why`` and the sentences holding the topic's terms. Reading them is how each error is
put in a family (label omission, passing mention, missing term, model weakness); the
real set is read at run time and nothing of it is written anywhere.
"""

from __future__ import annotations

import argparse
import json
import warnings
from typing import Any

import fit_tagger

from core.document import read_document
from workers.lexicon import normalize_text
from workers.tagging import TOPIC_FEATURES, Taxonomy, load_taxonomy, split_sentences


def topic_sentences(taxonomy: Taxonomy, text: str, topic: str, limit: int) -> list[str]:
    """The title and body sentences holding a strong (*) or weak (~) term of ``topic``."""
    title, paragraphs = read_document(text)
    out = []
    keys = {f"topic:{topic}": "*", f"weak:{topic}": "~"}
    for _, sentence in [(-1, normalize_text(title)), *split_sentences(paragraphs)]:
        hits = taxonomy.matcher.classify(sentence)
        marks = "".join(mark for key, mark in keys.items() if key in hits)
        if marks:
            out.append(f"{marks} {sentence[:220]}")
        if len(out) >= limit:
            break
    return out


def errors(rows: list[dict[str, Any]], found: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per (positive article, topic) the held-out model got wrong."""
    oof = found["topic_oof"]
    out = []
    for i, row in enumerate(rows):
        if not row["label"]:
            continue
        for topic in sorted(set(row["tvalues"]) | row["topics"]):
            p, threshold = oof.get((i, topic), (None, None))
            given = p is not None and threshold is not None and p >= threshold
            if given != (topic in row["topics"]):
                out.append({"i": i, "topic": topic, "kind": "FP" if given else "FN",
                            "p": p, "threshold": threshold})  # fmt: skip
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--topic")
    parser.add_argument("--lang")
    parser.add_argument("--sentences", type=int, default=3)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)
    taxonomy = load_taxonomy(fit_tagger.TAXONOMY_FILE)
    rows = fit_tagger.load_rows(taxonomy)
    items = {
        item["id"]: item
        for item in map(json.loads, fit_tagger.DATA.read_text(encoding="utf-8").splitlines())
    }
    found = fit_tagger.cross_validate(rows, 5, 0)
    listed = [
        e
        for e in errors(rows, found)
        if (args.topic in (None, e["topic"])) and (args.lang in (None, rows[e["i"]]["lang"]))
    ]
    for e in sorted(listed, key=lambda e: (e["topic"], e["kind"], rows[e["i"]]["id"])):
        row = rows[e["i"]]
        item = items[row["id"]]
        p = "no term" if e["p"] is None else f"p {e['p']:.2f} / {e['threshold']:.2f}"
        print(
            f"\n{e['kind']} {e['topic']} {row['id']} {row['lang']} ({p}) gold {sorted(row['topics'])}"
        )
        print(f"   why: {item.get('why', '')}")
        values = row["tvalues"].get(e["topic"])
        if values:
            print("   " + " ".join(f"{f}={values[f]:.2f}" for f in TOPIC_FEATURES))
        for line in topic_sentences(taxonomy, item["text"], e["topic"], args.sentences):
            print(f"   {line}")
    counts: dict[tuple[str, str], int] = {}
    for e in listed:
        key = (e["kind"], "no term" if e["p"] is None else "model")
        counts[key] = counts.get(key, 0) + 1
    print(
        f"\n{len(listed)} errors: "
        + ", ".join(f"{k} {w}: {n}" for (k, w), n in sorted(counts.items()))
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
