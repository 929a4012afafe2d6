"""A real Sentinel deployment on loopback for failover tests: a primary, a replica and three
sentinels, all from the ``redis-server`` binary (``redis-server sentinel.conf --sentinel``) on
free ports, with passwords on the data servers and on the sentinels. Short detection times
(``down-after-milliseconds``) so a failover takes seconds, not the default half minute."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import redis

from service.embedded_redis import EmbeddedRedis, redis_server_binary
from tests.conftest import free_port
from tests.processes import wait_until

MASTER = "tradewire"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000


class SentinelRig:
    def __init__(self, directory: Path, password: str, sentinel_password: str) -> None:
        self.directory = directory
        self.password = password
        self.sentinel_password = sentinel_password
        self.servers: list[EmbeddedRedis] = []
        self.sentinels: list[subprocess.Popen[bytes]] = []
        self.sentinel_ports: list[int] = []

    @property
    def addresses(self) -> str:
        return ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)

    def start(self) -> SentinelRig:
        auth = ["--requirepass", self.password, "--masterauth", self.password]
        primary = EmbeddedRedis(
            self.directory / "primary", port=free_port(), extra_args=auth, password=self.password
        )
        self.servers.append(primary.start())
        replica = EmbeddedRedis(
            self.directory / "replica",
            port=free_port(),
            extra_args=[*auth, "--replicaof", "127.0.0.1", str(primary.port)],
            password=self.password,
        )
        self.servers.append(replica.start())
        link = redis.Redis(port=replica.port, password=self.password, decode_responses=True)
        assert wait_until(lambda: link.info("replication")["master_link_status"] == "up", 20)
        link.close()
        for index in range(3):
            self._start_sentinel(index, primary.port)
        assert wait_until(self._settled, 30), "the sentinels did not find each other"
        return self

    def _start_sentinel(self, index: int, primary_port: int) -> None:
        port = free_port()
        directory = self.directory / f"sentinel-{index}"
        directory.mkdir(parents=True)
        conf = directory / "sentinel.conf"  # Sentinel rewrites its file: one each
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\ndaemonize no\ndir {directory}\n"
            f"logfile {directory / 'sentinel.log'}\nrequirepass {self.sentinel_password}\n"
            f"sentinel monitor {MASTER} 127.0.0.1 {primary_port} 2\n"
            f"sentinel auth-pass {MASTER} {self.password}\n"
            f"sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {MASTER} {FAILOVER_TIMEOUT_MS}\n"
            f"sentinel parallel-syncs {MASTER} 1\n"
        )
        self.sentinels.append(
            subprocess.Popen(
                [redis_server_binary(), str(conf), "--sentinel"],
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
        self.sentinel_ports.append(port)

    def _sentinel(self, port: int) -> redis.Redis:
        return redis.Redis(
            port=port, password=self.sentinel_password, decode_responses=True, socket_timeout=1
        )

    def _settled(self) -> bool:
        for port in self.sentinel_ports:
            client = self._sentinel(port)
            try:
                state = client.sentinel_master(MASTER)
            finally:
                client.close()
            if state["num-other-sentinels"] < 2 or state["num-slaves"] < 1:
                return False
        return True

    def primary_port(self) -> int | None:
        """The primary's port as the first sentinel that answers names it."""
        for port in self.sentinel_ports:
            client = self._sentinel(port)
            try:
                address = client.sentinel_get_master_addr_by_name(MASTER)
                return int(address[1]) if address else None
            except redis.RedisError:
                continue
            finally:
                client.close()
        return None

    def kill(self, port: int) -> None:
        """SIGKILL the data server on ``port``: no shutdown, no last write to disk."""
        next(s for s in self.servers if s.port == port).kill()

    def stop(self) -> None:
        for proc in self.sentinels:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.sentinels:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for server in self.servers:
            server.stop()


def elapsed(since: float) -> float:
    return round(time.monotonic() - since, 2)
