"""Fit the tagger's weights, threshold and topic rule on the real development set.

    python benchmarks/fit_tagger.py [--folds 5] [--seed 0] [--write]

Reads ``../shared/corpus/tagging/real_dev.jsonl`` at run time (null labels left out).
The tagger's features (``workers.tagging.article_features``) are computed once per article;
scikit-learn's ``LogisticRegression`` (on standardised features, L2) learns the weights.
Every figure printed is out-of-fold: stratified k-fold cross-validation, and inside each
training fold a second, inner cross-validation picks the regularisation C, the decision
threshold and the topic rule, so nothing is chosen on the rows it is scored on.

Topics: one row per (positive article, topic with a term in it), its
``workers.tagging.TOPIC_FEATURES`` and a bias per topic; the target is whether the hand
topics hold it. The topic model's C and threshold (best micro-F1) are picked by an inner
cross-validation over whole articles; topic precision and recall are printed per topic
and per language.

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
    TOPIC_FEATURES,
    TOPICS,
    Taxonomy,
    article_features,
    load_taxonomy,
    topic_values,
)

DATA = ROOT.parent / "shared" / "corpus" / "tagging" / "real_dev.jsonl"
TAXONOMY_FILE = ROOT / "config" / "taxonomy.yaml"
FEATURES = [name for name in _WEIGHT_NAMES if name != "bias"]
C_GRID = (0.03, 0.1, 0.3, 1.0, 3.0)
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
        values, _ = topic_values(taxonomy, features)
        rows.append({
            "id": item["id"], "label": bool(item["label"]), "lang": item["lang"],
            "kind": item["kind"], "source": SOURCES.get(item["source"]["repo"], "other"),
            "topics": set(item.get("topics") or ()), "tvalues": values,
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


# The decision threshold: 0.5 on the calibrated score ("more likely than not"), unless
# --tune-threshold picks the best-F1 one by inner cross-validation (noisier on 300 rows:
# the folds' picks ranged 0.26-0.50 when tried).
TUNE_THRESHOLD = False


def select(x: np.ndarray, y: np.ndarray, strata: np.ndarray, seed: int) -> tuple[float, float]:
    """(C, threshold) chosen by inner cross-validation on these rows alone."""
    losses = {}
    oof = {}
    for c in C_GRID:
        oof[c] = inner_oof(x, y, strata, c, seed)
        losses[c] = log_loss(y, np.clip(oof[c], 1e-6, 1 - 1e-6))
    c = min(losses, key=lambda k: losses[k])
    return c, best_threshold(y, oof[c]) if TUNE_THRESHOLD else 0.5


def topic_matrix(
    rows: Sequence[dict[str, Any]],
) -> tuple[np.ndarray, np.ndarray, list[tuple[int, str]]]:
    """One row per (article, topic with a term in it): TOPIC_FEATURES, then the topic
    one-hot (its own bias); the target is whether the hand topics hold it."""
    x, y, keys = [], [], []
    for i, row in enumerate(rows):
        for t, values in row["tvalues"].items():
            x.append([values[f] for f in TOPIC_FEATURES] + [float(t == u) for u in TOPICS])
            y.append(t in row["topics"])
            keys.append((i, t))
    return np.array(x), np.array(y), keys


def topic_counts(
    rows: Sequence[dict[str, Any]], found: set[tuple[int, str]]
) -> tuple[int, int, int]:
    gold = {(i, t) for i, row in enumerate(rows) for t in row["topics"]}
    return len(found & gold), len(found - gold), len(gold - found)


def select_topic_model(rows: Sequence[dict[str, Any]], seed: int) -> dict[str, Any]:
    """The topic model fitted on these positives, C and threshold by inner CV (micro F1)."""
    x, y, keys = topic_matrix(rows)
    groups = np.array([i for i, _ in keys])
    best: tuple[float, float, float] = (-1.0, 1.0, 0.5)
    for c in C_GRID:
        oof = np.zeros(len(y))
        for train, test in _group_folds(groups, seed):
            oof[test] = predict(fit(x[train], y[train], c), x[test])
        for t in np.arange(0.2, 0.81, 0.05):
            found = {keys[k] for k in range(len(keys)) if oof[k] >= t}
            tp, fp, fn = topic_counts(rows, found)
            f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
            if f1 > best[0] + 1e-9:
                best = (f1, c, round(float(t), 2))
    return {"fitted": fit(x, y, best[1]), "c": best[1], "threshold": best[2]}


def _group_folds(groups: np.ndarray, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Five folds of whole articles (an article's topics never straddle a split)."""
    articles = np.unique(groups)
    rng = np.random.default_rng(seed)
    rng.shuffle(articles)
    return [
        (np.where(~np.isin(groups, part))[0], np.where(np.isin(groups, part))[0])
        for part in np.array_split(articles, 5)
    ]


def topic_probabilities(
    model: dict[str, Any], rows: Sequence[dict[str, Any]]
) -> dict[tuple[int, str], float]:
    """The model's probability for each (article index in rows, topic with a term)."""
    x, _, keys = topic_matrix(rows)
    if not keys:
        return {}
    p = predict(model["fitted"], x)
    return {key: float(p[k]) for k, key in enumerate(keys)}


def apply_topic_model(
    model: dict[str, Any], rows: Sequence[dict[str, Any]]
) -> set[tuple[int, str]]:
    return {key for key, p in topic_probabilities(model, rows).items() if p >= model["threshold"]}


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
    per_topic = {name: np.zeros(3, dtype=int) for name in TOPICS}
    per_lang: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(3, dtype=int))
    chosen = []
    # (row index, topic) -> (held-out probability, the fold's threshold): for error lists.
    topic_oof: dict[tuple[int, str], tuple[float, float]] = {}
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, strata):
        c, threshold = select(x[train], y[train], strata[train], seed)
        scores[test] = predict(fit(x[train], y[train], c), x[test])
        predicted[test] = scores[test] >= threshold
        model = select_topic_model([rows[i] for i in train if rows[i]["label"]], seed)
        held_index = [i for i in test if rows[i]["label"]]
        held = [rows[i] for i in held_index]
        found = apply_topic_model(model, held)
        for (k, t), p in topic_probabilities(model, held).items():
            topic_oof[(int(held_index[k]), t)] = (p, model["threshold"])
        topics.append(topic_counts(held, found))
        for k, row in enumerate(held):
            per_lang[row["lang"]] += np.array(topic_counts(
                [{"topics": row["topics"]}], {(0, t) for i, t in found if i == k}
            ))  # fmt: skip
        for name in TOPICS:
            per_topic[name] += np.array(topic_counts(
                [{"topics": r["topics"] & {name}} for r in held],
                {(i, t) for i, t in found if t == name},
            ))  # fmt: skip
        chosen.append((c, threshold, (model["c"], model["threshold"])))
    return {"scores": scores, "predicted": predicted, "topics": topics, "chosen": chosen,
            "per_topic": per_topic, "per_lang": dict(per_lang),
            "topic_oof": topic_oof}  # fmt: skip


# --- Report ---------------------------------------------------------------------------------


def prf_row(
    name: str, members: Sequence[int], rows: Sequence[dict[str, Any]], pred: np.ndarray
) -> str:
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
        members = [
            i for i, s in enumerate(scores) if low <= s < low + 0.1 or (low >= 0.9 and s >= 1.0)
        ]
        if members:
            mean = float(np.mean(scores[members]))
            share = sum(rows[i]["label"] for i in members) / len(members)
            print(f"| {low:.1f}–{low + 0.1:.1f} | {len(members)} | {mean:.3f} | {share:.3f} |")
    print("\n| threshold | precision | recall | hard-negative FP rate |")
    print("|---:|---:|---:|---:|")
    y = np.array([r["label"] for r in rows])
    hard = np.array([r["kind"] == "hard_neg" for r in rows])
    for t in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
        hit = scores >= t
        tp, fp = int(np.sum(hit & y)), int(np.sum(hit & ~y))
        print(f"| {t:.1f} | {tp / max(1, tp + fp):.3f} | {tp / max(1, int(y.sum())):.3f} | "
              f"{np.sum(hit & hard) / max(1, int(hard.sum())):.3f} |")  # fmt: skip
    brier = float(np.mean((scores - np.array([r["label"] for r in rows])) ** 2))
    print(f"\nBrier score (held-out): {brier:.4f}")


def print_report(
    rows: list[dict[str, Any]], found: dict[str, Any], folds: int, seed: int, errors: bool = True
) -> None:
    print(f"real_dev: {len(rows)} labelled articles ({sum(r['label'] for r in rows)} positive); "
          f"{folds}-fold stratified CV, seed {seed}; all figures out-of-fold\n")  # fmt: skip
    for c, threshold, rule in found["chosen"]:
        print(
            f"  fold choice: C={c} threshold={threshold} topic model C={rule[0]} threshold={rule[1]}"
        )
    print()
    print_slices(rows, found["predicted"])
    print()
    print_reliability(rows, found["scores"])
    tp, fp, fn = (sum(t[k] for t in found["topics"]) for k in range(3))
    print(f"\ntopics on positives (held-out rule): precision {tp / max(1, tp + fp):.3f}, "
          f"recall {tp / max(1, tp + fn):.3f} (TP {tp}, FP {fp}, FN {fn})")  # fmt: skip
    print(
        "\n| topic / language | TP | FP | FN | precision | recall |\n|---|---:|---:|---:|---:|---:|"
    )
    slices = [*found["per_topic"].items(), *sorted(found["per_lang"].items())]
    for name, (tp, fp, fn) in slices:
        p = f"{tp / (tp + fp):.3f}" if tp + fp else "–"
        r = f"{tp / (tp + fn):.3f}" if tp + fn else "–"
        print(f"| {name} | {tp} | {fp} | {fn} | {p} | {r} |")
    if not errors:
        return
    wrong = [i for i, row in enumerate(rows) if row["label"] != found["predicted"][i]]
    print("\nerrors (out-of-fold):")
    for i in sorted(wrong, key=lambda i: (rows[i]["label"], rows[i]["id"])):
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
    topic = select_topic_model([row for row in rows if row["label"]], seed)
    (scaler, model), cols = topic["fitted"], len(TOPIC_FEATURES)
    tcoef = model.coef_[0] / scaler.scale_
    tbias = float(model.intercept_[0] - np.sum(tcoef * scaler.mean_))
    topic_model = {
        "threshold": topic["threshold"],
        "weights": {f: float(w) for f, w in zip(TOPIC_FEATURES, tcoef[:cols], strict=True)},
        "bias": {t: tbias + float(w) for t, w in zip(TOPICS, tcoef[cols:], strict=True)},
    }
    return {"weights": weights, "threshold": threshold, "c": c, "topic_model": topic_model,
            "topic_c": topic["c"]}  # fmt: skip


def write_taxonomy(path: Path, fitted: dict[str, Any]) -> str:
    text = path.read_text(encoding="utf-8")
    old_version = re.search(r'^version: "([^"]+)"', text, re.M)
    assert old_version is not None
    today = datetime.now(UTC)
    base = f"{today:%Y.%m}."
    number = (
        int(old_version.group(1).rsplit(".", 1)[1]) + 1
        if old_version.group(1).startswith(base)
        else 1
    )
    version = f"{base}{number}"
    lines = "\n".join(f"  {name}: {value:.6g}" for name, value in fitted["weights"].items())
    tm = fitted["topic_model"]
    tlines = "\n".join(f"    {name}: {value:.6g}" for name, value in tm["weights"].items())
    blines = "\n".join(f"    {name}: {value:.6g}" for name, value in tm["bias"].items())
    block = (
        f'version: "{version}"\nthreshold: {fitted["threshold"]}\n\n'
        f"# Fitted by benchmarks/fit_tagger.py (LogisticRegression, C={fitted['c']}, topic model"
        f" C={fitted['topic_c']}); do not edit by hand.\n"
        f"weights:\n{lines}\n\ntopic_model:\n  threshold: {tm['threshold']}\n"
        f"  weights:\n{tlines}\n  bias:\n{blines}\n\nactors:"
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
    parser.add_argument("--tune-threshold", action="store_true", help="best-F1 threshold, nested")
    args = parser.parse_args()
    global TUNE_THRESHOLD
    TUNE_THRESHOLD = args.tune_threshold
    rows = load_rows(load_taxonomy(args.taxonomy))
    print_report(rows, cross_validate(rows, args.folds, args.seed), args.folds, args.seed)
    if args.write:
        fitted = final_fit(rows, args.seed)
        version = write_taxonomy(args.taxonomy, fitted)
        print(f"\nwrote {args.taxonomy} version {version}: threshold {fitted['threshold']}, "
              f"C {fitted['c']}, topic model threshold {fitted['topic_model']['threshold']}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
