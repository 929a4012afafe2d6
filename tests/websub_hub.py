"""A small WebSub hub for the tests: a real local HTTP server that takes subscription
requests, verifies the subscriber's intent with a GET carrying ``hub.challenge`` (as a hub
does, after answering 202), and publishes content to verified callbacks, signed correctly,
wrongly or not at all."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import parse_qs

import httpx

from tests.httpd import QuietHandler, serve_handler


@dataclasses.dataclass
class HubSubscription:
    topic: str
    callback: str
    secret: str
    lease_s: int
    verified: bool = False


@dataclasses.dataclass
class Verification:
    mode: str
    topic: str
    status: int
    echoed: bool  # the body was exactly the challenge


class Hub:
    """``grant_lease_s``: the lease the hub grants (None: what was asked); ``verify``: False
    accepts requests without ever verifying them; ``status``: the answer to requests."""

    def __init__(self) -> None:
        self.url = ""
        self.requests: list[dict[str, str]] = []
        self.subscriptions: dict[str, HubSubscription] = {}  # by topic
        self.verifications: list[Verification] = []
        self.grant_lease_s: int | None = None
        self.verify = True
        self.status = 202
        self.verified = threading.Event()

    def on_request(self, form: dict[str, str]) -> int:
        self.requests.append(form)
        if self.status >= 300 or not self.verify:
            return self.status
        threading.Thread(target=self._verify, args=(form,), daemon=True).start()
        return self.status

    def _verify(self, form: dict[str, str]) -> None:
        mode, topic = form["hub.mode"], form["hub.topic"]
        lease = self.grant_lease_s or int(form.get("hub.lease_seconds") or 3600)
        result = self.verify_intent(form["hub.callback"], mode, topic, lease)
        if result.echoed and mode == "subscribe":
            self.subscriptions[topic] = HubSubscription(
                topic, form["hub.callback"], form.get("hub.secret", ""), lease, verified=True
            )
        elif result.echoed and mode == "unsubscribe":
            self.subscriptions.pop(topic, None)
        self.verified.set()

    def verify_intent(self, callback: str, mode: str, topic: str, lease_s: int) -> Verification:
        """The GET a hub sends to a callback (also usable to forge one)."""
        challenge = secrets.token_urlsafe(24)
        params = {"hub.mode": mode, "hub.topic": topic, "hub.challenge": challenge,
                  "hub.lease_seconds": str(lease_s)}  # fmt: skip
        response = httpx.get(callback, params=params, timeout=5)
        result = Verification(mode, topic, response.status_code, response.text == challenge)
        self.verifications.append(result)
        return result

    def publish(
        self,
        topic: str,
        body: bytes,
        *,
        signature: str = "sha256",
        content_type: str = "application/rss+xml",
    ) -> httpx.Response:
        """POST ``body`` to the topic's callback. ``signature``: an algorithm (signed with
        the subscriber's secret), "wrong" (signed with another secret) or "none"."""
        sub = self.subscriptions[topic]
        headers = {"Content-Type": content_type}
        if signature == "wrong":
            digest = hmac.new(b"not-the-secret", body, hashlib.sha256).hexdigest()
            headers["X-Hub-Signature"] = f"sha256={digest}"
        elif signature != "none":
            digest = hmac.new(sub.secret.encode(), body, signature).hexdigest()
            headers["X-Hub-Signature"] = f"{signature}={digest}"
        return httpx.post(sub.callback, content=body, headers=headers, timeout=10)


@contextmanager
def serve_hub() -> Iterator[Hub]:
    hub = Hub()

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            status = hub.on_request(form)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    with serve_handler(Handler) as base:
        hub.url = f"{base}/hub"
        yield hub
