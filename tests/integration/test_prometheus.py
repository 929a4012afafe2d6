"""A real Prometheus server scrapes a real `tradewire run` working through a local site; every
panel of deploy/grafana/tradewire.json and every alert of deploy/prometheus/alerts.yml must
return data through Prometheus's HTTP API: no panel says "No data" on a working pipeline.

Alerts compare a base series with a threshold (`BASE > 600`, or several such terms joined by
`and`, as alerts.yml promises). On a healthy pipeline the comparison rightly filters every
series away, so the test evaluates each BASE without its comparison and requires finite
values; the whole rules must also evaluate without error, and none may be pending or firing.

Prometheus counts no increase into a series' first sample, so the site holds its feeds back
until Prometheus has scraped the idle service once: every rate then sees the run's work.
`tradewire status --watch` is then run against the same pipeline and must show the figures
Prometheus has."""

from __future__ import annotations

import json
import math
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import ROOT, free_port
from tests.processes import answers_200, run_env, start_run, wait_until
from tests.reliability.site import Site, serve

PROMETHEUS = Path("/usr/bin/prometheus")
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "tradewire.json"
# Grafana's range for rates: the whole run falls in one minute's window here.
RATE_INTERVAL = "1m"
ARTICLES = 10


class GatedSite(Site):
    """Feeds answer only once ``gate`` is set (articles at once)."""

    def __init__(self) -> None:
        super().__init__(copies=1, feeds=2)
        self.gate = threading.Event()

    def respond(self, path: str) -> tuple[int, str, bytes]:
        if path.startswith("/feed/"):
            self.gate.wait(60)
        return super().respond(path)


def dashboard_exprs() -> dict[str, str]:
    """Each panel target's expression, Grafana's variables as Grafana would fill them."""
    exprs = {}
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"].replace("$__rate_interval", RATE_INTERVAL)
            assert "$" not in expr, f"a variable the test does not fill: {expr}"
            exprs[f"{panel['title']} [{target['refId']}]"] = expr
    return exprs


_COMPARISON = re.compile(r"\s*(>=|<=|==|!=|>|<)\s*[-+]?[0-9.]+(e[-+]?\d+)?\s*$")


def base_exprs(expr: str) -> list[str]:
    """``A > 1 and B < 2`` → ``[A, B]``: split on top-level ``and``, drop each comparison."""
    terms, depth, start = [], 0, 0
    for i, char in enumerate(expr):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0 and expr.startswith(" and ", i):
            terms.append(expr[start:i])
            start = i + len(" and ")
    terms.append(expr[start:])
    bases = []
    for term in terms:
        base, found = _COMPARISON.subn("", term.strip())
        assert found == 1, f"not `BASE OP NUMBER`: {term}"
        bases.append(base)
    return bases


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_base_exprs_drop_only_the_comparisons() -> None:
    assert base_exprs("max by (queue) (deriv(x[15m])) > 0 and max by (queue) (x) > 100") == [
        "max by (queue) (deriv(x[15m]))",
        "max by (queue) (x)",
    ]
    assert base_exprs('up{job=~"t.*"} == 0') == ['up{job=~"t.*"}']
    with pytest.raises(AssertionError):
        base_exprs("absent(x)")


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """A Prometheus (its own storage, 1 s scrapes and evaluations) scraping the health port
    it returns; yields its base URL and that port."""
    assert PROMETHEUS.exists(), "prometheus is missing: apt-get install prometheus (.ci/run)"
    target = free_port()
    port = next(p for p in iter(free_port, None) if p != target)
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [
            {"job_name": "tradewire", "static_configs": [{"targets": [f"127.0.0.1:{target}"]}]}
        ],
    }))  # fmt: skip
    with (tmp_path / "prometheus.log").open("wb") as log:
        proc = subprocess.Popen(
            [str(PROMETHEUS), f"--config.file={config}",
             f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        # Until then the API answers 503 in plain text.
        assert wait_until(lambda: _ready(base), 30), (tmp_path / "prometheus.log").read_text()
        yield base, target
    finally:
        proc.terminate()
        proc.wait(20)


def _ready(base: str) -> bool:
    return answers_200(f"{base}/-/ready")


def query(base: str, expr: str, at: float | None = None) -> list[dict[str, Any]]:
    params: dict[str, Any] = {"query": expr} | ({"time": at} if at is not None else {})
    reply = httpx.get(f"{base}/api/v1/query", params=params, timeout=10).json()
    assert reply["status"] == "success", (expr, reply)
    return list(reply["data"]["result"])


def value(base: str, expr: str) -> float | None:
    try:
        result = query(base, expr)
    except httpx.HTTPError:
        return None
    return float(result[0]["value"][1]) if result else None


def holds(base: str, condition: str) -> bool:
    return value(base, condition) is not None


@pytest.mark.timeout(180)
def test_every_panel_and_alert_has_data_on_a_working_pipeline(
    prometheus: tuple[str, int], tmp_path: Path
) -> None:
    base, health_port = prometheus
    with serve(GatedSite()) as site:
        assert isinstance(site, GatedSite)
        feeds = tmp_path / "feeds.yaml"
        feeds.write_text(yaml.safe_dump({"feeds": [{"url": u} for u in site.feed_urls()]}))
        env = run_env(tmp_path, feeds, health_port=str(health_port), workers="1")
        proc = start_run(env, tmp_path, tmp_path / "run.log")
        try:
            # Scraped once while idle: the zeros set at start are every rate's first sample.
            idle = 'sum(tradewire_articles_total{status="extracted"}) == 0 and on() sum(up) == 1'
            assert wait_until(lambda: holds(base, idle), 60, every=0.5), _logs(tmp_path)
            site.gate.set()
            done = (
                f'sum(tradewire_articles_total{{status="extracted"}}) >= {ARTICLES} '
                "and on() sum(tradewire_queue_depth) == 0 and on() sum(tradewire_events_total) > 0"
                # The poller's beat and last success after the polls, not the +Inf of before.
                " and on() max(tradewire_poller_heartbeat_age_seconds) < 60"
                " and on() max(tradewire_feeds_last_success_age_seconds) < 60"
            )
            assert wait_until(lambda: holds(base, done), 60, every=0.5), _logs(tmp_path)
            at = _after_scrapes(base, 3)
            _assert_panels_have_data(base, at)
            _assert_alerts_have_data_and_are_quiet(base, at)
            _assert_watch_shows_the_same_figures(base, env, tmp_path)
        finally:
            site.gate.set()
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _after_scrapes(base: str, count: int) -> float:
    """The time of a successful scrape ``count`` or more scrapes (and rule evaluations) from
    now, with the scrapes of the 5 s before it successful too. Every query is evaluated at
    that moment: a scrape that failed later (a loaded machine, a one-second timeout) cannot
    make a series stale under the test."""
    start = value(base, "timestamp(up)")
    assert start is not None
    # The last 5 s of scrapes all succeeded: rules evaluated meanwhile saw the target up.
    good = "timestamp(up == 1) and on() min_over_time(up[5s]) == 1"
    at = wait_until(lambda: (t := value(base, good)) and t >= start + count and t, 30)
    assert at, "no successful scrape"
    return float(at)


def _assert_panels_have_data(base: str, at: float) -> None:
    empty = {}
    for title, expr in dashboard_exprs().items():
        samples = [float(s["value"][1]) for s in query(base, expr, at)]
        if not samples or not all(math.isfinite(v) for v in samples):
            empty[title] = (expr, samples)
    assert not empty, empty


def _assert_alerts_have_data_and_are_quiet(base: str, at: float) -> None:
    empty = {}
    for rule in alert_rules():
        for expr in base_exprs(rule["expr"]):
            samples = [float(s["value"][1]) for s in query(base, expr, at)]
            if not samples or not all(math.isfinite(v) for v in samples):
                empty[rule["alert"]] = (expr, samples)
    assert not empty, empty
    reply = httpx.get(f"{base}/api/v1/rules", timeout=10).json()
    loaded = [rule for group in reply["data"]["groups"] for rule in group["rules"]]
    assert {r["name"] for r in loaded} == {r["alert"] for r in alert_rules()}
    for rule in loaded:
        assert rule["health"] == "ok", rule  # evaluated without error
    # A healthy run pages nobody: no alert pending or firing (Prometheus's ALERTS series).
    assert query(base, "ALERTS", at) == []


def _assert_watch_shows_the_same_figures(base: str, env: dict[str, str], cwd: Path) -> None:
    """`tradewire status --watch`, for those without Grafana, against the same run."""
    done = subprocess.run(
        [sys.executable, "-m", "service", "status", "--watch", "--count", "1"],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    emitted = value(base, 'sum(tradewire_events_total{outcome="emitted"})')
    stream = value(base, "max(tradewire_stream_length)")
    assert emitted and stream
    assert f"extracted {ARTICLES}" in done.stdout
    assert f"emitted {emitted:.0f}" in done.stdout
    assert f"events on stream  │ {stream:.0f}" in done.stdout
    assert "feed polls        │ 200 2" in done.stdout
    assert "p99" in done.stdout and "redis             │ up, memory" in done.stdout


def _logs(tmp_path: Path) -> str:
    return "\n".join(
        f"--- {name}\n{(tmp_path / name).read_text(errors='replace')[-3000:]}"
        for name in ("run.log", "prometheus.log")
        if (tmp_path / name).exists()
    )
