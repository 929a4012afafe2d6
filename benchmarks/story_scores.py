"""Clustering scores (no project imports): pairwise and BCubed precision, recall and F1
over a gold and a predicted labelling of the same items."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def pairwise(gold: Mapping[str, str], pred: Mapping[str, str]) -> tuple[float, float, float]:
    """Precision, recall, F1 over unordered item pairs put in one cluster."""
    items = sorted(gold)
    both = Counter((gold[i], pred[i]) for i in items)
    same_pred = Counter(pred[i] for i in items)
    same_gold = Counter(gold[i] for i in items)

    def pairs(counts: Counter[object]) -> int:
        return sum(n * (n - 1) // 2 for n in counts.values())

    tp, pp, gp = pairs(both), pairs(same_pred), pairs(same_gold)  # type: ignore[arg-type]
    p = tp / pp if pp else 1.0
    r = tp / gp if gp else 1.0
    return p, r, _f1(p, r)


def bcubed(gold: Mapping[str, str], pred: Mapping[str, str]) -> tuple[float, float, float]:
    items = sorted(gold)
    both = Counter((gold[i], pred[i]) for i in items)
    same_pred = Counter(pred[i] for i in items)
    same_gold = Counter(gold[i] for i in items)
    p = sum(both[(gold[i], pred[i])] / same_pred[pred[i]] for i in items) / len(items)
    r = sum(both[(gold[i], pred[i])] / same_gold[gold[i]] for i in items) / len(items)
    return p, r, _f1(p, r)


def pairwise_where(
    gold: Mapping[str, str], pred: Mapping[str, str], keep: Callable[[str, str], bool]
) -> tuple[float, float, float, int, int]:
    """Pairwise precision, recall and F1 over the item pairs ``keep`` accepts (pairs within
    one source, across two languages...), with the numbers of gold and predicted pairs."""
    items = sorted(gold)
    tp = gp = pp = 0
    for i, a in enumerate(items):
        for b in items[i + 1 :]:
            if not keep(a, b):
                continue
            same_gold, same_pred = gold[a] == gold[b], pred[a] == pred[b]
            gp += same_gold
            pp += same_pred
            tp += same_gold and same_pred
    p = tp / pp if pp else 1.0
    r = tp / gp if gp else 1.0
    return p, r, _f1(p, r), gp, pp
