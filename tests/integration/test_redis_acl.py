"""Least privilege in Redis: the ACL users of deploy/redis/users.acl.template, rendered by
deploy/redis/start-redis.sh from password files exactly as the compose file does, loaded by
a real redis-server.

- ``tradewire`` (the service) runs the whole service: `tradewire run` polls, extracts,
  tags, emits and answers /readyz, and the operator commands work; Redis's ACL LOG then
  shows that nothing it sent was refused (but the CONFIG GET the eviction check tries).
- ``tradewire-consumer`` reads the stream with `tradewire tail`, and nothing else: writes
  to the queues, to the stream and to any other key are refused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import yaml
from pytest_httpserver import HTTPServer

from core import keys, queues
from core.connection import connect
from core.settings import Settings
from service.demo import demo_feeds
from service.embedded_redis import EmbeddedRedis, redis_server_binary
from tests.conftest import ROOT, free_port
from tests.integration.test_batches import FLAKY, article_id, poll, site  # noqa: F401
from tests.integration.test_pipeline import EXPECTED
from tests.processes import run_env, start_run, wait_until
from workers.runner import run_worker

# The demo pages about US–China trade (service/demo_site/expected.json).
RELEVANT = sum(1 for page in EXPECTED.values() if page["us_china_trade"])

START = ROOT / "deploy" / "redis" / "start-redis.sh"
USERS = {"admin": "default", "service": "tradewire", "consumer": "tradewire-consumer"}
STREAM = "tradewire:events"


@dataclasses.dataclass(frozen=True)
class AclRedis:
    port: int
    passwords: dict[str, str]

    def url(self, role: str) -> str:
        return f"redis://{USERS[role]}:{self.passwords[role]}@127.0.0.1:{self.port}/0"

    def client(self, role: str, decode: bool = True) -> redis.Redis:
        return redis.Redis.from_url(self.url(role), decode_responses=decode)


def render(secrets_dir: Path, acl_file: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "RENDER_ONLY": "1", "REDIS_SECRETS_DIR": str(secrets_dir),
           "REDIS_ACL_FILE": str(acl_file), "REDIS_CONF_FILE": str(acl_file) + ".conf"}  # fmt: skip
    return subprocess.run(["sh", str(START)], env=env, capture_output=True, text=True, timeout=30)


@pytest.fixture(scope="module")
def acl_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AclRedis]:
    base = tmp_path_factory.mktemp("acl")
    (base / "secrets").mkdir()
    passwords = {role: secrets.token_urlsafe(24) for role in USERS}
    for role, password in passwords.items():
        (base / "secrets" / f"redis_{role}_password").write_text(password + "\n")
    assert render(base / "secrets", base / "users.acl").returncode == 0
    port = free_port()
    server = EmbeddedRedis(base / "redis", port=port, appendonly=False,
                           extra_args=["--aclfile", str(base / "users.acl")],
                           password=passwords["admin"])  # fmt: skip
    with server:
        yield AclRedis(port, passwords)


@pytest.fixture
def acl(acl_server: AclRedis) -> Iterator[AclRedis]:
    admin = acl_server.client("admin")
    admin.flushall()
    admin.acl_log_reset()
    yield acl_server
    admin.close()


def refused_commands(acl: AclRedis) -> list[tuple[str, str, str]]:
    """(user, reason, object) of every command Redis refused since the test began."""
    entries: list[dict[str, Any]] = acl.client("admin").acl_log(count=100)
    return sorted({(e["username"], e["reason"], e["object"]) for e in entries})


def test_the_rendered_acl_holds_hashes_never_passwords(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    for role in USERS:
        (tmp_path / "s" / f"redis_{role}_password").write_text(f"Secret{role.title()}42\n")
    assert render(tmp_path / "s", tmp_path / "users.acl").returncode == 0
    rendered = (tmp_path / "users.acl").read_text()
    assert "Secret" not in rendered and "_SHA256@" not in rendered
    users = re.findall(r"^user (\S+) on #([0-9a-f]{64}) ", rendered, re.M)
    assert [name for name, _ in users] == list(USERS.values())
    assert (tmp_path / "users.acl").stat().st_mode & 0o077 == 0
    # The administrator's password a replica authenticates to its primary with.
    conf = tmp_path / "users.acl.conf"
    assert conf.read_text() == "masterauth SecretAdmin42\n" and conf.stat().st_mode & 0o077 == 0
    (tmp_path / "s" / "redis_consumer_password").write_text("")
    failed = render(tmp_path / "s", tmp_path / "again.acl")
    assert failed.returncode != 0 and "redis_consumer_password is missing or empty" in failed.stderr


def test_new_secrets_makes_passwords_the_acl_and_the_service_url_agree(tmp_path: Path) -> None:
    """deploy/redis/new-secrets.sh, as an operator runs it before the first `up`."""
    script = ROOT / "deploy" / "redis" / "new-secrets.sh"
    for _ in range(2):  # the second run keeps what the first wrote
        subprocess.run(["sh", str(script), str(tmp_path)], check=True, capture_output=True)
    secrets_dir = tmp_path / "deploy" / "redis" / "secrets"
    service = (secrets_dir / "redis_service_password").read_text()
    assert len({(secrets_dir / f"redis_{role}_password").read_text() for role in USERS}) == 3
    env_lines = (tmp_path / ".env").read_text().splitlines()
    assert env_lines == [f"TRADEWIRE_REDIS_URL=redis://tradewire:{service}@redis:6379/0"]
    assert (tmp_path / ".env").stat().st_mode & 0o077 == 0
    assert render(secrets_dir, tmp_path / "users.acl").returncode == 0
    digest = hashlib.sha256(service.encode()).hexdigest()
    assert f"user tradewire on #{digest} " in (tmp_path / "users.acl").read_text()


def test_a_replica_with_the_same_users_replicates_as_the_administrator(tmp_path: Path) -> None:
    """The sentinel profile's replica: start-redis.sh's config file (masterauth) and ACL,
    as the compose file starts it; what the service writes reaches the replica."""
    (tmp_path / "s").mkdir()
    passwords = {role: secrets.token_urlsafe(16) for role in USERS}
    for role, password in passwords.items():
        (tmp_path / "s" / f"redis_{role}_password").write_text(password + "\n")
    assert render(tmp_path / "s", tmp_path / "users.acl").returncode == 0
    conf, acl_file = str(tmp_path / "users.acl.conf"), str(tmp_path / "users.acl")
    ports, procs = [free_port(), free_port()], []
    try:
        for port in ports:
            extra = ["--replicaof", "127.0.0.1", str(ports[0])] if port != ports[0] else []
            (tmp_path / str(port)).mkdir()
            procs.append(subprocess.Popen(
                [redis_server_binary(), conf, "--aclfile", acl_file, "--port", str(port),
                 "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path / str(port)), *extra],
                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            ))  # fmt: skip
        acl = AclRedis(ports[0], passwords)
        assert wait_until(lambda: acl.client("service").set("tradewire:probe", "1"), 10)
        replica = AclRedis(ports[1], passwords)
        assert wait_until(lambda: replica.client("service").get("tradewire:probe") == "1", 20)
        assert replica.client("admin").info("replication")["master_link_status"] == "up"
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)


def test_tradewire_run_and_its_tools_need_nothing_beyond_the_service_user(
    acl: AclRedis, demo_site: str, tmp_path: Path
) -> None:
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text(yaml.safe_dump({"feeds": demo_feeds(demo_site)}))
    port = free_port()
    env = run_env(tmp_path, feeds, health_port=str(port), workers="1", redis_url=acl.url("service"))
    proc = start_run(env, tmp_path, tmp_path / "run.log")
    admin = acl.client("admin")
    try:
        assert wait_until(lambda: admin.xlen(STREAM) >= RELEVANT, 90), (
            tmp_path / "run.log"
        ).read_text()

        def readyz() -> httpx.Response:
            return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)

        assert wait_until(lambda: readyz().status_code == 200, 60), readyz().text
        # Scrape-time gauges read Redis too (stream length, heartbeat ages, memory).
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert "tradewire_stream_length" in metrics and "tradewire_redis_up 1" in metrics
        tools = (["status"], ["failed", "list"], ["failed", "retry"], ["feeds", "status"],
                 ["replay", "--since", "2000-01-01", "--stream", "tradewire:replay:acl"],
                 ["retag"])  # fmt: skip
        for command in tools:
            done = subprocess.run([sys.executable, "-m", "service", *command], env=env,
                                  cwd=tmp_path, capture_output=True, text=True, timeout=60)  # fmt: skip
            assert done.returncode == 0, (command, done.stderr[-2000:])
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert proc.returncode == 0, (tmp_path / "run.log").read_text()[-3000:]
    assert admin.xlen("tradewire:replay:acl") >= RELEVANT  # replay re-emitted the stored articles
    # The only refusal: the eviction check's CONFIG GET, which it reads as "not known".
    assert refused_commands(acl) == [("tradewire", "command", "config|get")]
    assert "NOPERM" not in (tmp_path / "run.log").read_text()


def test_retries_failures_and_requeues_need_nothing_beyond_the_service_user(
    acl: AclRedis,
    site: tuple[HTTPServer, dict[str, int]],  # noqa: F811 (the fixture, imported above)
    settings: Settings,
) -> None:
    """RQ's paths the demo run may not take: a page that answers 503 is scheduled for a
    retry, retried by RQ's scheduler, failed, listed and requeued by `failed retry`."""
    server, state = site
    live = settings.with_overrides(redis_url=acl.url("service"), job_retries=1)
    live.feeds_file.write_text(yaml.safe_dump({"feeds": [{"url": server.url_for("/rss")}]}))
    text_redis, rq_redis = connect(live, decode=True), connect(live, decode=False)
    admin_queue = queues.queue(acl.client("admin", decode=False), keys.EXTRACT_QUEUE)
    flaky_job = keys.job_id(keys.EXTRACT_QUEUE, [article_id(server, FLAKY)])
    assert poll(live, text_redis, rq_redis) == 4
    for _ in range(2):  # the batch, then the flaky page's own job once its retry is due
        run_worker(live, keys.EXTRACT_QUEUE, burst=True)
        assert admin_queue.scheduled_job_registry.get_job_ids() == [flaky_job]
        admin_queue.connection.zadd(admin_queue.scheduled_job_registry.key, {flaky_job: 1})
    run_worker(live, keys.EXTRACT_QUEUE, burst=True)  # the last try: failed for good
    assert [job["job_id"] for job in queues.failed_jobs(rq_redis)] == [flaky_job]
    state["flaky_503s"] = 0
    assert queues.retry_failed(rq_redis) == 1
    run_worker(live, keys.EXTRACT_QUEUE, burst=True)
    run_worker(live, keys.TAG_QUEUE, burst=True)
    assert len(list(live.corpus_dir.glob("*.txt"))) == 4
    assert acl.client("admin").xlen(STREAM) >= 1
    assert refused_commands(acl) == []


def _add_events(acl: AclRedis, n: int) -> list[str]:
    admin = acl.client("admin")
    data = [json.dumps({"article_id": f"{i:016x}", "title": f"event {i}"}) for i in range(n)]
    for text in data:
        admin.xadd(STREAM, {"event_type": "article.created", "data": text})
    return data


def test_tradewire_tail_works_as_the_consumer_user(acl: AclRedis, tmp_path: Path) -> None:
    data = _add_events(acl, 3)
    env = run_env(tmp_path, tmp_path / "feeds.yaml", redis_url=acl.url("consumer"))
    done = subprocess.run(
        [sys.executable, "-m", "service", "tail", "--group", "team-a", "--from-start",
         "--count", "3"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == data
    consumer = acl.client("consumer")
    [group] = consumer.xinfo_groups(STREAM)
    assert group["name"] == "team-a" and group["pending"] == 0
    assert refused_commands(acl) == []


@pytest.mark.parametrize(
    "write",
    [
        pytest.param(lambda c: c.lpush(f"rq:queue:{keys.EXTRACT_QUEUE}", "x"), id="lpush-queue"),
        pytest.param(lambda c: c.xadd(STREAM, {"data": "{}"}), id="xadd-stream"),
        pytest.param(lambda c: c.set(keys.seen_url("0" * 16), "1"), id="set-seen-mark"),
        pytest.param(lambda c: c.get(keys.CORPUS_SEQ), id="read-other-key"),
        pytest.param(lambda c: c.xdel(STREAM, "0-1"), id="xdel-stream"),
        pytest.param(lambda c: c.flushall(), id="flushall"),
        pytest.param(lambda c: c.keys("*"), id="keys"),
        pytest.param(lambda c: c.publish("rq:pubsub:w", "{}"), id="publish"),
    ],
)
def test_the_consumer_user_can_do_nothing_else(acl: AclRedis, write: Any) -> None:
    consumer = acl.client("consumer")
    with pytest.raises(redis.exceptions.NoPermissionError):
        write(consumer)


def test_the_consumer_user_cannot_queue_a_job(acl: AclRedis) -> None:
    consumer = acl.client("consumer", decode=False)
    with pytest.raises(redis.exceptions.NoPermissionError):
        queues.queue(consumer, keys.EXTRACT_QUEUE).enqueue_call(
            "workers.jobs.extract_job", args=([{"article_id": "0" * 16}],)
        )
    assert acl.client("admin").llen(f"rq:queue:{keys.EXTRACT_QUEUE}") == 0


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(lambda c: c.set("other:key", "1"), id="foreign-key"),
        pytest.param(lambda c: c.flushall(), id="flushall"),
        pytest.param(lambda c: c.config_set("maxmemory-policy", "allkeys-lru"), id="config-set"),
        pytest.param(lambda c: c.keys("*"), id="keys"),
        pytest.param(lambda c: c.eval("return 1", 0), id="eval"),
        pytest.param(lambda c: c.acl_setuser("x"), id="acl"),
    ],
)
def test_the_service_user_is_held_to_its_keys_and_commands(acl: AclRedis, command: Any) -> None:
    with pytest.raises(redis.exceptions.NoPermissionError):
        command(acl.client("service"))
