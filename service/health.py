"""The health server: ``/healthz`` (liveness), ``/readyz`` (readiness), ``/metrics``.

Liveness means the process loop still turns. Readiness means the process can do its work
now: Redis answers and, for processes that poll, a poller finished a cycle recently. Each
failing check is named in the JSON body with the time it started failing. A check named in
``degrade_only`` (the feeds: an outage of the publishers or of our network) is reported as
degraded without making readiness fail, since restarting the pod would not fix it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from core.redact import mask_secrets

# A check returns None when healthy, or a short message saying what is wrong.
Check = Callable[[], str | None]
PUSH_ROUTE = "/websub/"


class PushEndpoint(Protocol):
    """The WebSub callback (service/websub.py): (status, content type, body) per request."""

    def handle(
        self,
        method: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        read: Callable[[int], bytes],
    ) -> tuple[int, str, bytes]: ...


class HealthState:
    """Named checks plus the moment each started failing (for "since when")."""

    def __init__(self) -> None:
        self.liveness: dict[str, Check] = {}
        self.readiness: dict[str, Check] = {}
        self.failing_since: dict[str, float] = {}
        self.degrade_only: set[str] = set()
        self.shutting_down = False
        self.push: PushEndpoint | None = None  # /websub/..., served only when configured
        self._lock = threading.Lock()

    def evaluate(self, checks: dict[str, Check]) -> tuple[bool, dict[str, Any]]:
        results: dict[str, Any] = {}
        ok = True
        now = time.time()
        redis_down = False
        for name, check in checks.items():
            try:
                problem = "not checked: Redis is unreachable" if redis_down else check()
            except Exception as exc:  # a crashing check is a failing check
                problem = f"{type(exc).__name__}: {exc}"
            if name == "redis" and problem is not None:
                redis_down = True
            with self._lock:
                if problem is None:
                    self.failing_since.pop(name, None)
                    results[name] = {"ok": True}
                else:
                    since = self.failing_since.setdefault(name, now)
                    results[name] = {
                        "ok": False,
                        "error": mask_secrets(problem),
                        "failing_since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(since)),
                    }
                    if name in self.degrade_only:
                        results[name]["degraded"] = True
                    else:
                        ok = False
        return ok, results

    def ready(self) -> tuple[bool, dict[str, Any]]:
        if self.shutting_down:
            return False, {"shutdown": {"ok": False, "error": "shutting down"}}
        return self.evaluate(self.readiness)


def _handler(state: HealthState, registry: CollectorRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = 30  # a client that stops sending mid-request is dropped

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            if path.startswith(PUSH_ROUTE) and state.push is not None:
                self._push("GET")
            elif path == "/healthz":
                ok, checks = state.evaluate(state.liveness)
                self._json(200 if ok else 503, {"status": "ok" if ok else "fail", "checks": checks})
            elif path == "/readyz":
                ok, checks = state.ready()
                degraded = any(check.get("degraded") for check in checks.values())
                status = "not_ready" if not ok else "degraded" if degraded else "ready"
                self._json(200 if ok else 503, {"status": status, "checks": checks})
            elif path == "/metrics":
                body = generate_latest(registry)
                self._send(200, CONTENT_TYPE_LATEST, body)
            else:
                self._json(
                    404, {"error": "not found", "paths": ["/healthz", "/readyz", "/metrics"]}
                )

        def do_POST(self) -> None:
            if self.path.startswith(PUSH_ROUTE) and state.push is not None:
                self._push("POST")
            else:
                self._json(404, {"error": "not found"})

        def _push(self, method: str) -> None:
            push = state.push
            assert push is not None
            path, _, query = self.path.partition("?")
            headers = {k.lower(): v for k, v in self.headers.items()}
            self._send(*push.handle(method, path, query, headers, self.rfile.read))

        def _json(self, status: int, payload: dict[str, Any]) -> None:
            self._send(status, "application/json", json.dumps(payload).encode())

        def _send(self, status: int, ctype: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return  # probes every few seconds would drown the real logs

    return Handler


class HealthServer:
    """Serves the endpoints from a daemon thread."""

    def __init__(
        self, host: str, port: int, state: HealthState, registry: CollectorRegistry
    ) -> None:
        self.server = ThreadingHTTPServer((host, port), _handler(state, registry))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="health", daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> HealthServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
