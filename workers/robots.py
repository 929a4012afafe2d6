"""robots.txt: may we fetch this URL? Fetched once per origin and cached in memory.

What a fetch of ``/robots.txt`` means follows RFC 9309 (§2.3.1), with one stricter choice:

- 200: the file's rules, for our product token (``tradewire`` from ``tradewire/0.1 (...)``);
- 401 and 403: everything disallowed. RFC 9309 counts every 4xx as "unavailable", which
  allows all; we keep the older convention (Google's, and ``urllib.robotparser``'s) that a
  site refusing us its robots.txt is refusing us, because erring the other way crawls a
  site that locked its door;
- other 4xx (404, 410, ...) or too many redirects: no rules, everything allowed;
- 5xx, 429, timeouts, refused connections: the file is *unreachable*, and §2.3.1.4 says to
  assume complete disallow. But a passing outage must not block a site for an hour, so
  that verdict is cached only ``error_ttl_s`` (5 minutes); and if an earlier copy was read,
  it is used meanwhile, which §2.4 permits while the file is unreachable;
- a file over 512 KB, a bad encoding or a refused address: disallowed, cached normally.

Rules are matched by ``urllib.robotparser``, which applies the first matching line of a
group rather than RFC 9309's longest match; files that list ``Allow`` before ``Disallow``
(the usual way) read the same either way.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
from collections.abc import Callable
from typing import Literal
from urllib.parse import urlsplit
from urllib.robotparser import RobotFileParser

from core.errors import FetchError, TransientFetchError
from core.fetch import Fetcher
from core.urls import is_web_url

ROBOTS_MAX_BYTES = 512 * 1024
ROBOTS_TTL_S = 3600.0
ROBOTS_ERROR_TTL_S = 300.0
MAX_CACHED_ORIGINS = 10_000

_DEFAULT_PORTS = {"http": 80, "https": 443}

Verdict = Literal["allow_all", "disallow_all", "rules"]


@dataclasses.dataclass(frozen=True)
class RobotsRules:
    """One origin's robots.txt, decided: allow all, disallow all, or the file's lines.

    ``unreachable`` marks a verdict forced by a server or network failure, which is
    rechecked soon and never replaces a copy read earlier.
    """

    verdict: Verdict
    lines: tuple[str, ...] = ()
    reason: str = ""  # a short label for logs: "ok", "http_404", "timeout", ...
    unreachable: bool = False

    @functools.cached_property
    def _parser(self) -> RobotFileParser:
        # Parsed once per rules object, on first use; cached_property writes the instance
        # __dict__ directly, which a frozen dataclass allows.
        parser = RobotFileParser()
        parser.parse(self.lines)
        return parser

    def permits(self, url: str, user_agent: str) -> bool:
        if self.verdict == "allow_all":
            return True
        if self.verdict == "disallow_all":
            return False
        return self._parser.can_fetch(product_token(user_agent), url)


def product_token(user_agent: str) -> str:
    """The name robots.txt groups are matched against: ``tradewire`` from
    ``tradewire/0.1 (+https://...)``. Lowercase, as RFC 9309 matching is case-insensitive."""
    words = user_agent.strip().split()
    return words[0].split("/")[0].lower() if words else ""


def origin_of(url: str) -> str:
    """``scheme://host:port`` with the port always explicit, so ``http://a.test`` and
    ``http://A.test:80/x`` share one robots.txt. Raises ValueError for non-http(s) URLs."""
    if not is_web_url(url):
        raise ValueError(f"not an http(s) URL: {url[:200]!r}")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{parts.port or _DEFAULT_PORTS[scheme]}"


def robots_txt_url(origin: str) -> str:
    scheme, _, rest = origin.partition("://")
    host, _, port = rest.rpartition(":")
    if int(port) == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}/robots.txt"
    return f"{scheme}://{host}:{port}/robots.txt"


def rules_from_body(body: bytes) -> RobotsRules:
    """A 200's rules. Undecodable bytes are replaced rather than refused, because a stray
    Latin-1 comment must not hide the ``Disallow`` lines around it."""
    text = body.decode("utf-8-sig", errors="replace")
    return RobotsRules("rules", lines=tuple(text.splitlines()), reason="ok")


def _http_status(error: FetchError) -> int | None:
    if error.kind.startswith("http_") and error.kind[5:].isdigit():
        return int(error.kind[5:])
    return None


def rules_for_failure(error: FetchError) -> RobotsRules:
    """What a failed robots.txt fetch means; see the module docstring for each case."""
    status = _http_status(error)
    if status in (401, 403):
        return RobotsRules("disallow_all", reason=error.kind)
    if status == 429 or (status is not None and status >= 500):
        return RobotsRules("disallow_all", reason=error.kind, unreachable=True)
    if status is not None or error.kind == "too_many_redirects":
        return RobotsRules("allow_all", reason=error.kind)
    if isinstance(error, TransientFetchError):  # timeout, connect, reset, dns
        return RobotsRules("disallow_all", reason=error.kind, unreachable=True)
    return RobotsRules("disallow_all", reason=error.kind)  # too_large, blocked_address, ...


async def fetch_robots_rules(fetcher: Fetcher, origin: str, max_bytes: int) -> RobotsRules:
    """Fetch and decide one origin's robots.txt; never raises a FetchError."""
    try:
        result = await fetcher.get(robots_txt_url(origin), max_bytes=max_bytes)
    except FetchError as exc:
        return rules_for_failure(exc)
    return rules_from_body(result.body)


@dataclasses.dataclass(frozen=True)
class _Entry:
    rules: RobotsRules
    expires_at: float


class RobotsCache:
    """Per-origin robots.txt rules held for ``ttl_s``; one per process, shared by tasks.

    Concurrent questions about an origin not yet cached wait for a single fetch, so a burst
    of article URLs from a new site costs that site one robots.txt request, not one each.
    """

    def __init__(
        self,
        ttl_s: float = ROBOTS_TTL_S,
        error_ttl_s: float = ROBOTS_ERROR_TTL_S,
        max_bytes: int = ROBOTS_MAX_BYTES,
        clock: Callable[[], float] = time.monotonic,
        max_origins: int = MAX_CACHED_ORIGINS,
    ) -> None:
        self.ttl_s = ttl_s
        self.error_ttl_s = error_ttl_s
        self.max_bytes = max_bytes
        self.clock = clock
        self.max_origins = max_origins
        self._entries: dict[str, _Entry] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def allowed(self, fetcher: Fetcher, url: str, user_agent: str) -> bool:
        """Whether ``user_agent`` may fetch ``url``. False for URLs that are not http(s)."""
        if not is_web_url(url):
            return False
        rules = await self.rules_for(fetcher, origin_of(url))
        return rules.permits(url, user_agent)

    async def rules_for(self, fetcher: Fetcher, origin: str) -> RobotsRules:
        entry = self._fresh(origin)
        if entry is not None:
            return entry.rules
        lock = self._locks.setdefault(origin, asyncio.Lock())
        async with lock:
            entry = self._fresh(origin)  # fetched by another task while we waited
            if entry is not None:
                return entry.rules
            rules = await fetch_robots_rules(fetcher, origin, self.max_bytes)
            return self._store(origin, rules).rules

    def _fresh(self, origin: str) -> _Entry | None:
        entry = self._entries.get(origin)
        return entry if entry is not None and entry.expires_at > self.clock() else None

    def _store(self, origin: str, rules: RobotsRules) -> _Entry:
        now = self.clock()
        previous = self._entries.pop(origin, None)
        if rules.unreachable:
            if previous is not None and not previous.rules.unreachable:
                rules = previous.rules  # the last copy read stands in while unreachable
            entry = _Entry(rules, now + self.error_ttl_s)
        else:
            entry = _Entry(rules, now + self.ttl_s)
        self._entries[origin] = entry  # re-inserted last: dict order is store order
        self._prune(now)
        return entry

    def _prune(self, now: float) -> None:
        """Bound memory on a crawl across many sites: drop expired entries, then the
        longest-stored ones."""
        if len(self._entries) <= self.max_origins:
            return
        for origin in [o for o, e in self._entries.items() if e.expires_at <= now]:
            del self._entries[origin]
        while len(self._entries) > self.max_origins:
            del self._entries[next(iter(self._entries))]
        for origin in [o for o, lock in self._locks.items() if not lock.locked()]:
            if origin not in self._entries:
                del self._locks[origin]
