"""What the quality benchmarks share and that needs no tradewire code: the pages of an
extraction corpus, token-level scoring and Markdown tables.

Kept free of project imports so ``real_sets.py --code DIR`` can score another checkout's
code (an older commit) with exactly the same corpus reader and metric.
"""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Page:
    key: str
    url: str
    html: bytes
    truth: str
    meta: dict[str, Any]  # the ground-truth entry's other fields (dataset, lang, source)


def load_corpus(corpus: Path, limit: int | None) -> list[Page]:
    truth = json.loads((corpus / "ground-truth.json").read_text(encoding="utf-8"))
    pages = []
    for key in sorted(truth)[:limit]:
        with gzip.open(corpus / "html" / f"{key}.html.gz", "rb") as f:
            html = f.read()
        entry = truth[key]
        meta = {k: v for k, v in entry.items() if k not in ("url", "articleBody")}
        pages.append(Page(key, entry.get("url", ""), html, entry.get("articleBody", ""), meta))
    return pages


def tokens(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def token_prf(truth: str, pred: str) -> tuple[float, float, float]:
    """Precision, recall and F1 over token multisets of one page."""
    true_counts, pred_counts = Counter(tokens(truth)), Counter(tokens(pred))
    n_true, n_pred = sum(true_counts.values()), sum(pred_counts.values())
    if n_true == 0 and n_pred == 0:
        return 1.0, 1.0, 1.0
    tp = sum((true_counts & pred_counts).values())
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_true if n_true else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def md_table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str = "") -> list[str]:
    """A Markdown table; ``align`` holds one of "l"/"r" per column (default: all "---")."""
    rule = ["---:" if a == "r" else "---" for a in align] or ["---"] * len(header)
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines
