"""docker-compose.yml as an operator expects it: each role's own healthcheck, limits, rotated
logs, a Redis that never evicts, a grace period longer than the workers', ports on loopback.

The file is read with PyYAML and, where docker-compose is on PATH, as ``docker-compose
config`` resolves it (anchors, merges and defaults applied the way Compose applies them)."""

from __future__ import annotations

import copy
import functools
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from service.app import SHUTDOWN_GRACE_S
from service.embedded_redis import EmbeddedRedis, redis_server_binary
from tests.conftest import free_port
from tests.processes import wait_until

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


SENTINELS = ("sentinel-1", "sentinel-2", "sentinel-3")


def _sentinel_config(service: dict[str, Any]) -> list[str]:
    """The lines a sentinel service writes to its sentinel.conf before it starts."""
    script = service["command"][0] if isinstance(service["command"], list) else service["command"]
    words = shlex.split(script.split(">", 1)[0])
    assert words[:2] == ["printf", "%s\\n"], words
    return words[2:]


def test_sentinel_profile_is_optional_and_complete(services: dict[str, Any]) -> None:
    """Three sentinels (quorum 2) and a replica, only with ``--profile sentinel``; the
    service reads the sentinel variables, empty (off) by default."""
    for name in ("redis-replica", *SENTINELS):
        assert services[name]["profiles"] == ["sentinel"], name
        assert float(services[name]["cpus"]) > 0 and services[name]["logging"]["driver"]
    assert "profiles" not in services["redis"]
    replica = [str(part) for part in services["redis-replica"]["command"]]
    assert replica[replica.index("--replicaof") + 1 : replica.index("--replicaof") + 3] == [
        "redis",
        "6379",
    ]
    assert replica[replica.index("--maxmemory-policy") + 1] == "noeviction"
    for name in SENTINELS:
        assert "sentinel monitor tradewire redis 6379 2" in _sentinel_config(services[name])
        # Redis has ACL users: sentinels and the replica authenticate as the administrator.
        assert "sentinel auth-pass tradewire $$(cat /run/secrets/redis_admin_password)" in (
            _sentinel_config(services[name])
        )
        assert [s if isinstance(s, str) else s["source"] for s in services[name]["secrets"]] == [
            "redis_admin_password"
        ]
    assert "start-redis.sh" in " ".join(services["redis-replica"]["entrypoint"])
    for name in TRADEWIRE:
        env = services[name]["environment"]
        assert env["TRADEWIRE_REDIS_SENTINELS"] in ("", None)
        assert env["TRADEWIRE_REDIS_SENTINEL_MASTER"] in ("", None)


def test_sentinel_profile_config_is_accepted_by_a_real_sentinel(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    """The compose sentinel's configuration, pointed at a local server, loads in
    ``redis-server --sentinel`` and monitors it with the quorum and timings written."""
    port = free_port()
    lines = [
        line.replace("redis 6379", f"127.0.0.1 {redis_server.port}").replace(
            "port 26379", f"port {port}"
        )
        for line in _sentinel_config(_from_yaml()["services"]["sentinel-1"])
        if not line.startswith("sentinel auth-pass")  # this server has no password
    ]
    conf = tmp_path / "sentinel.conf"
    conf.write_text("\n".join([*lines, "bind 127.0.0.1", f"dir {tmp_path}"]) + "\n")
    proc = subprocess.Popen([redis_server_binary(), str(conf), "--sentinel"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        client = redis.Redis(port=port, decode_responses=True, socket_timeout=1)
        state = wait_until(lambda: client.sentinel_master("tradewire"), 10)
        assert state and state["quorum"] == 2 and state["down-after-milliseconds"] == 5000
        assert state["port"] == redis_server.port
        client.close()
    finally:
        proc.terminate()
        proc.wait(10)


def test_redis_holds_the_acl_users_with_passwords_from_secret_files(
    services: dict[str, Any],
) -> None:
    """README "Least privilege": the passwords are compose secrets (files no commit holds),
    rendered into the ACL by deploy/redis/start-redis.sh; none is on a command line."""
    redis = services["redis"]
    assert "start-redis.sh" in " ".join(redis["entrypoint"])
    names = {s if isinstance(s, str) else s["source"] for s in redis["secrets"]}
    assert names == {f"redis_{role}_password" for role in ("admin", "service", "consumer")}
    mounted = " ".join(str(v) for v in redis["volumes"])
    assert "deploy/redis/start-redis.sh:" in mounted and "users.acl.template:" in mounted
    check = " ".join(redis["healthcheck"]["test"])
    assert "REDISCLI_AUTH=" in check and "/run/secrets/redis_admin_password" in check
    assert not re.search(r"requirepass|--pass\b|-a ", " ".join(map(str, redis["command"])) + check)


def test_the_secret_files_are_never_committed() -> None:
    files = [s["file"] for s in _from_yaml()["secrets"].values()]
    assert files and all(f.startswith("./deploy/redis/secrets/") for f in files)
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", *files], cwd=ROOT, capture_output=True, text=True
    )
    assert ignored.stdout.split() == files
