"""Local HTTP servers for the tests: a handler class served on a free loopback port."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import BaseRequestHandler
from typing import Any


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that keeps the test output free of access-log lines."""

    def log_message(self, format: str, *args: Any) -> None:
        return


class NotModified(QuietHandler):
    """Answers every GET with 304 Not Modified and an ETag: a feed that has not changed."""

    def do_GET(self) -> None:
        self.send_response(304)
        self.send_header("ETag", '"v1"')
        self.end_headers()


@contextmanager
def serve_handler(handler: Callable[..., BaseRequestHandler]) -> Iterator[str]:
    """Serve ``handler`` in a thread on 127.0.0.1 and yield its base URL; stop on exit."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
