"""The one HTTP client: guarded, bounded GETs for feeds and article pages.

Every fetch here
- accepts only http(s) URLs and refuses hosts that resolve to private, loopback, link-local
  or metadata addresses (unless ``allow_private_hosts``), checked again on every redirect hop;
- follows at most ``http_max_redirects`` redirects itself, so each hop is checked;
- runs under one overall deadline, because httpx's read timeout only measures inactivity
  and a server dripping a byte a second would otherwise never be cut off;
- decompresses gzip/deflate itself with a bound on the *decoded* size, so a gzip bomb is cut
  at the cap after at most one chunk of output, never inflated in memory.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import ipaddress
import math
import socket
import time
import zlib
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime

import httpx

from service.errors import FetchError, PermanentFetchError, TransientFetchError
from service.settings import Settings

Resolver = Callable[[str, int], Awaitable[list[str]]]

_REDIRECTS = {301, 302, 303, 307, 308}
_CHUNK = 64 * 1024
CONNECTIONS_PER_CLIENT = 8
DNS_CACHE_S = 60.0
DNS_CACHE_ENTRIES = 50_000
DISCARD_MAX_BYTES = 64 * 1024


@dataclasses.dataclass(frozen=True)
class FetchResult:
    """A completed GET: 200 with its body, or 304 with none."""

    url: str  # the final URL after redirects
    status: int
    headers: Mapping[str, str]
    body: bytes
    elapsed_s: float

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


async def system_resolver(host: str, port: int) -> list[str]:
    """All addresses ``host`` resolves to, through the event loop's getaddrinfo."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def is_public_address(address: str) -> bool:
    """False for loopback, private, link-local (169.254.169.254), reserved and multicast."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now if now is not None else datetime.now(UTC).timestamp()
    return max(0.0, when.timestamp() - current)


def classify_status(url: str, response: httpx.Response) -> FetchError | None:
    """Map a final (non-redirect) status to an error, or None when it is 200 or 304."""
    status = response.status_code
    if status in (200, 304):
        return None
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    if status == 429 or status >= 500:
        return TransientFetchError(url, f"http_{status}", retry_after_s=retry_after)
    if 200 < status < 300:
        return PermanentFetchError(url, f"http_{status}", "unexpected success status")
    return PermanentFetchError(url, f"http_{status}", retry_after_s=retry_after)


class _BoundedDecoder:
    """Content-Encoding decoding with a hard cap on decoded bytes."""

    def __init__(self, url: str, encoding: str, max_bytes: int) -> None:
        self.url = url
        self.max_bytes = max_bytes
        self.size = 0
        self.parts: list[bytes] = []
        encoding = encoding.strip().lower()
        if encoding in ("", "identity"):
            self._zlib = None
        elif encoding in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._zlib = zlib.decompressobj()
        else:
            raise PermanentFetchError(url, "bad_encoding", f"Content-Encoding {encoding!r}")

    def feed(self, chunk: bytes) -> None:
        if self._zlib is None:
            self._add(chunk)
            return
        data = chunk
        try:
            while data:
                out = self._zlib.decompress(data, self.max_bytes - self.size + 1)
                self._add(out)
                data = self._zlib.unconsumed_tail
        except zlib.error as exc:
            raise PermanentFetchError(self.url, "bad_encoding", str(exc)) from exc

    def finish(self) -> bytes:
        if self._zlib is not None:
            try:
                self._add(self._zlib.flush())
            except zlib.error as exc:
                raise PermanentFetchError(self.url, "bad_encoding", str(exc)) from exc
        return b"".join(self.parts)

    def _add(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.max_bytes:
            raise PermanentFetchError(self.url, "too_large", f"body over {self.max_bytes} bytes")
        self.parts.append(data)


class Fetcher:
    """Owns the ``httpx.AsyncClient``s; build one per process (after any fork), close it.

    Several small clients, each host always on the same one, rather than one big pool:
    httpcore scans every connection of a pool on each request, so one pool of 64 costs
    several times the CPU per poll of eight pools of 8 (httpcore issue 1035; measured in
    benchmarks/poller_bench.py). It also caps connections per host at 8.
    """

    def __init__(
        self,
        settings: Settings,
        transport: httpx.AsyncBaseTransport | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        self.settings = settings
        self.resolver = resolver or system_resolver
        self._dns: dict[tuple[str, int], tuple[float, list[str]]] = {}
        shards = max(1, math.ceil(settings.poll_concurrency / CONNECTIONS_PER_CLIENT))
        self.clients = [
            httpx.AsyncClient(
                transport=transport,
                follow_redirects=False,
                timeout=httpx.Timeout(
                    connect=settings.http_connect_timeout_s,
                    read=settings.http_read_timeout_s,
                    write=settings.http_read_timeout_s,
                    pool=settings.http_total_timeout_s,
                ),
                limits=httpx.Limits(
                    max_connections=CONNECTIONS_PER_CLIENT,
                    max_keepalive_connections=CONNECTIONS_PER_CLIENT,
                ),
                headers={
                    "User-Agent": settings.user_agent,
                    # Only encodings we can decode with a bound; never br/zstd.
                    "Accept-Encoding": "gzip, deflate",
                },
            )
            for _ in range(shards)
        ]

    def client_for(self, url: httpx.URL) -> httpx.AsyncClient:
        return self.clients[zlib.crc32(url.host.encode()) % len(self.clients)]

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()

    async def get(
        self,
        url: str,
        *,
        max_bytes: int,
        headers: Mapping[str, str] | None = None,
        accept_types: tuple[str, ...] | None = None,
    ) -> FetchResult:
        """GET ``url`` under every guard; raise a FetchError subclass on any failure.

        ``accept_types`` lists acceptable Content-Type prefixes; another type is refused
        before its body is read (a PDF where a page was expected).
        """
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.settings.http_total_timeout_s):
                return await self._follow(url, max_bytes, headers or {}, accept_types, started)
        except TimeoutError as exc:
            raise TransientFetchError(
                url, "timeout", f"no complete response in {self.settings.http_total_timeout_s}s"
            ) from exc

    async def _follow(
        self,
        url: str,
        max_bytes: int,
        headers: Mapping[str, str],
        accept_types: tuple[str, ...] | None,
        started: float,
    ) -> FetchResult:
        current = url
        for _hop in range(self.settings.http_max_redirects + 1):
            await self.check_url(current)
            try:
                client = self.client_for(httpx.URL(current))
                request = client.build_request("GET", current, headers=headers)
                response = await client.send(request, stream=True)
            except httpx.TimeoutException as exc:
                raise TransientFetchError(
                    current, "timeout", str(exc) or type(exc).__name__
                ) from exc
            except httpx.ConnectError as exc:
                raise TransientFetchError(current, "connect", str(exc)) from exc
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
                raise TransientFetchError(current, "reset", str(exc)) from exc
            except httpx.HTTPError as exc:
                raise TransientFetchError(current, "http_error", str(exc)) from exc
            try:
                if response.status_code in _REDIRECTS and "location" in response.headers:
                    await self._discard(response)
                    current = str(response.url.join(response.headers["location"]))
                    continue
                error = classify_status(current, response)
                if error is not None:
                    await self._discard(response)
                    raise error
                if response.status_code == 304:
                    await self._discard(response)
                    body = b""
                else:
                    self._check_type(current, response, accept_types)
                    body = await self._read_body(current, response, max_bytes)
                return FetchResult(
                    url=current,
                    status=response.status_code,
                    headers={k.lower(): v for k, v in response.headers.items()},
                    body=body,
                    elapsed_s=time.monotonic() - started,
                )
            finally:
                await response.aclose()
        raise PermanentFetchError(
            url, "too_many_redirects", f"more than {self.settings.http_max_redirects}"
        )

    async def check_url(self, url: str) -> None:
        """Refuse non-http(s) schemes and, unless allowed, non-public addresses."""
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise PermanentFetchError(url, "bad_url", str(exc)) from exc
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise PermanentFetchError(url, "bad_scheme", f"scheme {parsed.scheme!r}")
        if self.settings.allow_private_hosts:
            return
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            addresses = await self._resolve(parsed.host, port)
        except OSError as exc:
            raise TransientFetchError(url, "dns", str(exc)) from exc
        blocked = [a for a in addresses if not is_public_address(a)]
        if blocked or not addresses:
            raise PermanentFetchError(
                url, "blocked_address", f"{parsed.host} resolves to non-public {blocked}"
            )

    async def _resolve(self, host: str, port: int) -> list[str]:
        """The resolver's answer, remembered for ``DNS_CACHE_S``: polling thousands of feeds
        on a few hundred hosts must not cost a getaddrinfo (a thread hop) per request."""
        now = time.monotonic()
        cached = self._dns.get((host, port))
        if cached is not None and cached[0] > now:
            return cached[1]
        addresses = await self.resolver(host, port)
        if len(self._dns) > DNS_CACHE_ENTRIES:
            self._dns.clear()
        self._dns[(host, port)] = (now + DNS_CACHE_S, addresses)
        return addresses

    @staticmethod
    async def _discard(response: httpx.Response) -> None:
        """Read a small unwanted body (304, error, redirect) to its end, so the connection
        goes back to the pool instead of being closed; a large one is not worth it."""
        seen = 0
        try:
            async for chunk in response.aiter_raw(_CHUNK):
                seen += len(chunk)
                if seen > DISCARD_MAX_BYTES:
                    return
        except (httpx.HTTPError, httpx.StreamError):
            return

    @staticmethod
    def _check_type(
        url: str, response: httpx.Response, accept_types: tuple[str, ...] | None
    ) -> None:
        if accept_types is None:
            return
        ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype and not ctype.startswith(accept_types):
            raise PermanentFetchError(url, "unsupported_type", f"Content-Type {ctype!r}")

    @staticmethod
    async def _read_body(url: str, response: httpx.Response, max_bytes: int) -> bytes:
        declared = response.headers.get("content-length", "")
        encoding = response.headers.get("content-encoding", "")
        if declared.isdigit() and not encoding and int(declared) > max_bytes:
            raise PermanentFetchError(url, "too_large", f"Content-Length {declared}")
        decoder = _BoundedDecoder(url, encoding, max_bytes)
        try:
            async for chunk in response.aiter_raw(_CHUNK):
                decoder.feed(chunk)
        except httpx.TimeoutException as exc:
            raise TransientFetchError(url, "timeout", "stalled mid-body") from exc
        except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
            raise TransientFetchError(url, "reset", str(exc)) from exc
        return decoder.finish()
