"""The one HTTP client: guarded, bounded GETs for feeds and article pages.

Every fetch here
- accepts only http(s) URLs and refuses hosts that resolve to private, loopback, link-local
  or metadata addresses (unless ``allow_private_hosts``), checked again on every redirect hop;
- follows at most ``http_max_redirects`` redirects itself, so each hop is checked;
- runs under one overall deadline, because httpx's read timeout only measures inactivity
  and a server dripping a byte a second would otherwise never be cut off;
- decompresses gzip/deflate itself with a bound on the *decoded* size, so a gzip bomb is cut
  at the cap after at most one chunk of output, never inflated in memory;
- connects only to the addresses it vetted: the connector asks the same (cached) resolver
  that the address check used, so a name cannot rebind to 127.0.0.1 between check and connect.

httpx is the client API; the wire is aiohttp's (through the ``httpx-aiohttp`` transport).
httpcore spends twice aiohttp's CPU per request and scans its whole pool on every request
(httpcore issue 1035), while aiohttp's connector limits connections per host, which is the
politeness a poller needs (benchmarks/poller_bench.py measures both).
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import http.cookiejar
import ipaddress
import socket
import time
import zlib
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime

import aiohttp
import httpx
from aiohttp.abc import AbstractResolver, ResolveResult
from httpx_aiohttp import AiohttpTransport

from core.errors import FetchError, PermanentFetchError, TransientFetchError
from core.settings import Settings

Resolver = Callable[[str, int], Awaitable[list[str]]]

_REDIRECTS = {301, 302, 303, 307, 308}
_CHUNK = 64 * 1024
CONNECTIONS_PER_HOST = 8
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

    @property
    def not_modified(self) -> bool:
        return self.status == 304


async def system_resolver(host: str, port: int) -> list[str]:
    """All addresses ``host`` resolves to, through the event loop's getaddrinfo."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


# IPv6 prefixes whose packets go to an IPv4 address written in the low 32 bits. Python's
# is_global calls the NAT64 and IPv4-compatible forms public whatever IPv4 they carry.
_NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # RFC 4291, deprecated but still routed
# RFC 8215's local-use NAT64 prefix places the IPv4 where the operator chose: never public.
_NAT64_LOCAL_USE = ipaddress.IPv6Network("64:ff9b:1::/48")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address a mapped, 6to4, NAT64 or IPv4-compatible address reaches."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64_WELL_KNOWN or ip in _IPV4_COMPATIBLE:
        return ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
    return None


def is_public_address(address: str) -> bool:
    """False for loopback, private, link-local (169.254.169.254), reserved and multicast,
    and for IPv6 forms (mapped, 6to4, NAT64, IPv4-compatible) that embed such an IPv4."""
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _NAT64_LOCAL_USE:
            return False
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            ip = embedded
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


class BlockedAddressError(OSError):
    """A host resolves to an address we must not connect to."""


def transport_error_kind(exc: BaseException) -> str:
    """The poller's kind for a failure below HTTP: connect, dns, timeout or reset.

    httpx-aiohttp maps every aiohttp connection error to ConnectTimeout, so the aiohttp
    exception it chains (``__cause__``) is looked at first.
    """
    cause = exc.__cause__ if isinstance(exc.__cause__, aiohttp.ClientError) else exc
    if isinstance(cause, aiohttp.ClientConnectorDNSError):
        return "dns"
    if isinstance(cause, aiohttp.ClientConnectorError | httpx.ConnectError):
        return "connect"
    if isinstance(cause, aiohttp.ServerTimeoutError | httpx.TimeoutException | TimeoutError):
        return "timeout"
    if isinstance(cause, aiohttp.ClientError | httpx.TransportError):
        return "reset"  # dropped, reset, or not speaking HTTP: the connection broke
    return "http_error"


def describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


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


class _VettedResolver(AbstractResolver):
    """aiohttp's resolver for the connector: the Fetcher's cached answer, and only if every
    address in it may be connected to. Connections thus go to the addresses that were checked."""

    def __init__(self, fetcher: Fetcher) -> None:
        self.fetcher = fetcher

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await self.fetcher.vetted_addresses(host, port)
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in addresses
        ]

    async def close(self) -> None:
        return None


class Fetcher:
    """Owns the HTTP client; build one per process (after any fork) and close it.

    One ``httpx.AsyncClient`` over one aiohttp connector: at most ``poll_concurrency``
    connections in all and ``CONNECTIONS_PER_HOST`` to any one host, so a slow publisher
    holds its own connections and nobody else's. Cookies are neither kept nor sent: feeds
    and articles are fetched anonymously, and a jar filled by 100,000 feeds would only grow.
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
        self.client = httpx.AsyncClient(
            transport=transport or AiohttpTransport(client=self._session),
            follow_redirects=False,
            timeout=httpx.Timeout(
                connect=settings.http_connect_timeout_s,
                read=settings.http_read_timeout_s,
                write=settings.http_read_timeout_s,
                pool=settings.http_total_timeout_s,
            ),
            cookies=http.cookiejar.CookieJar(
                http.cookiejar.DefaultCookiePolicy(allowed_domains=[])
            ),
            headers={
                "User-Agent": settings.user_agent,
                # Only encodings we can decode with a bound; never br/zstd.
                "Accept-Encoding": "gzip, deflate",
            },
        )

    def _session(self) -> aiohttp.ClientSession:
        """Built on the first request, inside the event loop that will use it."""
        connector = aiohttp.TCPConnector(
            limit=max(self.settings.poll_concurrency, CONNECTIONS_PER_HOST),
            limit_per_host=CONNECTIONS_PER_HOST,
            resolver=_VettedResolver(self),
            use_dns_cache=False,  # ours, in vetted_addresses
            ssl=httpx.create_ssl_context(),
        )
        return aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False
        )

    async def aclose(self) -> None:
        await self.client.aclose()

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
        try:
            async with asyncio.timeout(self.settings.http_total_timeout_s):
                return await self._follow(url, max_bytes, headers or {}, accept_types)
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
    ) -> FetchResult:
        current = url
        for _hop in range(self.settings.http_max_redirects + 1):
            target = await self.check_url(current)
            try:
                request = self.client.build_request("GET", target, headers=headers)
                response = await self.client.send(request, stream=True)
            except (httpx.HTTPError, aiohttp.ClientError) as exc:
                raise TransientFetchError(
                    current, transport_error_kind(exc), describe(exc)
                ) from exc
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
                    # No body follows a 304 (RFC 9110): the connection is reusable as it
                    # stands. Draining the empty stream was 3 % of a poll's CPU.
                    body = b""
                else:
                    self._check_type(current, response, accept_types)
                    body = await self._read_body(current, response, max_bytes)
                return FetchResult(
                    url=current,
                    status=response.status_code,
                    headers={k.lower(): v for k, v in response.headers.items()},
                    body=body,
                )
            finally:
                await response.aclose()
        raise PermanentFetchError(
            url, "too_many_redirects", f"more than {self.settings.http_max_redirects}"
        )

    async def post_form(self, url: str, form: Mapping[str, str]) -> int:
        """POST a small form (a WebSub subscription request) under a GET's guards: the
        address checked, one overall deadline, no redirect followed, the answer's body
        discarded unread beyond a little. Returns the status; raises a FetchError."""
        try:
            async with asyncio.timeout(self.settings.http_total_timeout_s):
                target = await self.check_url(url)
                try:
                    request = self.client.build_request("POST", target, data=dict(form))
                    response = await self.client.send(request, stream=True)
                except (httpx.HTTPError, aiohttp.ClientError) as exc:
                    raise TransientFetchError(
                        url, transport_error_kind(exc), describe(exc)
                    ) from exc
                try:
                    await self._discard(response)
                finally:
                    await response.aclose()
                return response.status_code
        except TimeoutError as exc:
            raise TransientFetchError(
                url, "timeout", f"no complete response in {self.settings.http_total_timeout_s}s"
            ) from exc

    async def check_url(self, url: str) -> httpx.URL:
        """Refuse non-http(s) schemes and, unless allowed, non-public addresses. Returns the
        URL as parsed, and the request is built from it: parsing the string again was a
        third of building the request (35 of 96 µs here)."""
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise PermanentFetchError(url, "bad_url", str(exc)) from exc
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise PermanentFetchError(url, "bad_scheme", f"scheme {parsed.scheme!r}")
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            await self.vetted_addresses(parsed.host, port)
        except BlockedAddressError as exc:
            raise PermanentFetchError(url, "blocked_address", str(exc)) from exc
        except OSError as exc:
            raise TransientFetchError(url, "dns", str(exc)) from exc
        return parsed

    async def vetted_addresses(self, host: str, port: int) -> list[str]:
        """The addresses of ``host`` that may be connected to; BlockedAddressError when any
        of them is not public (unless ``allow_private_hosts``), OSError when it has none."""
        addresses = await self._resolve(host, port)
        if not addresses:
            raise OSError(f"{host} has no address")
        if not self.settings.allow_private_hosts:
            blocked = [a for a in addresses if not is_public_address(a)]
            if blocked:
                raise BlockedAddressError(f"{host} resolves to non-public {blocked}")
        return addresses

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
        except (httpx.HTTPError, httpx.StreamError, aiohttp.ClientError):
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
            async for chunk in response.aiter_raw():  # as they arrive: no re-chunking copies
                decoder.feed(chunk)
        except (httpx.HTTPError, aiohttp.ClientError) as exc:
            kind = transport_error_kind(exc)
            detail = "stalled mid-body" if kind == "timeout" else describe(exc)
            raise TransientFetchError(url, kind, detail) from exc
        return decoder.finish()
