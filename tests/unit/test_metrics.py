"""Metric definitions that the multiprocess file clean-up relies on."""

from __future__ import annotations

from prometheus_client import Gauge

from core.metrics import REGISTRY


def test_every_gauge_is_live() -> None:
    """A dead process's files are folded away only for counters, histograms and summaries,
    and dropped for live gauges; a gauge of another mode would leave a file per recycle."""
    gauges = [c for c in REGISTRY._collector_to_names if isinstance(c, Gauge)]
    assert gauges
    assert all(g._multiprocess_mode.startswith("live") for g in gauges)
