"""The shipped alert rules, Prometheus config and Grafana dashboard, checked by the real tools.

promtool (Debian package ``prometheus``, installed by .ci/run) checks the rules and the
config, and runs deploy/prometheus/alerts_test.yml: for each alert a history that must fire
it and one that must not. A missing promtool fails these tests rather than skipping them."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
GRAFANA_DIR = ROOT / "deploy" / "grafana"


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    assert Path(promtool).exists(), "promtool is missing: apt-get install prometheus (.ci/run)"
    return subprocess.run(
        [promtool, *args], cwd=PROMETHEUS_DIR, capture_output=True, text=True, timeout=120
    )


def test_rules_are_valid() -> None:
    proc = _promtool("check", "rules", "alerts.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    groups = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())["groups"]
    assert f"SUCCESS: {sum(len(g['rules']) for g in groups)} rules found" in proc.stdout


def test_rules_fire_on_the_histories_in_their_unit_tests() -> None:
    proc = _promtool("test", "rules", "alerts_test.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    rules = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    cases: dict[str, list[bool]] = {name: [] for name in alerts}
    for test in yaml.safe_load((PROMETHEUS_DIR / "alerts_test.yml").read_text())["tests"]:
        for case in test["alert_rule_test"]:
            cases[case["alertname"]].append(bool(case["exp_alerts"]))
    for name, fired in cases.items():
        assert True in fired and False in fired, name


def test_prometheus_config_is_valid_and_scrapes_the_health_port() -> None:
    proc = _promtool("check", "config", "prometheus.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"tradewire-poller", "tradewire-worker"}
    assert jobs["tradewire-poller"]["static_configs"][0]["targets"] == ["poller:8080"]
    assert jobs["tradewire-worker"]["dns_sd_configs"][0]["port"] == 8080


def _dashboard() -> dict[str, Any]:
    return dict(json.loads((GRAFANA_DIR / "tradewire.json").read_text()))


def test_dashboard_panels_use_the_provisioned_datasource() -> None:
    provisioned = yaml.safe_load(
        (GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    uid = provisioned["datasources"][0]["uid"]
    panels = [p for p in _dashboard()["panels"] if p["type"] != "row"]
    assert len(panels) >= 15
    for panel in panels:
        assert panel["datasource"]["uid"] == uid, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid and target["expr"], panel["title"]


def test_dashboard_covers_what_the_issue_asks_for() -> None:
    exprs = " ".join(
        t["expr"] for p in _dashboard()["panels"] if p["type"] != "row" for t in p["targets"]
    )
    for metric in (
        "tradewire_feed_polls_total", "tradewire_articles_total", "tradewire_events_total",
        "tradewire_queue_depth", "tradewire_event_latency_seconds_bucket",
        "tradewire_feeds_stale", "tradewire_worker_restarts_total",
        "tradewire_redis_used_memory_bytes",
    ):  # fmt: skip
        assert metric in exprs, metric
