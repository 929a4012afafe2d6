"""Article extraction quality and speed on pages with a ground-truth article body.

    python benchmarks/extraction_quality.py --corpus ../shared/corpus/extraction \
        [../shared/corpus/extraction-more ...] [--limit N] [--repeat R] [--errors] [--json PATH]

The corpus directory holds ``ground-truth.json`` (sha256 → {"articleBody", "url"}) and
``html/<sha256>.html.gz`` (the scrapinghub/article-extraction-benchmark layout). Pages are
read at run time; nothing of them is written anywhere except scores keyed by hash.

Extractors compared in one run, interleaved page by page (the order rotates from page to
page so none always runs first), after one untimed warm-up pass over every page:

- ``tradewire``: ``workers.pipeline.page_to_extraction(bytes, "", url, min_words=80,
  fallback_title="")`` as the service runs it (decoding, trafilatura, cleaning, paragraph
  formatting and the refusal rules, with the service's ``min_article_words``); the body
  scored is ``"\\n".join(extraction.paragraphs)`` without the title line. A refused page
  (``RefusedArticleError``) scores as empty text and is listed with its reason.
- ``trafilatura defaults``: ``trafilatura.extract(bytes)``.
- ``trafilatura fast``: ``trafilatura.extract(bytes, fast=True, include_comments=False,
  include_tables=False)``.
- ``lxml parse only``: ``lxml.html.fromstring(bytes)``, a floor for time (not scored).

With several ``--corpus`` sets (the two shared real sets), the tables that follow the main
one give, per set and per source (``dataset``) and per language (``lang``) of the
ground truth, pages, refusals and F1 of tradewire and of bare trafilatura, then every refusal
with its reason, then the verdicts on the labelled pages of ``tests/data/refusal`` (non-article
pages refused with the right reason, articles kept).

Quality (main table): tokens are ``re.findall(r"\\w+", text.lower())``; per page, precision,
recall and F1 over token multisets (``Counter`` intersection); then the MEAN over pages of
per-page precision, of per-page recall and of per-page F1 (macro averages: every page weighs
the same whatever its length). Empty output against a non-empty truth scores 0/0/0.

The scrapinghub evaluator (``evaluate.py`` in that repository) scores differently: 4-token
shingles, case kept, counts normalised per page, and F1 as the harmonic mean of the mean
precision and the mean recall. That figure is printed too (second table) so numbers can be
set beside the ones published in its README.

Speed: ``time.perf_counter`` around the extraction call only; each page is timed ``--repeat``
times per extractor and its median kept; the table reports the median and 95th percentile of
those per-page times, and pages/s = pages / sum of per-page times (one core). Before every
timed call the LRU caches that are keyed by page text (trafilatura's ``line_processing`` and
``trim``, htmldate's date-string caches) are cleared, so a page is never faster because the
warm-up or another extractor just saw the same lines; caches of code, stoplists and
characters stay warm as in a long-running worker.
"""

from __future__ import annotations

import argparse
import gc
import json
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lxml.html
import trafilatura
import trafilatura.utils
from harness import DEFAULT_CORPUS, md_table, percentile
from scoring import Page, load_corpus, token_prf, tokens

from core.errors import RefusedArticleError
from workers.pipeline import page_to_extraction

OURS, DEFAULTS, FAST, LXML = (
    "tradewire",
    "trafilatura defaults",
    "trafilatura fast",
    "lxml parse only",
)


@dataclass(frozen=True)
class Extractor:
    name: str
    call: Callable[[Page], Any]  # the timed part
    to_text: (
        Callable[[Any], tuple[str, str]] | None
    )  # untimed: (body text, note); None = not scored


@dataclass
class Result:
    text: str = ""
    note: str = ""
    times: list[float] = field(default_factory=list)
    precision: float = 0.0
    recall: float = 0.0
    f1: float = 0.0
    shingles: tuple[float, float, float] = (0.0, 0.0, 0.0)  # normalised tp, fp, fn


# --- extractors ----------------------------------------------------------------------------


MIN_WORDS = 80  # the service's min_article_words
NO_URL = "https://example.invalid/article"  # what `tradewire extract` assumes


def _ours(page: Page) -> Any:
    try:
        return page_to_extraction(page.html, "", page.url or NO_URL, MIN_WORDS, "")
    except RefusedArticleError as err:
        return err


def _ours_text(result: Any) -> tuple[str, str]:
    if isinstance(result, RefusedArticleError):
        return "", f"refused: {result}"
    return "\n".join(result.paragraphs), ""


def _trafilatura_text(result: str | None) -> tuple[str, str]:
    return (result, "") if result else ("", "no output")


EXTRACTORS = (
    Extractor(OURS, _ours, _ours_text),
    Extractor(DEFAULTS, lambda page: trafilatura.extract(page.html), _trafilatura_text),
    Extractor(
        FAST,
        lambda page: trafilatura.extract(
            page.html, fast=True, include_comments=False, include_tables=False
        ),
        _trafilatura_text,
    ),
    Extractor(LXML, lambda page: lxml.html.fromstring(page.html), None),
)


def _text_caches() -> list[Any]:
    """LRU caches keyed by page text (see the module docstring); absent ones are skipped."""
    found = [trafilatura.utils.line_processing, trafilatura.utils.trim]
    try:
        from htmldate import extractors, validators

        for module, name in (
            (extractors, "try_date_expr"),
            (validators, "_parse_and_validate"),
            (validators, "filter_ymd_candidate"),
        ):
            found.append(getattr(module, name))
    except (ImportError, AttributeError):
        pass
    return [f for f in found if hasattr(f, "cache_clear")]


# --- scoring -------------------------------------------------------------------------------


_SH_TOKEN = re.compile(r"\w+", re.UNICODE)


def shingle_tp_fp_fn(truth: str, pred: str, n: int = 4) -> tuple[float, float, float]:
    """The scrapinghub evaluator's per-page counts: 4-token shingles, case kept, normalised."""

    def shingles(text: str) -> Counter[tuple[str, ...]]:
        toks = _SH_TOKEN.findall(text or "")
        grams = [tuple(toks[i : i + n]) for i in range(max(1, len(toks) - n + 1))]
        return Counter(g for g in grams if g)

    t, p = shingles(truth), shingles(pred)
    tp = float(sum((t & p).values()))
    fp = float(sum((p - t).values()))
    fn = float(sum((t - p).values()))
    s = tp + fp + fn
    return (tp / s, fp / s, fn / s) if s else (0.0, 0.0, 0.0)


def shingle_metrics(rows: list[tuple[float, float, float]]) -> tuple[float, float, float]:
    """F1, precision, recall as the scrapinghub evaluator aggregates them."""

    def prec(tp: float, fp: float, fn: float) -> float:
        return 1.0 if fp == fn == 0 else 0.0 if tp == fp == 0 else tp / (tp + fp)

    def rec(tp: float, fp: float, fn: float) -> float:
        return 1.0 if fp == fn == 0 else 0.0 if tp == fn == 0 else tp / (tp + fn)

    ps = [prec(*row) for row in rows if row[0] + row[1] > 0]
    rs = [rec(*row) for row in rows if row[0] + row[2] > 0]
    p = statistics.mean(ps) if ps else 0.0
    r = statistics.mean(rs) if rs else 0.0
    return (2 * p * r / (p + r) if p + r else 0.0), p, r


# --- running -------------------------------------------------------------------------------


def run(pages: list[Page], repeat: int) -> dict[str, list[Result]]:
    caches = _text_caches()
    for page in pages:  # warm-up: imports, lazy models, stoplists, compiled patterns
        for extractor in EXTRACTORS:
            extractor.call(page)
    results: dict[str, list[Result]] = {e.name: [Result() for _ in pages] for e in EXTRACTORS}
    n = len(EXTRACTORS)
    for i, page in enumerate(pages):
        gc.collect()
        order = [EXTRACTORS[(i + j) % n] for j in range(n)]
        for _ in range(repeat):
            for extractor in order:
                for cache in caches:
                    cache.cache_clear()
                start = time.perf_counter()
                output = extractor.call(page)
                elapsed = time.perf_counter() - start
                result = results[extractor.name][i]
                result.times.append(elapsed)
                if extractor.to_text is not None:
                    result.text, result.note = extractor.to_text(output)
        for extractor in EXTRACTORS:
            result = results[extractor.name][i]
            if extractor.to_text is not None:
                result.precision, result.recall, result.f1 = token_prf(page.truth, result.text)
                result.shingles = shingle_tp_fp_fn(page.truth, result.text)
    return results


def summarise(results: dict[str, list[Result]]) -> dict[str, dict[str, float | None]]:
    summary: dict[str, dict[str, float | None]] = {}
    for extractor in EXTRACTORS:
        rows = results[extractor.name]
        ms = [statistics.median(r.times) * 1000 for r in rows]
        scored = extractor.to_text is not None
        sh_f1, sh_p, sh_r = shingle_metrics([r.shingles for r in rows]) if scored else (0, 0, 0)
        summary[extractor.name] = {
            "f1": statistics.mean(r.f1 for r in rows) if scored else None,
            "precision": statistics.mean(r.precision for r in rows) if scored else None,
            "recall": statistics.mean(r.recall for r in rows) if scored else None,
            "median_ms": statistics.median(ms),
            "p95_ms": percentile(ms, 0.95),
            "pages_per_s": len(ms) / (sum(ms) / 1000),
            "empty_pages": sum(1 for r in rows if not r.text.strip()) if scored else None,
            "scrapinghub_f1": sh_f1 if scored else None,
            "scrapinghub_precision": sh_p if scored else None,
            "scrapinghub_recall": sh_r if scored else None,
        }
    return summary


def reason(result: Result, page: Page) -> str:
    if result.note:
        return result.note
    n_pred, n_true = len(tokens(result.text)), len(tokens(page.truth))
    if result.f1 == 0:
        return f"wrong text ({n_pred} tokens, none shared, for {n_true})"
    if result.precision >= result.recall:
        return f"missing text ({n_pred} tokens for {n_true})"
    return f"extra text ({n_pred} tokens for {n_true})"


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "—" if value is None else format(value, spec)


def print_tables(
    pages: list[Page], args: argparse.Namespace, summary: dict[str, Any]
) -> dict[str, Any]:
    """The token-level table, the ratios and the scrapinghub table; the ratios."""
    ours, fast, defaults = summary[OURS], summary[FAST], summary[DEFAULTS]
    ratio = float(ours["median_ms"] or 0) / float(fast["median_ms"] or 1)
    f1_vs_defaults = {
        name: float(summary[name]["f1"] or 0) - float(defaults["f1"] or 0) for name in (OURS, FAST)
    }
    print(
        f"extraction on {len(pages)} pages from {args.corpus} — trafilatura "
        f"{trafilatura.__version__}, {args.repeat} timed runs per page, one core"
    )
    print("token-level P/R/F1 (lowercased \\w+ multisets) per page, mean over pages")
    print()
    print("\n".join(md_table(
        ("extractor", "F1", "precision", "recall", "median ms/page", "p95 ms/page", "pages/s"),
        [(name, _fmt(s["f1"]), _fmt(s["precision"]), _fmt(s["recall"]), _fmt(s["median_ms"], ".1f"),
          _fmt(s["p95_ms"], ".1f"), _fmt(s["pages_per_s"], ".1f")) for name, s in summary.items()],
    )))  # fmt: skip
    print()
    print(f"tradewire median ms / trafilatura fast median ms: {ratio:.2f}x")
    for name, diff in f1_vs_defaults.items():
        print(f"F1 {name} minus trafilatura defaults: {diff:+.3f}")
    print()
    print("scrapinghub evaluate.py scoring (4-token shingles, case kept; F1 of mean P and mean R)")
    print()
    print("\n".join(md_table(
        ("extractor", "F1", "precision", "recall", "empty pages"),
        [(name, _fmt(s["scrapinghub_f1"]), _fmt(s["scrapinghub_precision"]),
          _fmt(s["scrapinghub_recall"]), _fmt(s["empty_pages"], "d"))
         for name, s in summary.items() if s["f1"] is not None],
    )))  # fmt: skip
    return {"median_ms_ratio_tradewire_to_fast": ratio, "f1_minus_defaults": f1_vs_defaults}


def print_worst(
    pages: list[Page], results: dict[str, list[Result]], worst: list[tuple[Page, Result]]
) -> None:
    print()
    print("worst pages for tradewire:")
    print()
    by_key = {p.key: i for i, p in enumerate(pages)}
    print("\n".join(md_table(
        ("page", "F1", "precision", "recall", "defaults F1", "reason"),
        [(page.key[:10], f"{r.f1:.3f}", f"{r.precision:.3f}", f"{r.recall:.3f}",
          f"{results[DEFAULTS][by_key[page.key]].f1:.3f}", reason(r, page)) for page, r in worst],
    )))  # fmt: skip


def _group_rows(
    set_names: list[str], pages: list[Page], results: dict[str, list[Result]]
) -> dict[tuple[str, str, str], list[int]]:
    """(set, "dataset"/"lang", value) → indexes of its pages; "all" for the whole set."""
    groups: dict[tuple[str, str, str], list[int]] = {}
    for i, (name, page) in enumerate(zip(set_names, pages, strict=True)):
        groups.setdefault((name, "dataset", "all"), []).append(i)
        for by in ("dataset", "lang"):
            value = str(page.meta.get(by, name if by == "dataset" else "en"))
            groups.setdefault((name, by, value), []).append(i)
    return groups


def print_groups(
    set_names: list[str], pages: list[Page], results: dict[str, list[Result]]
) -> list[dict[str, Any]]:
    """Per set, per source and per language: pages, refusals, F1 against bare trafilatura,
    and the median times of tradewire and trafilatura fast on those same pages."""
    rows: list[dict[str, Any]] = []
    for (name, by, value), idx in sorted(_group_rows(set_names, pages, results).items()):
        ours = [results[OURS][i] for i in idx]
        f1 = {n: statistics.mean(results[n][i].f1 for i in idx) for n in (OURS, DEFAULTS, FAST)}
        ms = {n: statistics.median(statistics.median(results[n][i].times) for i in idx)
              for n in (OURS, FAST)}  # fmt: skip
        rows.append({
            "set": name, "by": by, "group": value, "pages": len(idx),
            "refused": sum(r.note.startswith("refused") for r in ours),
            "f1": f1[OURS], "f1_defaults": f1[DEFAULTS], "f1_fast": f1[FAST],
            "time_ratio_to_fast": ms[OURS] / ms[FAST] if ms[FAST] else 0.0,
        })  # fmt: skip
    print()
    print("per set, source (dataset) and language (refused pages score as empty text):")
    print()
    print("\n".join(md_table(
        ("set", "by", "group", "pages", "refused", "tradewire F1", "defaults F1", "minus defaults",
         "fast F1", "median ms ratio to fast"),
        [(r["set"], r["by"], r["group"], r["pages"], r["refused"], f"{r['f1']:.3f}",
          f"{r['f1_defaults']:.3f}", f"{r['f1'] - r['f1_defaults']:+.3f}", f"{r['f1_fast']:.3f}",
          f"{r['time_ratio_to_fast']:.2f}x") for r in rows],
    )))  # fmt: skip
    return rows


def print_refusals(set_names: list[str], pages: list[Page], ours: list[Result]) -> None:
    refused = [(n, p, r) for n, p, r in zip(set_names, pages, ours, strict=True)
               if r.note.startswith("refused")]  # fmt: skip
    print()
    print(f"refused pages with gold article text: {len(refused)} of {len(pages)} "
          f"({len(refused) / len(pages):.1%})")  # fmt: skip
    for name, page, result in refused:
        source = page.meta.get("dataset", name)
        print(f"- {name} {source} {page.key[:12]} {page.url or '(no url)'}: {result.note}")


LABELLED = Path(__file__).resolve().parent.parent / "tests" / "data" / "refusal"


def print_labelled() -> dict[str, Any]:
    """The hand-written labelled pages: non-articles refused with the right reason, and
    articles kept. The same pages are asserted one by one in tests/unit/test_refusal.py."""
    labels = json.loads((LABELLED / "labels.json").read_text(encoding="utf-8"))
    verdicts = {}
    for name, label in labels.items():
        if name.startswith("_"):
            continue
        page = Page(
            name, f"https://site.example/news/{name}", (LABELLED / name).read_bytes(), "", {}
        )
        result = _ours(page)
        verdicts[name] = (label, result.reason if isinstance(result, RefusedArticleError) else None)
    walls = [v for v in verdicts.values() if v[0] is not None]
    articles = [v for v in verdicts.values() if v[0] is None]
    right = sum(want == got for want, got in walls)
    kept = sum(got is None for _, got in articles)
    print()
    print(f"labelled non-article pages refused with the right reason: {right} of {len(walls)} "
          f"({right / len(walls):.0%}); labelled articles kept: {kept} of {len(articles)}")  # fmt: skip
    for name, (want, got) in sorted(verdicts.items()):
        if want != got:
            print(f"- {name}: expected {want}, got {got}")
    return {"non_articles_right": right, "non_articles": len(walls), "articles_kept": kept,
            "articles": len(articles)}  # fmt: skip


def payload(args: argparse.Namespace, pages: list[Page], results: dict[str, list[Result]],
            summary: dict[str, Any], ratios: dict[str, Any], worst: list[tuple[Page, Result]]) -> dict[str, Any]:  # fmt: skip
    return {
        "corpus": str(args.corpus),
        "pages": len(pages),
        "repeat": args.repeat,
        "trafilatura": trafilatura.__version__,
        "averaging": "token P/R/F1 per page, mean over pages",
        "extractors": summary,
        **ratios,
        "per_page": [
            {
                "page": page.key,
                **{
                    name: {
                        "f1": rows[i].f1 if summary[name]["f1"] is not None else None,
                        "ms": statistics.median(rows[i].times) * 1000,
                    }
                    for name, rows in results.items()
                },
            }
            for i, page in enumerate(pages)
        ],
        "worst_tradewire": [
            {"page": page.key[:10], "f1": r.f1, "reason": reason(r, page)} for page, r in worst
        ],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, nargs="+", default=[DEFAULT_CORPUS])
    parser.add_argument("--limit", type=int, default=None, help="first N pages by hash")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per page (median kept)")
    parser.add_argument("--errors", action="store_true", help="the 10 worst pages for tradewire")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()

    sets = [
        (corpus.name, page) for corpus in args.corpus for page in load_corpus(corpus, args.limit)
    ]
    pages = [page for _, page in sets]
    args.corpus = ", ".join(str(c) for c in args.corpus)
    if not pages:
        print(f"no pages in {args.corpus}", file=sys.stderr)
        return 1
    results = run(pages, max(1, args.repeat))
    summary = summarise(results)
    ratios = print_tables(pages, args, summary)
    groups = print_groups([name for name, _ in sets], pages, results)
    print_refusals([name for name, _ in sets], pages, results[OURS])
    labelled = print_labelled()
    worst = sorted(zip(pages, results[OURS], strict=True), key=lambda pr: pr[1].f1)[:10]
    if args.errors:
        print_worst(pages, results, worst)
    if args.json:
        data = payload(args, pages, results, summary, ratios, worst)
        data.update(groups=groups, labelled=labelled)
        args.json.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
