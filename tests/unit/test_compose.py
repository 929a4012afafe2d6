"""docker-compose.yml as an operator expects it: each role's own healthcheck, limits, rotated
logs, a Redis that never evicts, a grace period longer than the workers', ports on loopback.

The file is read with PyYAML and, where docker-compose is on PATH, as ``docker-compose
config`` resolves it (anchors, merges and defaults applied the way Compose applies them)."""

from __future__ import annotations

import copy
import functools
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.app import SHUTDOWN_GRACE_S

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
TRADEWIRE = ("poller", "worker")


def _with_defaults(node: Any) -> Any:
    """``${VAR:-default}`` as Compose reads it with VAR unset."""
    if isinstance(node, dict):
        return {key: _with_defaults(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_with_defaults(value) for value in node]
    if isinstance(node, str):
        return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", node)
    return node


def _from_yaml() -> dict[str, Any]:
    return dict(_with_defaults(yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))))


@functools.cache
def _from_docker_compose() -> dict[str, Any]:
    proc = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), "config"],
        capture_output=True, text=True, timeout=60, check=True, cwd=ROOT,
        env={"PATH": "/usr/bin:/bin:/usr/local/bin"},  # no TRADEWIRE_* from this shell
    )  # fmt: skip
    return dict(yaml.safe_load(proc.stdout))


@pytest.fixture(
    params=[
        "pyyaml",
        pytest.param(
            "docker-compose",
            marks=pytest.mark.skipif(
                shutil.which("docker-compose") is None, reason="docker-compose is not on PATH"
            ),
        ),
    ]
)
def services(request: pytest.FixtureRequest) -> dict[str, Any]:
    config = _from_yaml() if request.param == "pyyaml" else _from_docker_compose()
    return copy.deepcopy(dict(config["services"]))


def _seconds(duration: str) -> float:
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


def _healthcheck_url(service: dict[str, Any]) -> str:
    found = re.search(r"http://127\.0\.0\.1:8080/\w+", " ".join(service["healthcheck"]["test"]))
    assert found is not None
    return found.group(0)


def test_redis_never_evicts_and_has_a_memory_ceiling(services: dict[str, Any]) -> None:
    command = [str(part) for part in services["redis"]["command"]]
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    maxmemory = command[command.index("--maxmemory") + 1]
    assert re.fullmatch(r"\d+(gb|mb)", maxmemory), maxmemory


@pytest.mark.parametrize("name", ["redis", *TRADEWIRE])
def test_every_service_has_limits_and_rotated_logs(services: dict[str, Any], name: str) -> None:
    service = services[name]
    assert float(service["cpus"]) > 0
    assert re.fullmatch(r"\d+[mg]", str(service["mem_limit"])), service["mem_limit"]
    assert service["logging"]["driver"] == "json-file"
    assert {"max-size", "max-file"} <= set(service["logging"]["options"])


@pytest.mark.parametrize("name", TRADEWIRE)
def test_docker_waits_longer_than_the_workers_grace(services: dict[str, Any], name: str) -> None:
    assert _seconds(services[name]["stop_grace_period"]) >= SHUTDOWN_GRACE_S + 5


def test_published_ports_are_on_loopback_only(services: dict[str, Any]) -> None:
    published = [str(port) for service in services.values() for port in service.get("ports", [])]
    assert published, "the poller's health port is published"
    for port in published:
        assert port.startswith("127.0.0.1:"), port
    assert "ports" not in services["worker"]  # scaled: one host port each would clash


def test_each_role_checks_its_own_health(services: dict[str, Any]) -> None:
    # A worker's /readyz fails on a pipeline-wide backlog; its own liveness is /healthz.
    assert _healthcheck_url(services["worker"]).endswith("/healthz")
    assert _healthcheck_url(services["poller"]).endswith("/readyz")


def test_worker_replicas_are_set_in_a_form_v1_honours(services: dict[str, Any]) -> None:
    assert "deploy" not in services["worker"]
    assert int(services["worker"]["scale"]) >= 1


MONITORING = ("prometheus", "grafana")


def _mounts(service: dict[str, Any]) -> list[str]:
    """``source:target`` of each volume, in the short form or the long one."""
    return [m if isinstance(m, str) else f"{m['source']}:{m['target']}" for m in service["volumes"]]


def test_monitoring_starts_only_with_its_profile(services: dict[str, Any]) -> None:
    for name in MONITORING:
        assert services[name]["profiles"] == ["monitoring"]
    for name in ("redis", *TRADEWIRE):
        assert "profiles" not in services[name]


@pytest.mark.parametrize("name", MONITORING)
def test_monitoring_has_limits_rotated_logs_and_its_files(
    services: dict[str, Any], name: str
) -> None:
    service = services[name]
    assert float(service["cpus"]) > 0
    assert re.fullmatch(r"\d+[mg]", str(service["mem_limit"])), service["mem_limit"]
    assert service["logging"]["driver"] == "json-file"
    for mount in _mounts(service):
        source = mount.split(":")[0]
        if source.startswith(("./", "/")):  # a file of this repository, not a named volume
            assert (ROOT / source).exists(), mount  # an absolute source replaces ROOT


def test_monitoring_gets_the_rules_the_dashboard_and_the_datasource(
    services: dict[str, Any],
) -> None:
    grafana = " ".join(_mounts(services["grafana"]))
    assert "deploy/grafana/provisioning:/etc/grafana/provisioning" in grafana
    assert "deploy/grafana/tradewire.json:/etc/grafana/dashboards/tradewire.json" in grafana
    assert "deploy/prometheus:/etc/prometheus" in " ".join(_mounts(services["prometheus"]))
