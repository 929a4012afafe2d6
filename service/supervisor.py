"""Keeps worker processes running: respawns them when they exit, stops them gracefully.

RQ workers exit on some Redis connection errors and, by design, after ``max_jobs`` (which
bounds memory growth), so something must start them again. On stop, each child gets
SIGTERM (RQ's warm shutdown: finish the job in hand), then SIGKILL after a timeout.
Each child that exits has its Prometheus files retired (core.metrics.retire_process), or
every recycle would leave files behind for /metrics to read forever.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import structlog

from core.metrics import RETIRE_ERRORS, WORKER_RESTARTS, retire_process

log = structlog.get_logger("tradewire.supervisor")


_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the supervisor dies, even by SIGKILL
    (RQ's warm shutdown then finishes the job in hand). Only an async-signal-safe syscall
    runs here, as the parent has threads."""
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclasses.dataclass
class _Child:
    name: str
    argv: Sequence[str]
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start_at: float = 0.0
    instance: str = ""  # the name the running process registered with (unique per start)


# Exit 0 is a planned recycle (max_jobs); any other exit a crash.
_EXIT_REASONS = ("recycled", "crashed")


class Supervisor:
    """``on_exit(instance_name, exit_code)`` runs after a child died (e.g. to hand its
    started jobs back); children get ``--name <instance>`` appended to their argv."""

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        on_exit: Callable[[str, int], None] | None = None,
    ) -> None:
        self.env = dict(env if env is not None else os.environ)
        self.children: list[_Child] = []
        self.stopping = False
        self.on_exit = on_exit
        self._prefix = f"{socket.gethostname()}.{os.getpid()}"
        # Exits whose handler failed (Redis down, say): tried again on the next checks.
        self._unhandled_exits: list[tuple[str, int]] = []

    def add(self, name: str, argv: Sequence[str]) -> None:
        self.children.append(_Child(name=name, argv=list(argv)))
        for reason in _EXIT_REASONS:  # at zero from the start, so rates see the first
            WORKER_RESTARTS.labels(child=name, reason=reason)

    def check(self) -> None:
        """Start children that are not running (with backoff for ones that keep dying)."""
        self._handle_exits()
        now = time.monotonic()
        for child in self.children:
            if self.stopping:
                return
            if child.process is not None:
                code = child.process.poll()
                if code is None:
                    continue
                self._retire_metrics(child.process.pid)
                child.process = None
                child.restarts += 1
                WORKER_RESTARTS.labels(child=child.name, reason=_EXIT_REASONS[code != 0]).inc()
                self._unhandled_exits.append((child.instance, code))
                # Exit 0 is a planned recycle (max_jobs); anything else backs off.
                delay = 0.0 if code == 0 else min(30.0, 0.5 * 2 ** min(child.restarts, 6))
                child.next_start_at = now + delay
                log.warning(
                    "supervisor.child_exited", child=child.name, code=code, restart_in_s=delay
                )
            if now >= child.next_start_at:
                child.instance = f"{self._prefix}.{child.name}.{child.restarts}"
                argv = [*child.argv, "--name", child.instance]
                child.process = subprocess.Popen(
                    argv, env=self.env, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent
                )
                log.info("supervisor.child_started", child=child.name, pid=child.process.pid)

    def _retire_metrics(self, pid: int) -> None:
        # The children write where their environment says; nothing to do when it says nowhere.
        directory = self.env.get("PROMETHEUS_MULTIPROC_DIR")
        if not directory:
            return
        try:
            retire_process(Path(directory), pid)
        except RETIRE_ERRORS as exc:  # metrics must never stop the respawn
            log.warning("supervisor.metrics_not_retired", pid=pid, error=str(exc)[:200])

    def _handle_exits(self) -> None:
        if self.on_exit is None:
            self._unhandled_exits.clear()
            return
        pending, self._unhandled_exits = self._unhandled_exits, []
        for instance, code in pending:
            try:
                self.on_exit(instance, code)
            except Exception as exc:  # Redis may be what killed it: try again next time
                self._unhandled_exits.append((instance, code))
                log.warning("supervisor.on_exit_deferred", instance=instance, error=str(exc)[:200])

    def stop(self, timeout_s: float) -> None:
        """SIGTERM everyone, wait up to ``timeout_s`` for in-flight jobs, then SIGKILL."""
        self.stopping = True
        running = [
            c.process for c in self.children if c.process is not None and c.process.poll() is None
        ]
        for process in running:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for process in running:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("supervisor.child_killed", pid=process.pid)
                process.kill()
                process.wait()
        for child in self.children:
            if child.process is not None and child.process.poll() is not None:
                self._retire_metrics(child.process.pid)
