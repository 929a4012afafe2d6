"""Extraction and tagging on the real development sets, per source and per language.

    .venv/bin/python benchmarks/real_sets.py [--code DIR] [--json PATH] [--compare OLD.json]
        [--limit N] [--no-baseline]

Reads ``../shared/corpus/extraction``, ``../shared/corpus/extraction-more`` (pages with gold
text) and ``../shared/corpus/tagging/real_dev.jsonl`` (hand-labelled articles) at run time.

- Extraction, as production runs it: ``page_to_extraction`` with refusals on and the
  service's ``min_article_words`` (80); a refused page scores as empty text. Beside it, bare
  ``trafilatura.extract``. Token F1 per page (``scoring.token_prf``), macro-averaged per
  dataset and per language.
- Tagging: ``tag_document`` with the checkout's ``config/taxonomy.yaml`` against ``label``
  (null labels left out): precision, recall and false-positive rate per language and kind.

``--code DIR`` scores another checkout's code (e.g. an older commit in a git worktree) with
this same reader and metric; ``--json`` keeps every page's and article's result, and
``--compare OLD.json`` counts the pages whose text and the articles whose verdict differ.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
SHARED = ROOT.parent / "shared" / "corpus"
EXTRACTION_SETS = (SHARED / "extraction", SHARED / "extraction-more")
TAGGING_SET = SHARED / "tagging" / "real_dev.jsonl"
MIN_WORDS = 80  # the service's min_article_words
NO_URL = "https://example.invalid/article"  # what `tradewire extract` assumes


def extract_page(page_to_extraction: Any, html: bytes, url: str) -> tuple[str, str]:
    """(body text, refusal reason or "") as the extract job would see the page."""
    try:
        extraction = page_to_extraction(html, "", url or NO_URL, MIN_WORDS, "")
    except Exception as exc:  # the refusal type lives in a different module per commit
        if type(exc).__name__ != "RefusedArticleError":
            raise
        return "", str(getattr(exc, "reason", "refused"))
    return "\n".join(extraction.paragraphs), ""


def score_extraction(code: Any, limit: int | None, baseline: bool) -> list[dict[str, Any]]:
    from scoring import load_corpus, token_prf

    rows = []
    for corpus in EXTRACTION_SETS:
        for page in load_corpus(corpus, limit):
            text, refused = extract_page(code.page_to_extraction, page.html, page.url)
            row = {
                "set": corpus.name, "key": page.key, "refused": refused,
                "dataset": page.meta.get("dataset", corpus.name),
                "lang": page.meta.get("lang", "en"),
                "f1": token_prf(page.truth, text)[2],
                "text_sha": hashlib.sha256(text.encode()).hexdigest()[:16],
            }  # fmt: skip
            if baseline:
                import trafilatura

                row["f1_trafilatura"] = token_prf(page.truth, trafilatura.extract(page.html) or "")[
                    2
                ]
            rows.append(row)
    return rows


def score_tagging(code: Any, taxonomy_file: Path) -> list[dict[str, Any]]:
    taxonomy = code.load_taxonomy(taxonomy_file)
    rows = []
    for line in TAGGING_SET.read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        if item.get("label") is None:
            continue  # genuinely unsure: out of P/R (the set's README)
        tags = code.tag_document(taxonomy, item["text"], item.get("title", ""))
        rows.append({
            "id": item["id"], "lang": item.get("lang", "?"), "kind": item.get("kind", "?"),
            "label": bool(item["label"]), "predicted": tags.us_china_trade, "score": tags.score,
        })  # fmt: skip
    return rows


def extraction_table(rows: list[dict[str, Any]], by: str) -> list[str]:
    from scoring import md_table

    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row["set"], row[by])].append(row)
        groups[(row["set"], "all")].append(row)
    table = []
    for (name, group), members in sorted(groups.items()):
        traf = [r["f1_trafilatura"] for r in members if "f1_trafilatura" in r]
        table.append((
            name, group, len(members), sum(bool(r["refused"]) for r in members),
            f"{statistics.mean(r['f1'] for r in members):.3f}",
            f"{statistics.mean(traf):.3f}" if traf else "–",
        ))  # fmt: skip
    header = ("set", by, "pages", "refused", "tradewire F1", "trafilatura F1")
    return md_table(header, table, "llrrrr")


def tagging_table(rows: list[dict[str, Any]], by: str) -> list[str]:
    from scoring import md_table

    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[row[by]].append(row)
        groups["all"].append(row)
    table = []
    for group, members in sorted(groups.items()):
        tp = sum(r["label"] and r["predicted"] for r in members)
        fp = sum(not r["label"] and r["predicted"] for r in members)
        fn = sum(r["label"] and not r["predicted"] for r in members)
        negatives = sum(not r["label"] for r in members)
        precision = f"{tp / (tp + fp):.3f}" if tp + fp else "–"
        recall = f"{tp / (tp + fn):.3f}" if tp + fn else "–"
        fp_rate = f"{fp / negatives:.3f}" if negatives else "–"
        table.append((group, len(members), tp, fp, fn, precision, recall, fp_rate))
    header = (by, "articles", "TP", "FP", "FN", "precision", "recall", "FP rate")
    return md_table(header, table, "lrrrrrrr")


def compare(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """How many pages' texts and articles' verdicts differ between two runs."""
    old_pages = {(r["set"], r["key"]): r for r in old["extraction"]}
    old_tags = {r["id"]: r for r in old["tagging"]}
    changed_pages = [
        r for r in new["extraction"]
        if (old_row := old_pages.get((r["set"], r["key"]))) is None
        or (old_row["text_sha"], old_row["refused"]) != (r["text_sha"], r["refused"])
    ]  # fmt: skip
    changed_tags = [
        r for r in new["tagging"]
        if (old_row := old_tags.get(r["id"])) is None
        or (old_row["predicted"], old_row["score"]) != (r["predicted"], r["score"])
    ]  # fmt: skip
    return [
        f"pages whose text or refusal differs from {old['code']}: "
        f"{len(changed_pages)} of {len(new['extraction'])}",
        f"articles whose verdict or score differs: {len(changed_tags)} of {len(new['tagging'])}",
    ]


def load_code(code_dir: Path) -> Any:
    """The checkout's extraction and tagging entry points (same names on every commit)."""
    for path in (str(code_dir), str(BENCH_DIR)):
        sys.path.insert(0, path)
    from workers import pipeline, tagging

    return argparse.Namespace(
        page_to_extraction=pipeline.page_to_extraction,
        tag_document=pipeline.tag_document,
        load_taxonomy=tagging.load_taxonomy,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--code", type=Path, default=ROOT, help="the checkout whose code runs")
    parser.add_argument("--json", type=Path, default=None, help="every page's and article's result")
    parser.add_argument("--compare", type=Path, default=None, help="an earlier --json to diff")
    parser.add_argument("--limit", type=int, default=None, help="first N pages of each set")
    parser.add_argument("--no-baseline", action="store_true", help="skip bare trafilatura")
    args = parser.parse_args()
    code = load_code(args.code.resolve())
    result = {
        "code": str(args.code),
        "extraction": score_extraction(code, args.limit, not args.no_baseline),
        "tagging": score_tagging(code, args.code / "config" / "taxonomy.yaml"),
    }
    for lines in (
        extraction_table(result["extraction"], "dataset"),
        extraction_table(result["extraction"], "lang"),
        tagging_table(result["tagging"], "lang"),
        tagging_table(result["tagging"], "kind"),
    ):
        print("\n".join(lines) + "\n")
    print(
        "Tagging figures above are in-sample: the taxonomy's weights are fitted on this set. "
        "The cross-validated (held-out) figures: python benchmarks/fit_tagger.py\n"
    )
    if args.compare:
        print("\n".join(compare(json.loads(args.compare.read_text()), result)))
    if args.json:
        args.json.write_text(json.dumps(result, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
