"""Fit the "same story" model of workers/stories.py on the clustering dev set, with
cross-validation split by story (never fitted and scored on the same stories), and write
the fitted weights to config/stories.yaml (``--write``).

    PYTHONPATH=. python benchmarks/fit_stories.py [--write]

scikit-learn is used here only; the service reads the coefficients from the YAML file.
Candidate generation (the inverted index) does not depend on the model, so the stream is
run once to collect every (article, candidate) pair with its features, and the clustering
is replayed from those pairs: in the cross-validation each article decides with the model
of the fold that held its story out, and the whole stream is scored at once.

The cross-script model (a Chinese or Russian report beside an English one) is fitted on the
same English pairs seen as a cross-script pair sees them (``pair_features(cross=True)``:
taxonomy entities and figures only), its threshold held at 95% held-out pair precision.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import random
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import yaml
from sklearn.linear_model import LogisticRegression
from story_scores import bcubed, pairwise

from workers.pipeline import tag_document
from workers.stories import (
    PAIR_FEATURES,
    Model,
    pair_features,
    profile,
    raw_features,
)
from workers.story_store import POSTING_LIMIT, MemoryStories
from workers.tagging import load_taxonomy

ROOT = Path(__file__).resolve().parent.parent
DEV = ROOT.parent / "shared" / "corpus" / "clustering" / "dev.jsonl"
CONFIG = ROOT / "config" / "stories.yaml"
BASE = Model(weights=(0.0,) * len(PAIR_FEATURES), bias=0.0, threshold=0.5)


def day_of(value: str) -> float:
    when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return when.timestamp() / 86400.0


def load(path: Path) -> list[dict[str, str]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return sorted(rows, key=lambda r: r["published_at"])


def collect(
    rows: list[dict[str, str]], model: Model, posting_limit: int = POSTING_LIMIT
) -> list[tuple[str, list[tuple[str, list[float]]]]]:
    """Per article in time order: its candidates with their pair features."""
    taxonomy = load_taxonomy(ROOT / "config" / "taxonomy.yaml")
    store = MemoryStories(posting_limit)
    out = []
    for row in rows:
        entities = tag_document(taxonomy, row["text"], row["title"]).entities
        raw = raw_features(row["title"], row["text"], entities)
        day = day_of(row["published_at"])
        df, n = store.document_frequencies(sorted(raw.df_terms()), day)
        me = profile(row["id"], day, raw, df, n, model, row["source"])
        keys = me.index_keys(model.index_terms, model.index_anchors)
        found = store.candidates_with_profiles(
            keys, me.article_id, model.max_candidates, (day, model.window_days)
        )
        pairs = [
            (o.article_id, pair_features(me, o), pair_features(me, o, cross=True)) for o, _ in found
        ]
        out.append((row["id"], pairs))
        store.add(me, row["gold_cluster"], keys, raw.sorted_df_terms())
    return out


def replay(collected, weights, bias, threshold, models=None, gold=None) -> dict[str, str]:
    """The stream's clustering from the collected pairs; with ``models`` (story -> fold
    model) each article decides with the model of the fold that held its story out."""
    story: dict[str, str] = {}
    for article, pairs in collected:
        w, b, t = models[gold[article]] if models else (weights, bias, threshold)
        best, best_p = None, -1.0
        for other, feats, _ in pairs:
            p = 1 / (1 + np.exp(-(b + float(np.dot(w, feats)))))
            if p > best_p:
                best, best_p = other, p
        story[article] = story[best] if best is not None and best_p >= t else article
    return story


def cross_validate(collected, gold, folds: int) -> tuple[float, ...]:
    """Every article decides with a model fitted without its story; the whole stream is
    then scored at once (scoring each fold's articles apart would hide most wrong joins:
    a fold holds a fifth of the articles but a twenty-fifth of the wrong pairs)."""
    pred = cross_validated_stories(collected, gold, folds)
    return pairwise(gold, pred) + bcubed(gold, pred)


def cross_validated_stories(collected, gold, folds: int) -> dict[str, str]:
    """The stream's stories, each article decided by the model of the fold without its story."""
    stories = sorted(set(gold.values()))
    random.Random(7).shuffle(stories)
    models = {}
    for k in range(folds):
        held = set(stories[k::folds])
        fitted = fit(collected, gold, set(stories) - held)
        print(f"fold {k}: threshold {fitted[2]:.3f}")
        models.update(dict.fromkeys(held, fitted))
    return replay(collected, None, None, None, models, gold)


def fit(collected, gold, train: set[str]) -> tuple[np.ndarray, float, float]:
    xs, ys = [], []
    for article, pairs in collected:
        if gold[article] not in train:
            continue
        for other, feats, _ in pairs:
            if gold[other] in train:
                xs.append(feats)
                ys.append(int(gold[article] == gold[other]))
    clf = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000)
    clf.fit(np.array(xs), np.array(ys))
    weights, bias = clf.coef_[0], float(clf.intercept_[0])
    members = {a: g for a, g in gold.items() if g in train}
    best_t, best_f = 0.5, -1.0
    for t in np.arange(0.30, 0.96, 0.025):
        pred = replay(collected, weights, bias, float(t))
        f = pairwise(members, {a: pred[a] for a in members})[2]
        if f > best_f:
            best_t, best_f = float(t), f
    return weights, bias, best_t


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--sweep", action="store_true",
                        help="cross-validate each candidate and posting-list limit first")  # fmt: skip
    args = parser.parse_args()
    rows = load(DEV)
    gold = {r["id"]: r["gold_cluster"] for r in rows}
    if args.sweep:
        sweep(rows, gold, args.folds)
    collected = collect(rows, BASE)
    reach = sum(1 for a, pairs in collected for o, _, _ in pairs if gold[o] == gold[a])
    mates = sum(1 for a, _ in collected for b in gold if b != a and gold[b] == gold[a]) // 2
    print(f"candidate recall: {reach}/{mates} gold pairs reach the candidate list")
    stories = sorted(set(gold.values()))
    random.Random(7).shuffle(stories)
    mean = cross_validate(collected, gold, args.folds)
    print(
        f"cross-validated (by story): pairwise P {mean[0]:.3f} R {mean[1]:.3f} F1 {mean[2]:.3f}"
        f"  BCubed F1 {mean[5]:.3f}"
    )
    w, b, t = fit(collected, gold, set(stories))
    full = replay(collected, w, b, t)
    inside = pairwise(gold, full) + bcubed(gold, full)
    print(f"in-sample (fitted on all): pairwise F1 {inside[2]:.3f} BCubed F1 {inside[5]:.3f}")
    print(
        "all-data fit:",
        dict(zip(PAIR_FEATURES, np.round(w, 3), strict=True)),
        "bias",
        round(b, 3),
        "t",
        t,
    )
    cross = fit_cross(collected, gold, stories, args.folds)
    if args.write:
        write(w, b, t, mean, cross)


def sweep(rows: list[dict[str, str]], gold: dict[str, str], folds: int) -> None:
    """Cross-validated quality per candidate limit (the first k of each ranked candidate
    list: what a lookup with limit k returns) and per posting-list limit: the bounds on
    work per article are set to the smallest that lose nothing here."""
    print("limits: max_candidates / posting_limit -> cross-validated pairwise F1, BCubed F1")
    for posting_limit in SWEEP_POSTINGS:
        collected = collect(rows, dataclasses.replace(BASE, max_candidates=max(SWEEP_CANDIDATES)),
                            posting_limit)  # fmt: skip
        for k in SWEEP_CANDIDATES:
            cut = [(article, pairs[:k]) for article, pairs in collected]
            with contextlib.redirect_stdout(io.StringIO()):  # the folds' thresholds
                scores = cross_validate(cut, gold, folds)
            print(f"  {k:3d} / {posting_limit:4d}: {scores[2]:.3f}  {scores[5]:.3f}")


SWEEP_CANDIDATES = (10, 15, 20, 25, 30, 40, 60)
SWEEP_POSTINGS = (25, 50, 100, 200)


# What a pair in two scripts can still share: anchors and time. The cross-script model is
# fitted on the dev pairs seen as a cross-script pair sees them (pair_features(cross=True)), and its threshold is the lowest
# that keeps the held-out pair precision at CROSS_PRECISION: a wrong cross-language join is
# worse than a missed one.
CROSS_PRECISION = 0.95


def _pairs(collected, gold, chosen: set[str]):
    xs, ys = [], []
    for article, pairs in collected:
        for other, _, cross_feats in pairs:
            if gold[article] in chosen and gold[other] in chosen:
                xs.append(np.array(cross_feats))
                ys.append(int(gold[article] == gold[other]))
    return np.array(xs), np.array(ys)


def fit_cross(collected, gold, stories: list[str], folds: int) -> tuple[np.ndarray, float, float]:
    probs, labels = [], []
    for k in range(folds):
        held = set(stories[k::folds])
        x, y = _pairs(collected, gold, set(stories) - held)
        clf = LogisticRegression(C=1.0, max_iter=2000).fit(x, y)
        xt, yt = _pairs(collected, gold, held)
        probs.extend(clf.predict_proba(xt)[:, 1])
        labels.extend(yt)
    probs_a, labels_a = np.array(probs), np.array(labels)
    threshold = 1.0
    for t in np.arange(0.99, 0.3, -0.01):
        chosen = probs_a >= t
        if chosen.sum() and labels_a[chosen].mean() < CROSS_PRECISION:
            break
        threshold = float(t)
    chosen = probs_a >= threshold
    print(
        f"cross-script model (language-independent anchors only), held-out pairs: threshold {threshold:.2f} "
        f"precision {labels_a[chosen].mean() if chosen.sum() else 1.0:.3f} "
        f"recall {labels_a[chosen].sum() / max(1, labels_a.sum()):.3f}"
    )
    x, y = _pairs(collected, gold, set(stories))
    clf = LogisticRegression(C=1.0, max_iter=2000).fit(x, y)
    return clf.coef_[0], float(clf.intercept_[0]), threshold


def write(weights: np.ndarray, bias: float, threshold: float, cv: np.ndarray, cross) -> None:
    data = {
        "weights": {n: round(float(v), 4) for n, v in zip(PAIR_FEATURES, weights, strict=True)},
        "bias": round(bias, 4),
        "threshold": round(threshold, 3),
        "window_days": BASE.window_days,
        "top_terms": BASE.top_terms,
        "index_terms": BASE.index_terms,
        "index_anchors": BASE.index_anchors,
        "max_candidates": BASE.max_candidates,
        "idf_prior_docs": BASE.idf_prior_docs,
        "cross_weights": {
            n: round(float(v), 4) for n, v in zip(PAIR_FEATURES, cross[0], strict=True)
        },
        "cross_bias": round(cross[1], 4),
        "cross_threshold": round(cross[2], 3),
    }
    head = (
        '# The fitted "same story" model of workers/stories.py. Written by\n'
        "# benchmarks/fit_stories.py --write from ../shared/corpus/clustering/dev.jsonl;\n"
        f"# cross-validated by story: pairwise F1 {cv[2]:.3f}, BCubed F1 {cv[5]:.3f}.\n"
    )
    CONFIG.write_text(head + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    print(f"wrote {CONFIG}", file=sys.stderr)


if __name__ == "__main__":
    main()
