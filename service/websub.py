"""WebSub (W3C PubSubHubbub) push, off unless ``websub_callback_url`` is set.

A feed that declares ``<link rel="hub">`` is subscribed at its hub with a secret of its own
(generated here, kept in Redis for the lease plus a margin, never configured nor logged).
The hub verifies our intent with a GET that we answer only for a topic we asked for and a
subscription pending or active; its content notifications are POSTs signed with that secret
(``X-Hub-Signature``), checked in constant time, then parsed, deduplicated, claimed and
queued by the poller's own path (``Poller.queue_pushed``). While a subscription is live the
poller polls the feed ``websub_poll_factor`` times less often; when it lapses, as before.
Routes: ``/websub/<feed id>`` on the health server, nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast
from urllib.parse import parse_qs

import redis
import structlog

from core import keys
from core.errors import FetchError
from core.fetch import Fetcher
from core.metrics import WEBSUB_NOTIFICATIONS
from core.models import Feed
from core.redact import redact_url
from core.settings import Settings
from service.feeds import ParsedFeed, parse_feed
from service.poller import Poller

log = structlog.get_logger("tradewire.websub")

ROUTE = "/websub/"
_FEED_ID = re.compile(r"[0-9a-f]{16}")
# The algorithms WebSub allows in X-Hub-Signature (sha1 is the one most hubs still send).
_ALGORITHMS: Mapping[str, Callable[..., Any]] = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha384": hashlib.sha384,
    "sha512": hashlib.sha512,
}
# The subscription record outlives the lease by this, so a late renewal still finds it.
LEASE_MARGIN_S = 3600
# A lease is renewed once less than this share of it is left.
RENEW_SHARE = 0.2
# After a request, the hub has this long to verify before we ask again; after a refusal
# or an unreachable hub, this long before the next try.
VERIFY_WAIT_S = 300.0
RETRY_AFTER_FAILURE_S = 3600.0
# A verification of intent is answered this long after our request, not later: a forged
# one replayed a week on could otherwise extend what we believe the lease to be.
VERIFY_WINDOW_S = 24 * 3600.0
MAX_LEASE_S = 366 * 24 * 3600  # a hub granting more is taken at a year
MAX_CHALLENGE_CHARS = 1024
TICK_S = 1.0
SUBSCRIBE_CONCURRENCY = 16

Response = tuple[int, str, bytes]
_NOT_FOUND: Response = (404, "text/plain", b"not found")
_ACCEPTED: Response = (202, "text/plain", b"")


@dataclasses.dataclass(frozen=True)
class Subscription:
    """One feed's subscription, as kept in Redis (the secret included: Redis only)."""

    hub: str
    topic: str
    secret: str
    state: str  # pending, active, unsubscribing
    lease_s: int = 0  # granted by the hub (0 until verified)
    lease_end: float = 0.0
    requested_at: float = 0.0  # our last request: a hub's verification must follow one

    def to_redis(self) -> dict[str, str]:
        return {k: str(v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_redis(cls, raw: Mapping[str, str]) -> Subscription | None:
        try:
            return cls(
                hub=raw["hub"], topic=raw["topic"], secret=raw["secret"], state=raw["state"],
                lease_s=int(raw.get("lease_s", 0)), lease_end=float(raw.get("lease_end", 0)),
                requested_at=float(raw.get("requested_at", 0)),
            )  # fmt: skip
        except (KeyError, ValueError):
            return None


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    """``X-Hub-Signature: <algo>=<hex HMAC of the body>`` with ``secret``, compared in
    constant time; an unknown algorithm or a missing header is a mismatch."""
    if not header:
        return False
    algorithm, _, digest = header.strip().partition("=")
    make = _ALGORITHMS.get(algorithm.lower())
    if make is None or not digest:
        return False
    expected = hmac.new(secret.encode(), body, make).hexdigest()
    return hmac.compare_digest(expected.encode(), digest.strip().lower().encode())


class SubscriptionStore:
    """Subscriptions in Redis: a hash each, and the live ones in a set scored by lease end."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def get(self, feed_id: str) -> Subscription | None:
        raw = cast(dict[str, str], self.redis.hgetall(keys.websub_subscription(feed_id)))
        return Subscription.from_redis(raw) if raw else None

    def put(self, feed_id: str, sub: Subscription, ttl_s: int) -> None:
        key = keys.websub_subscription(feed_id)
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(key)
        pipe.hset(key, mapping=cast(Any, sub.to_redis()))
        pipe.expire(key, ttl_s)
        if sub.state == "active":
            pipe.zadd(keys.WEBSUB_LEASES, {feed_id: sub.lease_end})
        pipe.execute()

    def delete(self, feed_id: str) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(keys.websub_subscription(feed_id))
        pipe.zrem(keys.WEBSUB_LEASES, feed_id)
        pipe.execute()

    def live(self, now: float) -> dict[str, float]:
        """Feed id -> lease end of every live subscription; lapsed ones are dropped."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.zremrangebyscore(keys.WEBSUB_LEASES, "-inf", now)
        pipe.zrangebyscore(keys.WEBSUB_LEASES, now, "+inf", withscores=True)
        return {member: float(score) for member, score in pipe.execute()[1]}

    def subscribed(self) -> list[str]:
        return cast(list[str], self.redis.zrange(keys.WEBSUB_LEASES, 0, -1))


class WebSub:
    """Subscriptions, renewals and the callback, for one poller process."""

    def __init__(
        self, settings: Settings, poller: Poller, fetcher: Fetcher,
        clock: Callable[[], float] = time.time, listed: Sequence[Feed] | None = None,
    ) -> None:  # fmt: skip
        assert settings.websub_callback_url is not None
        self.settings = settings
        self.callback_base = settings.websub_callback_url.rstrip("/")
        self.poller = poller
        self.fetcher = fetcher
        self.clock = clock
        self.listed = listed
        self.store = SubscriptionStore(poller.text_redis)
        self._live: dict[str, float] = {}
        self._wanted: dict[str, tuple[str, str]] = {}  # feed id -> (hub, topic)
        self._not_before: dict[str, float] = {}  # no new request for a feed until then

    # --- the poller's side -------------------------------------------------------------

    def after_poll(self, feed_id: str, feed: Feed, parsed: ParsedFeed | None, now: float) -> float:
        """Note a hub to subscribe to (the request itself goes out from ``run``) and say
        how much slower to poll: ``websub_poll_factor`` while the subscription is live."""
        live = self._live.get(feed_id, 0.0) > now
        retry_ok = self._not_before.get(feed_id, 0.0) <= now
        if parsed is not None and parsed.hub and not live and retry_ok:
            if self._secret_safe_at(parsed.hub):
                self._wanted[feed_id] = (parsed.hub, parsed.self_url or feed.url)
            else:
                self._not_before[feed_id] = now + RETRY_AFTER_FAILURE_S
                log.info("websub.hub_not_https", hub=redact_url(parsed.hub), feed_id=feed_id)
        return self.settings.websub_poll_factor if live else 1.0

    def _secret_safe_at(self, hub: str) -> bool:
        """WebSub sends ``hub.secret`` only over HTTPS: a plain-http hub is not subscribed
        (except with ``allow_private_hosts``, for local test hubs)."""
        return hub.lower().startswith("https://") or self.settings.allow_private_hosts

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop``: send the subscription requests, renew leases, keep the view of
        live subscriptions current. Redis outages are waited out. Given the feed list
        (``listed``), first unsubscribe the feeds that left it: here, once the health
        server serves the callback where the hubs verify the unsubscription."""
        if self.listed is not None:
            try:
                await self.forget_others(self.listed)
            except redis.RedisError as exc:
                log.warning("websub.redis_unavailable", error=str(exc))
        while not stop.is_set():
            try:
                await self.tick()
            except redis.RedisError as exc:
                log.warning("websub.redis_unavailable", error=str(exc))
            except Exception:
                # Push is an addition to polling: a bug here must not end the service.
                log.exception("websub.tick_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), TICK_S)

    async def tick(self) -> None:
        now = self.clock()
        self._live = self.store.live(now)
        for feed_id, lease_end in list(self._live.items()):
            sub = self._due_for_renewal(feed_id, lease_end, now)
            if sub is not None:
                self._wanted[feed_id] = (sub.hub, sub.topic)
        wanted, self._wanted = self._wanted, {}
        # Concurrently, bounded: a first poll of many feeds finds many hubs, and one hub
        # that does not answer must not hold the others (nor this loop) for its deadline.
        slots = asyncio.Semaphore(SUBSCRIBE_CONCURRENCY)

        async def one(feed_id: str, hub: str, topic: str) -> None:
            async with slots:
                await self.subscribe(feed_id, hub, topic)

        outcomes = await asyncio.gather(
            *(one(feed_id, hub, topic) for feed_id, (hub, topic) in wanted.items()),
            return_exceptions=True,
        )
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                raise outcome  # a Redis outage: the next polls ask again

    def _due_for_renewal(self, feed_id: str, lease_end: float, now: float) -> Subscription | None:
        """The subscription when a fifth of its lease is left and no request went out since
        the lease began (one renewal per lease: a hub that takes it but never verifies
        lets it lapse, and the next poll subscribes anew)."""
        if lease_end - now >= RENEW_SHARE * self.settings.websub_lease_s:
            return None  # far from its end, whatever the hub granted
        sub = self.store.get(feed_id)
        if sub is None or lease_end - now >= RENEW_SHARE * sub.lease_s:
            return None
        return sub if sub.requested_at <= sub.lease_end - sub.lease_s else None

    async def subscribe(self, feed_id: str, hub: str, topic: str) -> bool:
        """Ask ``hub`` for (or to renew) a subscription to ``topic``; True when it accepted
        the request (it verifies later). An active subscription stays active meanwhile."""
        now = self.clock()
        known = self.store.get(feed_id)
        same = known is not None and (known.hub, known.topic) == (hub, topic)
        secret = known.secret if same and known else secrets.token_hex(32)
        keep = same and known is not None and known.state == "active"
        sub = known if keep and known else Subscription(hub, topic, secret, "pending")
        sub = dataclasses.replace(sub, requested_at=now)
        self.store.put(
            feed_id, sub, max(self.settings.websub_lease_s, sub.lease_s) + LEASE_MARGIN_S
        )
        form = {
            "hub.mode": "subscribe", "hub.topic": topic, "hub.secret": secret,
            "hub.callback": f"{self.callback_base}/{feed_id}",
            "hub.lease_seconds": str(self.settings.websub_lease_s),
        }  # fmt: skip
        accepted = await self._send(feed_id, hub, topic, form)
        if not accepted and not keep:
            self.store.delete(feed_id)
        wait = VERIFY_WAIT_S if accepted else RETRY_AFTER_FAILURE_S
        self._not_before[feed_id] = now + wait
        return accepted

    async def forget_others(self, feeds: Sequence[Feed]) -> int:
        """Unsubscribe the feeds that left the list (at start, after the poller registered
        the list); returns how many. Their records go now: pushes for them are refused."""
        listed = {feed.feed_id for feed in feeds}
        gone = [feed_id for feed_id in self.store.subscribed() if feed_id not in listed]
        for feed_id in gone:
            sub = self.store.get(feed_id)
            self.store.delete(feed_id)
            if sub is None:
                continue
            self.store.put(
                feed_id, dataclasses.replace(sub, state="unsubscribing"), int(VERIFY_WAIT_S)
            )
            form = {
                "hub.mode": "unsubscribe", "hub.topic": sub.topic,
                "hub.callback": f"{self.callback_base}/{feed_id}",
            }  # fmt: skip
            await self._send(feed_id, sub.hub, sub.topic, form)
        return len(gone)

    async def _send(self, feed_id: str, hub: str, topic: str, form: Mapping[str, str]) -> bool:
        mode = form["hub.mode"]
        with structlog.contextvars.bound_contextvars(feed=topic, hub=redact_url(hub)):
            try:
                status = await self.fetcher.post_form(hub, form)
            except FetchError as exc:
                log.warning("websub.hub_unreachable", mode=mode, kind=exc.kind)
                return False
            if 200 <= status < 300:
                log.info("websub.requested", mode=mode, status=status, feed_id=feed_id)
                return True
            log.warning("websub.hub_refused", mode=mode, status=status, feed_id=feed_id)
            return False

    # --- the hub's side (health server threads) -------------------------------------

    def handle(
        self,
        method: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        read: Callable[[int], bytes],
    ) -> Response:
        """Answer a request to ``/websub/<feed id>``; anything else is not found."""
        feed_id = path[len(ROUTE) :] if path.startswith(ROUTE) else ""
        if not _FEED_ID.fullmatch(feed_id):
            return _NOT_FOUND
        try:
            if method == "GET":
                return self.verify(feed_id, parse_qs(query, keep_blank_values=True))
            if method == "POST":
                return self.notify(feed_id, headers, read)
        except redis.RedisError:
            log.warning("websub.redis_unavailable", feed_id=feed_id)
            return (503, "text/plain", b"unavailable, try again")
        except Exception:
            # The hub learns nothing of what broke; the log has the traceback.
            log.exception("websub.callback_failed", feed_id=feed_id)
            return (500, "text/plain", b"internal error")
        return (405, "text/plain", b"method not allowed")

    def verify(self, feed_id: str, params: Mapping[str, list[str]]) -> Response:
        """The hub's verification of intent: echo ``hub.challenge`` only for a topic we
        asked for, a feed still listed, and a subscription in the matching state."""

        def param(name: str) -> str:
            return (params.get(name) or [""])[0]

        mode, topic, challenge = param("hub.mode"), param("hub.topic"), param("hub.challenge")
        sub = self.store.get(feed_id)
        if sub is None or sub.topic != topic:
            return _NOT_FOUND
        with structlog.contextvars.bound_contextvars(feed=topic, feed_id=feed_id):
            if mode == "denied":
                self.store.delete(feed_id)
                log.warning("websub.denied", reason=param("hub.reason")[:200])
                return (200, "text/plain", b"")
            if not challenge or len(challenge) > MAX_CHALLENGE_CHARS:
                return _NOT_FOUND
            if mode == "unsubscribe" and sub.state == "unsubscribing":
                self.store.delete(feed_id)
                log.info("websub.unsubscribed")
                return (200, "text/plain", challenge.encode())
            if mode == "subscribe" and self._awaited(feed_id, sub):
                lease_s = _lease(param("hub.lease_seconds"), self.settings.websub_lease_s)
                active = dataclasses.replace(
                    sub, state="active", lease_s=lease_s, lease_end=self.clock() + lease_s
                )
                self.store.put(feed_id, active, lease_s + LEASE_MARGIN_S)
                log.info("websub.subscribed", lease_s=lease_s)
                return (200, "text/plain", challenge.encode())
        return _NOT_FOUND

    def notify(
        self, feed_id: str, headers: Mapping[str, str], read: Callable[[int], bytes]
    ) -> Response:
        """A content notification: signed with the subscription's secret, it is a poll
        result; unsigned or wrongly signed, it is acknowledged (WebSub wants a 2xx, so a
        forger learns nothing) and dropped."""
        length = headers.get("content-length") or ""
        if not length.isdigit():
            return (411, "text/plain", b"length required")
        if int(length) > self.settings.max_feed_bytes:
            WEBSUB_NOTIFICATIONS.labels(result="too_large").inc()
            return (413, "text/plain", b"too large")
        data = read(int(length))
        sub = self.store.get(feed_id)
        feed = self._feed(feed_id)
        if sub is None or sub.state != "active" or sub.lease_end <= self.clock() or feed is None:
            WEBSUB_NOTIFICATIONS.labels(result="no_subscription").inc()
            return (410, "text/plain", b"no subscription")
        with structlog.contextvars.bound_contextvars(feed=feed.url, feed_id=feed_id):
            if not signature_ok(sub.secret, data, headers.get("x-hub-signature")):
                log.warning("websub.bad_signature", bytes=len(data))
                WEBSUB_NOTIFICATIONS.labels(result="bad_signature").inc()
                return _ACCEPTED
            return self._ingest(feed, data, headers)

    def _ingest(self, feed: Feed, data: bytes, headers: Mapping[str, str]) -> Response:
        ctype = headers.get("content-type") or ""
        try:
            parsed = parse_feed(
                data, {"content-type": ctype}, feed.url, self.settings.max_items_per_feed
            )
        except ValueError as exc:
            log.warning("websub.not_a_feed", problem=str(exc)[:200])
            WEBSUB_NOTIFICATIONS.labels(result="not_a_feed").inc()
            return _ACCEPTED
        queued = self.poller.queue_pushed(feed, parsed)
        if queued:
            # Polls of a pushed feed find nothing new: without this, it would look stale.
            self.poller.text_redis.hset(
                keys.feed_state(feed.feed_id), "last_new_item_at", str(self.clock())
            )
        log.info("websub.pushed", items=len(parsed.items), queued=queued)
        WEBSUB_NOTIFICATIONS.labels(result="queued").inc()
        return _ACCEPTED

    def _feed(self, feed_id: str) -> Feed | None:
        return self.poller.store.feeds([feed_id])[0]

    def _awaited(self, feed_id: str, sub: Subscription) -> bool:
        """A subscription verification we asked for: pending or active, requested lately,
        for a feed still listed."""
        recent = self.clock() - sub.requested_at <= VERIFY_WINDOW_S
        return sub.state in ("pending", "active") and recent and self._feed(feed_id) is not None


def _lease(text: str, asked_s: int) -> int:
    """The lease the hub granted (``hub.lease_seconds``), ours when it named none."""
    try:
        granted = int(text)
    except ValueError:
        return asked_s
    return min(granted, MAX_LEASE_S) if granted > 0 else asked_s
