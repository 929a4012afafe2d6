"""Fit the tagger's weights, threshold and topic rule on the real development set.

    python benchmarks/fit_tagger.py [--folds 5] [--seed 0] [--write]

Reads ``../shared/corpus/tagging/real_dev.jsonl`` at run time (null labels left out).
The tagger's features (``workers.tagging.article_features``) are computed once per article;
scikit-learn's ``LogisticRegression`` (on standardised features, L2) learns the weights.
Every figure printed is out-of-fold: stratified k-fold cross-validation, and inside each
training fold a second, inner cross-validation picks the regularisation C, the decision
threshold and the topic rule, so nothing is chosen on the rows it is scored on.

``--write`` refits on all rows with the same selection and writes the weights (unfolded
from the standardisation, so the service computes one dot product and a sigmoid and never
imports scikit-learn), the threshold and the topic rule into ``config/taxonomy.yaml``,
bumping its version.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path.insert(0, str(ROOT))

from core.document import read_document  # noqa: E402
from workers.tagging import (  # noqa: E402
    _WEIGHT_NAMES,
    TOPICS,
    Taxonomy,
    article_features,
    load_taxonomy,
    topic_points,
)

DATA = ROOT.parent / "shared" / "corpus" / "tagging" / "real_dev.jsonl"
TAXONOMY_FILE = ROOT / "config" / "taxonomy.yaml"
FEATURES = [name for name in _WEIGHT_NAMES if name != "bias"]
C_GRID = (0.03, 0.1, 0.3, 1.0, 3.0)
TOPIC_POINTS_GRID = (4.0, 6.0, 8.0, 10.0, 12.0)
TOPIC_SHARE_GRID = (0.0, 0.1, 0.2, 0.3, 0.4)
SOURCES = {
    "DuckBurnIncense/xin-wen-lian-bo": "cctv",
    "hkarchivist/hkcnews-article-archive": "citizen_news",
    "sanshanchuns/economist": "economist",
    "cch123/eco2020": "economist",
    "flairNLP/fundus": "fundus",
    "lhandrena/RAG-Evaluation": "tagesschau",
    "thebadely/thebadely.github.io": "bbc",
}


def load_rows(taxonomy: Taxonomy) -> list[dict[str, Any]]:
    """Labelled articles with their feature vectors and topic points (as the service
    reads them: ``tag_document``'s layout, the record's title first)."""
    rows = []
    for line in DATA.read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        if item.get("label") is None:
            continue
        doc_title, paragraphs = read_document(item["text"])
        features = article_features(taxonomy, item.get("title") or doc_title, paragraphs)
        points, _ = topic_points(taxonomy, features)
        rows.append({
            "id": item["id"], "label": bool(item["label"]), "lang": item["lang"],
            "kind": item["kind"], "source": SOURCES.get(item["source"]["repo"], "other"),
            "topics": set(item.get("topics") or ()), "points": points,
            "x": [features.values[name] for name in FEATURES],
        })  # fmt: skip
    return rows


# --- Selection (used on training folds only) ----------------------------------------------


def fit(x: np.ndarray, y: np.ndarray, c: float) -> tuple[StandardScaler, LogisticRegression]:
    scaler = StandardScaler().fit(x)
    model = LogisticRegression(C=c, max_iter=5000).fit(scaler.transform(x), y)
    return scaler, model


def predict(fitted: tuple[StandardScaler, LogisticRegression], x: np.ndarray) -> np.ndarray:
    scaler, model = fitted
    return np.asarray(model.predict_proba(scaler.transform(x))[:, 1])


def inner_oof(x: np.ndarray, y: np.ndarray, strata: np.ndarray, c: float, seed: int) -> np.ndarray:
    out = np.zeros(len(y))
    for train, test in StratifiedKFold(5, shuffle=True, random_state=seed).split(x, strata):
        out[test] = predict(fit(x[train], y[train], c), x[test])
    return out


def best_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The threshold of best F1 on out-of-fold scores (ties: nearest 0.5, calibrated)."""
    best: tuple[float, float] = (-1.0, 0.5)
    for t in np.arange(0.2, 0.81, 0.02):
        tp = float(np.sum((p >= t) & y))
        fp = float(np.sum((p >= t) & ~y))
        fn = float(np.sum((p < t) & y))
        f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
        if f1 > best[0] + 1e-9 or (abs(f1 - best[0]) <= 1e-9 and abs(t - 0.5) < abs(best[1] - 0.5)):
            best = (f1, float(t))
    return round(best[1], 2)


def select(x: np.ndarray, y: np.ndarray, strata: np.ndarray, seed: int) -> tuple[float, float]:
    """(C, threshold) chosen by inner cross-validation on these rows alone."""
    losses = {}
    oof = {}
    for c in C_GRID:
        oof[c] = inner_oof(x, y, strata, c, seed)
        losses[c] = log_loss(y, np.clip(oof[c], 1e-6, 1 - 1e-6))
    c = min(losses, key=lambda k: losses[k])
    return c, best_threshold(y, oof[c])


def topic_counts(rows: Sequence[dict[str, Any]], points: float, share: float) -> tuple[int, int, int]:
    tp = fp = fn = 0
    for row in rows:
        scores = row["points"]
        floor = max(points, share * max(scores.values(), default=0.0))
        found = {t for t in TOPICS if scores.get(t, 0.0) >= floor}
        tp += len(found & row["topics"])
        fp += len(found - row["topics"])
        fn += len(row["topics"] - found)
    return tp, fp, fn


def select_topic_rule(rows: Sequence[dict[str, Any]]) -> tuple[float, float]:
    """(topic_points, topic_share) of best micro F1 on these positives."""
    def f1(rule: tuple[float, float]) -> float:
        tp, fp, fn = topic_counts(rows, *rule)
        return 2 * tp / (2 * tp + fp + fn) if tp else 0.0

    rules = [(p, s) for p in TOPIC_POINTS_GRID for s in TOPIC_SHARE_GRID]
    return max(rules, key=f1)


# --- Cross-validation -----------------------------------------------------------------------


def strata_of(rows: Sequence[dict[str, Any]]) -> np.ndarray:
    """Label by language, the thin languages pooled, so every fold sees every mix."""
    return np.array([
        f"{row['label']}-{row['lang'] if row['lang'] in ('en', 'zh', 'zh-Hant') else 'other'}"
        for row in rows
    ])  # fmt: skip


def cross_validate(rows: list[dict[str, Any]], folds: int, seed: int) -> dict[str, Any]:
    x = np.array([row["x"] for row in rows])
    y = np.array([row["label"] for row in rows])
    strata = strata_of(rows)
    scores = np.zeros(len(rows))
    predicted = np.zeros(len(rows), dtype=bool)
    topics: list[tuple[int, int, int]] = []
    chosen = []
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, strata):
        c, threshold = select(x[train], y[train], strata[train], seed)
        scores[test] = predict(fit(x[train], y[train], c), x[test])
        predicted[test] = scores[test] >= threshold
        rule = select_topic_rule([rows[i] for i in train if rows[i]["label"]])
        topics.append(topic_counts([rows[i] for i in test if rows[i]["label"]], *rule))
        chosen.append((c, threshold, rule))
    return {"scores": scores, "predicted": predicted, "topics": topics, "chosen": chosen}


# --- Report ---------------------------------------------------------------------------------


def prf_row(name: str, members: Sequence[int], rows: Sequence[dict[str, Any]], pred: np.ndarray) -> str:
    tp = sum(1 for i in members if rows[i]["label"] and pred[i])
    fp = sum(1 for i in members if not rows[i]["label"] and pred[i])
    fn = sum(1 for i in members if rows[i]["label"] and not pred[i])
    negatives = sum(1 for i in members if not rows[i]["label"])
    p = f"{tp / (tp + fp):.3f}" if tp + fp else "–"
    r = f"{tp / (tp + fn):.3f}" if tp + fn else "–"
    f = f"{2 * tp / (2 * tp + fp + fn):.3f}" if tp else "–"
    fpr = f"{fp / negatives:.3f}" if negatives else "–"
    return f"| {name} | {len(members)} | {tp} | {fp} | {fn} | {p} | {r} | {f} | {fpr} |"


def print_slices(rows: list[dict[str, Any]], pred: np.ndarray) -> None:
    print("| slice | n | TP | FP | FN | precision | recall | F1 | FP rate |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(prf_row("**all**", range(len(rows)), rows, pred))
    for key in ("lang", "kind", "source"):
        groups: dict[str, list[int]] = defaultdict(list)
        for i, row in enumerate(rows):
            groups[row[key]].append(i)
        for name, members in sorted(groups.items()):
            print(prf_row(f"{key}={name}", members, rows, pred))


def print_reliability(rows: list[dict[str, Any]], scores: np.ndarray) -> None:
    """Held-out scores in ten bins: mean score against the share that is truly positive."""
    print("| score bin | n | mean score | share positive |")
    print("|---|---:|---:|---:|")
    for low in np.arange(0.0, 1.0, 0.1):
        members = [i for i, s in enumerate(scores) if low <= s < low + 0.1 or (low >= 0.9 and s >= 1.0)]
        if members:
            mean = float(np.mean(scores[members]))
            share = sum(rows[i]["label"] for i in members) / len(members)
            print(f"| {low:.1f}–{low + 0.1:.1f} | {len(members)} | {mean:.3f} | {share:.3f} |")
    brier = float(np.mean((scores - np.array([r["label"] for r in rows])) ** 2))
    print(f"\nBrier score (held-out): {brier:.4f}")


def print_report(rows: list[dict[str, Any]], found: dict[str, Any], folds: int, seed: int) -> None:
    print(f"real_dev: {len(rows)} labelled articles ({sum(r['label'] for r in rows)} positive); "
          f"{folds}-fold stratified CV, seed {seed}; all figures out-of-fold\n")  # fmt: skip
    for c, threshold, rule in found["chosen"]:
        print(f"  fold choice: C={c} threshold={threshold} topic_points={rule[0]} topic_share={rule[1]}")
    print()
    print_slices(rows, found["predicted"])
    print()
    print_reliability(rows, found["scores"])
    tp, fp, fn = (sum(t[k] for t in found["topics"]) for k in range(3))
    print(f"\ntopics on positives (held-out rule): precision {tp / max(1, tp + fp):.3f}, "
          f"recall {tp / max(1, tp + fn):.3f} (TP {tp}, FP {fp}, FN {fn})")  # fmt: skip
    errors = [i for i, row in enumerate(rows) if row["label"] != found["predicted"][i]]
    print("\nerrors (out-of-fold):")
    for i in sorted(errors, key=lambda i: (rows[i]["label"], rows[i]["id"])):
        kind = "FN" if rows[i]["label"] else "FP"
        print(f"  {kind} {rows[i]['id']} {rows[i]['lang']} score {found['scores'][i]:.3f}")


# --- Writing the taxonomy -------------------------------------------------------------------


def final_fit(rows: list[dict[str, Any]], seed: int) -> dict[str, Any]:
    """The shipped model: the same selection on all rows, weights in raw feature units."""
    x = np.array([row["x"] for row in rows])
    y = np.array([row["label"] for row in rows])
    c, threshold = select(x, y, strata_of(rows), seed)
    scaler, model = fit(x, y, c)
    coef = model.coef_[0] / scaler.scale_
    bias = float(model.intercept_[0] - np.sum(coef * scaler.mean_))
    weights = {"bias": bias, **{name: float(w) for name, w in zip(FEATURES, coef, strict=True)}}
    rule = select_topic_rule([row for row in rows if row["label"]])
    return {"weights": weights, "threshold": threshold, "rule": rule, "c": c}


def write_taxonomy(path: Path, fitted: dict[str, Any]) -> str:
    text = path.read_text(encoding="utf-8")
    old_version = re.search(r'^version: "([^"]+)"', text, re.M)
    assert old_version is not None
    today = datetime.now(UTC)
    base = f"{today:%Y.%m}."
    number = int(old_version.group(1).rsplit(".", 1)[1]) + 1 if old_version.group(1).startswith(base) else 1
    version = f"{base}{number}"
    lines = "\n".join(f"  {name}: {value:.6g}" for name, value in fitted["weights"].items())
    block = (
        f'version: "{version}"\nthreshold: {fitted["threshold"]}\n'
        f"topic_points: {fitted['rule'][0]}\ntopic_share: {fitted['rule'][1]}\n\n"
        f"# Fitted by benchmarks/fit_tagger.py (LogisticRegression, C={fitted['c']}); do not edit by hand.\n"
        f"weights:\n{lines}\n\nactors:"
    )
    text = re.sub(r'^version: ".*?\nactors:', block, text, count=1, flags=re.M | re.S)
    path.write_text(text, encoding="utf-8")
    return version


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--taxonomy", type=Path, default=TAXONOMY_FILE)
    parser.add_argument("--write", action="store_true", help="write the refit into the taxonomy")
    args = parser.parse_args()
    rows = load_rows(load_taxonomy(args.taxonomy))
    print_report(rows, cross_validate(rows, args.folds, args.seed), args.folds, args.seed)
    if args.write:
        fitted = final_fit(rows, args.seed)
        version = write_taxonomy(args.taxonomy, fitted)
        print(f"\nwrote {args.taxonomy} version {version}: threshold {fitted['threshold']}, "
              f"C {fitted['c']}, topic rule {fitted['rule']}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
