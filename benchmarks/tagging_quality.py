"""Tagging quality and speed: the real development set (cross-validated), the invented
set and the five seeds.

    python benchmarks/tagging_quality.py [--data tests/data/tagging] [--errors] [--no-real]

Prints precision, recall and F1 of `us_china_trade`, per-language figures, per-topic
accuracy (on true positives), and articles per second of tagging alone on one core, for
the invented set (unit-test material) and the seeds; then, unless --no-real, the real set
``../shared/corpus/tagging/real_dev.jsonl`` as ``benchmarks/fit_tagger.py`` scores it:
out-of-fold figures overall and per language, kind and source, the hard-negative
false-positive rate, the score's reliability table and topic precision/recall (the
figures the issue's goals are judged on), and the speed on those longer real articles.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

from harness import ROOT, md_table

from core.document import normalize_paragraph, read_document
from workers.tagging import TOPICS, load_taxonomy, tag_article

SEEDS = ROOT.parent / "shared" / "seeds"
REPEATS = 5


def load_cases(data_dir: Path) -> list[dict[str, object]]:
    cases: list[dict[str, object]] = []
    for path in sorted(data_dir.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                cases.append(json.loads(line))
    for seed in sorted(SEEDS.glob("*.txt")):
        title, paragraphs = read_document(seed.read_text(encoding="utf-8"))
        cases.append({"id": f"seed-{seed.name[:3]}", "title": title, "paragraphs": paragraphs,
                      "language": "en", "label": True, "topics": None, "case": "seed"})  # fmt: skip
    return cases


def article(case: dict[str, object]) -> tuple[str, list[str]]:
    """Title and paragraphs as the pipeline sees them (the seed format: title line, blank
    line, paragraphs). The dev set's `text` holds the body only, so it is read behind its
    title; reading it alone would take the lead paragraph for a title and drop it."""
    if "paragraphs" in case:
        return str(case["title"]), list(case["paragraphs"])  # type: ignore[call-overload]
    title, text = str(case["title"]).strip(), str(case["text"])
    if title:
        return read_document(f"{title}\n\n{text}")
    blocks = [normalize_paragraph(b) for b in re.split(r"\n\s*\n", text) if b.strip()]
    return "", blocks


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def score(
    taxonomy: Any, prepared: list[tuple[dict[str, object], str, list[str]]]
) -> dict[str, Any]:
    """tp/fp/fn/tn overall and per language, per-topic hits on true positives, the errors."""
    counts: Counter[str] = Counter()
    by_lang: dict[str, Counter[str]] = {}
    topic_hits: Counter[str] = Counter()
    topic_total: Counter[str] = Counter()
    errors = []
    for case, title, paragraphs in prepared:
        result = tag_article(taxonomy, title, paragraphs)
        label = bool(case["label"])
        kind = ("tp" if label else "fp") if result.us_china_trade else ("fn" if label else "tn")
        counts[kind] += 1
        by_lang.setdefault(str(case.get("language", "?")), Counter())[kind] += 1
        if kind in ("fp", "fn"):
            errors.append((kind, case["id"], case.get("case"), result.score, title[:70]))
        if kind == "tp" and case.get("topics") is not None:
            expected = set(case["topics"])  # type: ignore[arg-type]
            for topic in TOPICS:
                topic_total[topic] += 1
                topic_hits[topic] += (topic in expected) == (topic in result.topics)
    return {"counts": counts, "by_lang": by_lang, "topic_hits": topic_hits,
            "topic_total": topic_total, "errors": errors}  # fmt: skip


def speed(
    taxonomy: Any, prepared: list[tuple[dict[str, object], str, list[str]]]
) -> tuple[list[float], int]:
    """Tagging alone, one core, several passes over the set; timed REPEATS times, as other
    processes only ever slow a run down, the best run is the tagger's speed (the median
    shows how noisy the machine was)."""
    passes = max(1, 2000 // len(prepared))
    rates = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        for _ in range(passes):
            for _case, title, paragraphs in prepared:
                tag_article(taxonomy, title, paragraphs)
        rates.append(passes * len(prepared) / (time.perf_counter() - start))
    return rates, passes


def cold_speed(
    taxonomy_file: Path, prepared: list[tuple[dict[str, object], str, list[str]]]
) -> float:
    """One pass with a taxonomy loaded afresh: every word is new to its matcher, as most
    words of a real stream are to a worker (the passes of ``speed`` hit its word cache)."""
    taxonomy = load_taxonomy(taxonomy_file)
    start = time.perf_counter()
    for _case, title, paragraphs in prepared:
        tag_article(taxonomy, title, paragraphs)
    return len(prepared) / (time.perf_counter() - start)


def print_report(
    n: int, version: str, found: dict[str, Any], rates: list[float], passes: int
) -> None:
    counts, topic_hits, topic_total = found["counts"], found["topic_hits"], found["topic_total"]
    p, r, f = prf(counts["tp"], counts["fp"], counts["fn"])
    print(
        f"tagging quality on {n} articles ({counts['tp'] + counts['fn']} positive), taxonomy {version}"
    )
    print()
    rows = [("all", n, f"{p:.3f}", f"{r:.3f}", f"{f:.3f}")]
    for lang, c in sorted(found["by_lang"].items()):
        lp, lr, lf = prf(c["tp"], c["fp"], c["fn"])
        rows.append((lang, sum(c.values()), f"{lp:.3f}", f"{lr:.3f}", f"{lf:.3f}"))
    print("\n".join(md_table(("set", "n", "precision", "recall", "F1"), rows)))
    print()
    rows = [(t, f"{topic_hits[t] / topic_total[t]:.3f}") for t in TOPICS if topic_total[t]]
    if topic_total:
        rows.append(("(all topics)", f"{sum(topic_hits.values()) / sum(topic_total.values()):.3f}"))
    print("\n".join(md_table(("topic", "accuracy on true positives"), rows)))
    print()
    print(
        f"speed: {max(rates):,.0f} articles/s tagging alone (one core, best of {REPEATS} runs"
        f" of {passes} passes; median {statistics.median(rates):,.0f})"
    )


def real_report(taxonomy: Any, taxonomy_file: Path, errors: bool) -> None:
    """The real set: cross-validated figures (fit_tagger) and tagging speed on it."""
    import fit_tagger

    if not fit_tagger.DATA.exists():
        print(f"\n(no real set at {fit_tagger.DATA})")
        return
    rows = fit_tagger.load_rows(taxonomy)
    print()
    found = fit_tagger.cross_validate(rows, 5, 0)
    fit_tagger.print_report(rows, found, 5, 0, errors)
    prepared = []
    for line in fit_tagger.DATA.read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        title, paragraphs = read_document(item["text"])
        prepared.append((item, item.get("title") or title, paragraphs))
    rates, passes = speed(taxonomy, prepared)
    print(
        f"\nspeed on the real set ({len(prepared)} articles, longer): {max(rates):,.0f} "
        f"articles/s (one core, best of {REPEATS} runs of {passes} passes; median "
        f"{statistics.median(rates):,.0f}); first pass, every word new: "
        f"{cold_speed(taxonomy_file, prepared):,.0f} articles/s"
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=ROOT / "tests" / "data" / "tagging")
    parser.add_argument("--taxonomy", type=Path, default=ROOT / "config" / "taxonomy.yaml")
    parser.add_argument("--errors", action="store_true", help="list misclassified articles")
    parser.add_argument("--no-real", action="store_true", help="skip the real set")
    args = parser.parse_args()
    taxonomy = load_taxonomy(args.taxonomy)
    cases = load_cases(args.data)
    prepared = [(c, *article(c)) for c in cases]
    found = score(taxonomy, prepared)
    rates, passes = speed(taxonomy, prepared)
    print_report(len(cases), taxonomy.version, found, rates, passes)
    if args.errors:
        print()
        for row in sorted(found["errors"]):
            print("  ", *row)
    if not args.no_real:
        real_report(taxonomy, args.taxonomy, args.errors)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
