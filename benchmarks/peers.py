"""Peers: newspaper4k and readability-lxml beside our extract step and trafilatura defaults.

    .venv/bin/python benchmarks/peers.py [--quick]

On the 88 pages (20 with ``--quick``), one process, interleaved page by page after a
warm-up: pages/s and token F1 as ``benchmarks/extraction_quality.py`` scores it. The peers
are optional ("not installed" rows otherwise); they are looked for on ``sys.path`` and in
``.venv/bench-peers`` (``make bench-peers``, which ``make bench`` runs first: the pinned
versions installed there with ``pip install --target`` because installing them into the venv
itself would downgrade python-dateutil and add chardet, which feedparser then uses).
"""

from __future__ import annotations

import contextlib
import gc
import importlib.metadata
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import extraction_quality as eq
import harness
import trafilatura
from harness import PEERS_DIR, Goal, fmt, md_table, median

from workers.extract import decode_html

log = harness.logger("peers")
Extractor = tuple[str, str, Callable[[Any], str] | None]


def ours(page: Any) -> str:
    """Our extract step, as extraction_quality scores it."""
    return str(eq._ours_text(eq._ours(page))[0])


def newspaper_extractor() -> Extractor:
    try:
        from newspaper import Article as NewsArticle
    except Exception:
        return ("newspaper4k", "not installed", None)

    def newspaper(page: Any) -> str:
        article = NewsArticle(page.url or "https://example.com/", fetch_images=False)
        article.download(input_html=decode_html(page.html))
        article.parse()
        return str(article.text or "")

    return ("newspaper4k", importlib.metadata.version("newspaper4k"), newspaper)


def readability_extractor() -> Extractor:
    try:
        import lxml.html
        from readability import Document
    except Exception:
        return ("readability-lxml", "not installed", None)

    def readability(page: Any) -> str:
        summary = Document(page.html).summary(html_partial=True)
        return str(lxml.html.fromstring(summary).text_content()) if summary.strip() else ""

    return ("readability-lxml", importlib.metadata.version("readability-lxml"), readability)


def extractors() -> list[Extractor]:
    if PEERS_DIR.is_dir() and str(PEERS_DIR) not in sys.path:
        sys.path.append(str(PEERS_DIR))  # after the venv: its own packages win
    return [
        ("tradewire (page_to_extraction)", "", ours),
        ("trafilatura.extract defaults", trafilatura.__version__,
         lambda p: trafilatura.extract(p.html) or ""),
        newspaper_extractor(),
        readability_extractor(),
    ]  # fmt: skip


def interleaved(
    pages: list[Any], live: list[tuple[str, Callable[[Any], str]]]
) -> dict[str, dict[str, Any]]:
    """Each page through every extractor (order rotating), after a warm-up on 8 pages:
    seconds, token F1 and empty output per page; a peer failing on a page scores it empty."""
    for page in pages[:8]:  # warm-up: imports, lazy models
        for _, fn in live:
            with contextlib.suppress(Exception):
                fn(page)
    out = {name: {"times": [], "f1": [], "empty": 0, "errors": 0} for name, _ in live}
    for i, page in enumerate(pages):
        gc.collect()
        for name, fn in live[i % len(live) :] + live[: i % len(live)]:
            harness.clear_text_caches()
            start = time.perf_counter()
            try:
                text = fn(page)
            except Exception:
                text = ""
                out[name]["errors"] += 1
            out[name]["times"].append(time.perf_counter() - start)
            out[name]["f1"].append(eq.token_prf(page.truth, text)[2])
            out[name]["empty"] += not text.strip()
    return out


def peers(pages: list[Any]) -> list[dict[str, Any]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = extractors()
        live = [(name, fn) for name, _, fn in found if fn is not None]
        measured = interleaved(pages, live)
    rows = []
    for name, version, fn in found:
        if fn is None:
            rows.append({"extractor": name, "version": version, "installed": False})
            continue
        m = measured[name]
        rows.append({
            "extractor": name, "version": version, "installed": True, "pages": len(pages),
            "pages_per_s": len(pages) / sum(m["times"]),
            "median_ms": median(m["times"]) * 1000,  # type: ignore[operator]
            "f1": statistics.mean(m["f1"]), "empty_pages": m["empty"], "errors": m["errors"],
        })  # fmt: skip
    return rows


def render(data: dict[str, Any]) -> tuple[list[str], list[Goal]]:
    pr = data.get("peers")
    if not pr:
        return [], []
    rows = [
        (r["extractor"], r["version"] or "—", fmt(r["pages_per_s"]), fmt(r["median_ms"]),
         fmt(r["f1"], ".3f"), f"{r['empty_pages']} ({r['errors']})")
        if r["installed"]
        else (r["extractor"], "not installed", "—", "—", "—", "—")
        for r in pr
    ]  # fmt: skip
    header = ("extractor", "version", "pages/s (1 core)", "median ms/page", "token F1",
              "empty pages (of which errors)")  # fmt: skip
    out = [
        f"## 2. Against the peers ({pr[0].get('pages', '?')} pages, one process, interleaved, token F1 as extraction_quality.py)",
        "",
        *md_table(header, rows),
        "",
        "Peers are installed, at the versions pinned in pyproject.toml's `bench` extra, into "
        "`.venv/bench-peers` by `make bench-peers` (which `make bench` runs first).",
        "",
    ]
    return out, goals(pr, data.get("throughput"))


def goals(pr: list[dict[str, Any]], tp: dict[str, Any] | None) -> list[Goal]:
    """The whole pipeline's CPU per article (all its processes) against each peer's
    extraction alone in one busy process: articles per CPU-second both."""
    ours_row = next(
        (r for r in pr if r["extractor"].startswith("tradewire") and r["installed"]), None
    )
    if not tp or not ours_row:
        return []
    per_cpu_s = 1000 / tp["summary"]["pipeline"]["median_cpu_ms_per_article"]
    return [
        (f"full pipeline vs {r['extractor']} extraction alone: articles per CPU-second; F1",
         "faster, higher F1",
         f"{per_cpu_s:.1f} vs {r['pages_per_s']:.1f}; {ours_row['f1']:.3f} vs {r['f1']:.3f}",
         per_cpu_s > r["pages_per_s"] and ours_row["f1"] > r["f1"])
        for r in pr
        if r["installed"] and not r["extractor"].startswith(("tradewire", "trafilatura"))
    ]  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    args = harness.pipeline_args(harness.pipeline_parser(__doc__.split("\n")[0]), argv)

    def body() -> None:
        pages = harness.load_pages(args.corpus)
        data = {"peers": peers(pages if not args.quick else pages[:20])}
        print("\n".join(render(data)[0]))

    return harness.run_main(log, body)


if __name__ == "__main__":
    raise SystemExit(main())
