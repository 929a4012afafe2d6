"""The guarded HTTP client against real local servers: each safety limit holds."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import httpx
import pytest
from pytest_httpserver import HTTPServer

from core.errors import FetchError, PermanentFetchError, TransientFetchError
from core.fetch import (
    CONNECTIONS_PER_HOST,
    BlockedAddressError,
    Fetcher,
    FetchResult,
    _VettedResolver,
    classify_status,
    is_public_address,
    parse_retry_after,
    transport_error_kind,
)
from core.settings import Settings
from tests.httpd import NotModified, serve_handler


def fetch(settings: Settings, url: str, **kwargs: Any) -> FetchResult:
    async def go() -> FetchResult:
        fetcher = Fetcher(settings)
        try:
            return await fetcher.get(url, max_bytes=kwargs.pop("max_bytes", 1_000_000), **kwargs)
        finally:
            await fetcher.aclose()

    return asyncio.run(go())


@pytest.fixture
def local(settings: Settings) -> Settings:
    return settings.with_overrides(allow_private_hosts=True)


def test_200_and_conditional_304(httpserver: HTTPServer, local: Settings) -> None:
    """The validator is sent, and 304 comes back as not_modified with no body."""
    httpserver.expect_request("/feed", headers={"If-None-Match": '"v1"'}).respond_with_data(
        "", status=304
    )
    httpserver.expect_request("/feed").respond_with_data("<rss/>", headers={"ETag": '"v1"'})
    first = fetch(local, httpserver.url_for("/feed"), headers={"If-None-Match": '"v0"'})
    assert first.status == 200 and first.body == b"<rss/>" and first.headers["etag"] == '"v1"'
    second = fetch(local, httpserver.url_for("/feed"), headers={"If-None-Match": '"v1"'})
    assert second.not_modified and second.body == b""


class KeepAliveNotModified(NotModified):
    """``NotModified`` on HTTP/1.1 keep-alive connections, counting the connections opened."""

    protocol_version = "HTTP/1.1"
    connections = 0

    def setup(self) -> None:
        type(self).connections += 1
        super().setup()


def test_a_304_leaves_its_connection_for_the_next_request(local: Settings) -> None:
    """A 304 has no body to drain: the connection goes back to the pool as it stands, and
    five conditional polls in a row use one connection."""

    async def five_polls(url: str) -> list[FetchResult]:
        fetcher = Fetcher(local)
        try:
            return [
                await fetcher.get(url, max_bytes=1000, headers={"If-None-Match": '"v1"'})
                for _ in range(5)
            ]
        finally:
            await fetcher.aclose()

    with serve_handler(KeepAliveNotModified) as base:
        results = asyncio.run(five_polls(f"{base}/feed"))
    assert [(r.not_modified, r.body) for r in results] == [(True, b"")] * 5
    assert KeepAliveNotModified.connections == 1


def test_user_agent_is_sent(httpserver: HTTPServer, local: Settings) -> None:
    httpserver.expect_request("/", headers={"User-Agent": local.user_agent}).respond_with_data("ok")
    assert fetch(local, httpserver.url_for("/")).body == b"ok"


def test_oversized_body_is_cut_at_the_cap(httpserver: HTTPServer, local: Settings) -> None:
    httpserver.expect_request("/big").respond_with_data(b"x" * 300_000)
    with pytest.raises(PermanentFetchError) as info:
        fetch(local, httpserver.url_for("/big"), max_bytes=100_000)
    assert info.value.kind == "too_large"


def test_gzip_bomb_is_cut_after_decompression(httpserver: HTTPServer, local: Settings) -> None:
    """200 MB of zeros gzip to ~200 KB; the cap applies to decoded bytes, not the wire."""
    bomb = gzip.compress(b"\0" * 200_000_000, compresslevel=9)
    assert len(bomb) < 300_000
    httpserver.expect_request("/bomb").respond_with_data(bomb, headers={"Content-Encoding": "gzip"})
    with pytest.raises(PermanentFetchError) as info:
        fetch(local, httpserver.url_for("/bomb"), max_bytes=1_000_000)
    assert info.value.kind == "too_large"


def test_gzip_within_cap_is_decoded(httpserver: HTTPServer, local: Settings) -> None:
    httpserver.expect_request("/gz").respond_with_data(
        gzip.compress("héllo".encode()), headers={"Content-Encoding": "gzip"}
    )
    assert fetch(local, httpserver.url_for("/gz")).body == "héllo".encode()


def test_redirect_loop_is_refused(httpserver: HTTPServer, local: Settings) -> None:
    httpserver.expect_request("/a").respond_with_data("", status=302, headers={"Location": "/b"})
    httpserver.expect_request("/b").respond_with_data("", status=302, headers={"Location": "/a"})
    with pytest.raises(PermanentFetchError) as info:
        fetch(local, httpserver.url_for("/a"))
    assert info.value.kind == "too_many_redirects"


def test_redirects_are_followed_to_the_final_url(httpserver: HTTPServer, local: Settings) -> None:
    httpserver.expect_request("/old").respond_with_data(
        "", status=301, headers={"Location": "/new"}
    )
    httpserver.expect_request("/new").respond_with_data("here")
    result = fetch(local, httpserver.url_for("/old"))
    assert result.body == b"here" and result.url.endswith("/new")


def test_private_addresses_are_refused_unless_allowed(
    httpserver: HTTPServer, settings: Settings
) -> None:
    """127.0.0.1 is refused by default; the server never sees the request."""
    httpserver.expect_request("/").respond_with_data("secret")
    strict = settings.with_overrides(allow_private_hosts=False)
    with pytest.raises(PermanentFetchError) as info:
        fetch(strict, httpserver.url_for("/"))
    assert info.value.kind == "blocked_address"
    assert len(httpserver.log) == 0


def test_redirect_to_a_private_address_is_refused(settings: Settings) -> None:
    """A public-looking host that redirects to the metadata address is stopped at the hop."""

    async def resolver(host: str, port: int) -> list[str]:
        return {"public.test": ["93.184.216.34"]}.get(host, ["169.254.169.254"])

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "public.test":
            return httpx.Response(302, headers={"Location": "http://metadata.internal/latest"})
        return httpx.Response(200, text="credentials")

    async def go() -> None:
        fetcher = Fetcher(settings.with_overrides(allow_private_hosts=False),
                          transport=httpx.MockTransport(handler), resolver=resolver)  # fmt: skip
        try:
            await fetcher.get("http://public.test/", max_bytes=1000)
        finally:
            await fetcher.aclose()

    with pytest.raises(PermanentFetchError) as info:
        asyncio.run(go())
    assert info.value.kind == "blocked_address"
    assert "metadata.internal" in info.value.url


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://example.com/x", "javascript:alert(1)"]
)
def test_non_http_schemes_are_refused(local: Settings, url: str) -> None:
    with pytest.raises(PermanentFetchError) as info:
        fetch(local, url)
    assert info.value.kind in {"bad_scheme", "bad_url"}


@pytest.fixture
def drip_server() -> Iterator[str]:
    """A server that sends headers, then one byte per 0.3 s forever (slowloris)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(5)
    stop = threading.Event()

    def serve() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 100000\r\n\r\n"
            )
            try:
                while not stop.is_set():
                    conn.sendall(b"x")
                    time.sleep(0.3)
            except OSError:
                pass
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    stop.set()
    thread.join(2)
    sock.close()


def test_dripping_server_hits_the_total_deadline(drip_server: str, local: Settings) -> None:
    """Each byte arrives within the read timeout; only the overall deadline stops it."""
    quick = local.with_overrides(http_total_timeout_s=1.5, http_read_timeout_s=1.0)
    started = time.monotonic()
    with pytest.raises(TransientFetchError) as info:
        fetch(quick, drip_server)
    assert info.value.kind == "timeout"
    assert time.monotonic() - started < 4


def test_pdf_is_refused_before_its_body_is_read(httpserver: HTTPServer, local: Settings) -> None:
    httpserver.expect_request("/doc").respond_with_data(
        b"%PDF-1.7" + b"0" * 1000, content_type="application/pdf"
    )
    with pytest.raises(PermanentFetchError) as info:
        fetch(local, httpserver.url_for("/doc"), accept_types=("text/html",))
    assert info.value.kind == "unsupported_type"


def test_status_classification() -> None:
    """429 and 5xx are transient (with Retry-After); other 4xx are permanent."""

    def classify(status: int, headers: dict[str, str] | None = None) -> FetchError | None:
        request = httpx.Request("GET", "https://x.test/")
        return classify_status(
            "https://x.test/", httpx.Response(status, headers=headers, request=request)
        )

    assert classify(200) is None and classify(304) is None
    limited = classify(429, {"Retry-After": "120"})
    assert isinstance(limited, TransientFetchError) and limited.retry_after_s == 120
    assert isinstance(classify(503), TransientFetchError)
    assert isinstance(classify(404), PermanentFetchError) and classify(404).kind == "http_404"  # type: ignore[union-attr]


def test_retry_after_date_and_address_rules() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == pytest.approx(
        10.0
    )
    assert parse_retry_after("soon") is None
    for address in (
        "127.0.0.1",
        "10.1.2.3",
        "169.254.169.254",
        "192.168.0.1",
        "::1",
        "fd00::1",
        "::ffff:127.0.0.1",
        "100.64.0.1",
    ):
        assert not is_public_address(address), address
    assert is_public_address("93.184.216.34")


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("64:ff9b::7f00:1", False),  # NAT64 (RFC 6052) of 127.0.0.1
        ("64:ff9b::a00:7", False),  # NAT64 of 10.0.0.7
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 of 169.254.169.254
        ("64:ff9b:1::a00:1", False),  # NAT64 local-use prefix (RFC 8215): never public
        ("2002:a00:1::", False),  # 6to4 of 10.0.0.1
        ("2002:7f00:1::1", False),  # 6to4 of 127.0.0.1
        ("2002:e000:1::", False),  # 6to4 of multicast 224.0.0.1
        ("::127.0.0.1", False),  # IPv4-compatible
        ("::10.0.0.1", False),
        ("::ffff:169.254.169.254", False),  # IPv4-mapped
        ("::", False),
        ("64:ff9b::5db8:d822", True),  # NAT64 of 93.184.216.34
        ("2002:5db8:d822::1", True),  # 6to4 of 93.184.216.34
        ("::ffff:93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
    ],
)
def test_ipv6_forms_are_judged_by_the_ipv4_they_embed(address: str, public: bool) -> None:
    assert is_public_address(address) is public


def test_connection_refused_is_transient(local: Settings) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(TransientFetchError) as info:
        fetch(local, f"http://127.0.0.1:{port}/")
    assert info.value.kind == "connect"


def test_connections_go_to_the_addresses_the_resolver_vetted(
    httpserver: HTTPServer, local: Settings
) -> None:
    """The connector asks the Fetcher's resolver, not the system's: a name only our
    resolver knows reaches the server it names (the address check and the connection use
    one answer, so a name cannot rebind between them)."""
    httpserver.expect_request("/feed").respond_with_data("pinned")
    asked: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        asked.append(host)
        return {"feeds.tradewire.invalid": ["127.0.0.1"]}[host]

    async def go() -> FetchResult:
        fetcher = Fetcher(local, resolver=resolver)
        try:
            return await fetcher.get(
                f"http://feeds.tradewire.invalid:{httpserver.port}/feed", max_bytes=1000
            )
        finally:
            await fetcher.aclose()

    assert asyncio.run(go()).body == b"pinned"
    assert set(asked) == {"feeds.tradewire.invalid"}
    assert httpserver.log[0][0].headers["Host"] == f"feeds.tradewire.invalid:{httpserver.port}"


def test_the_connector_refuses_a_private_answer(settings: Settings) -> None:
    """What the connector is given to connect to: only vetted addresses, or an error."""
    answers = {"public.test": ["93.184.216.34"], "rebound.test": ["93.184.216.34", "10.0.0.7"]}

    async def resolver(host: str, port: int) -> list[str]:
        return answers[host]

    async def go() -> tuple[list[str], BaseException | None]:
        fetcher = Fetcher(settings.with_overrides(allow_private_hosts=False), resolver=resolver)
        connector_resolver = _VettedResolver(fetcher)
        public = [r["host"] for r in await connector_resolver.resolve("public.test", 80)]
        try:
            await connector_resolver.resolve("rebound.test", 80)
        except BlockedAddressError as exc:
            return public, exc
        finally:
            await fetcher.aclose()
        return public, None

    public, refused = asyncio.run(go())
    assert public == ["93.184.216.34"]
    assert isinstance(refused, BlockedAddressError) and "10.0.0.7" in str(refused)


class CountingServer:
    """Answers every request after ``delay_s`` on each of ``hosts``; counts how many
    connections each host has open at most."""

    def __init__(self, hosts: list[str], delay_s: float) -> None:
        self.delay_s = delay_s
        self.open: dict[str, int] = dict.fromkeys(hosts, 0)
        self.peak: dict[str, int] = dict.fromkeys(hosts, 0)
        self.answered: dict[str, list[float]] = {h: [] for h in hosts}
        self.hosts = hosts
        self.port = 0
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        self.ready.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.server = await asyncio.start_server(self._handle, self.hosts, self.port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host = writer.get_extra_info("sockname")[0]
        self.open[host] += 1
        self.peak[host] = max(self.peak[host], self.open[host])
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                slow = b"/slow" in head.split(b"\r\n", 1)[0]
                await asyncio.sleep(self.delay_s if slow else 0)
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n"
                    b"Set-Cookie: session=abc; Path=/\r\n\r\nok"
                )
                await writer.drain()
                self.answered[host].append(time.monotonic())
        finally:
            self.open[host] -= 1
            writer.close()

    def __enter__(self) -> CountingServer:
        self.thread.start()
        self.ready.wait(5)
        return self

    def __exit__(self, *exc: object) -> None:
        async def close() -> None:
            self.server.close()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def test_a_slow_host_holds_only_its_own_connections(local: Settings) -> None:
    """30 requests at once to a slow host open at most CONNECTIONS_PER_HOST connections
    there, and a second host meanwhile answers at once."""
    with CountingServer(["127.0.0.1", "127.0.0.2"], delay_s=0.5) as server:

        async def go() -> float:
            fetcher = Fetcher(local)
            try:
                slow = [
                    asyncio.create_task(
                        fetcher.get(f"http://127.0.0.1:{server.port}/slow/{i}", max_bytes=100)
                    )
                    for i in range(30)
                ]
                await asyncio.sleep(0.1)
                started = time.monotonic()
                for i in range(5):
                    await fetcher.get(f"http://127.0.0.2:{server.port}/fast/{i}", max_bytes=100)
                fast_s = time.monotonic() - started
                await asyncio.gather(*slow)
                return fast_s
            finally:
                await fetcher.aclose()

        fast_s = asyncio.run(go())
    assert server.peak["127.0.0.1"] == CONNECTIONS_PER_HOST
    assert len(server.answered["127.0.0.1"]) == 30
    assert fast_s < 0.4  # not queued behind the slow host's 30 x 0.5 s / 8 connections


def test_cookies_are_neither_kept_nor_sent(httpserver: HTTPServer, local: Settings) -> None:
    httpserver.expect_request("/").respond_with_data("ok", headers={"Set-Cookie": "id=1; Path=/"})

    async def go() -> None:
        fetcher = Fetcher(local)
        try:
            for _ in range(2):
                await fetcher.get(httpserver.url_for("/"), max_bytes=100)
        finally:
            await fetcher.aclose()

    asyncio.run(go())
    assert [request.headers.get("Cookie") for request, _ in httpserver.log] == [None, None]


def test_a_connection_closed_without_an_answer_is_a_reset(local: Settings) -> None:
    """aiohttp retries an idempotent GET once on a dropped connection; then it is a reset."""
    accepted: list[float] = []
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        sock.settimeout(5)
        port = sock.getsockname()[1]

        def close_each() -> None:
            with contextlib.suppress(OSError):
                while len(accepted) < 3:
                    conn, _ = sock.accept()
                    accepted.append(time.monotonic())
                    conn.recv(1000)
                    conn.close()

        thread = threading.Thread(target=close_each, daemon=True)
        thread.start()
        with pytest.raises(TransientFetchError) as info:
            fetch(local.with_overrides(http_total_timeout_s=3.0), f"http://127.0.0.1:{port}/")
    thread.join(6)
    assert info.value.kind == "reset"
    assert len(accepted) == 2


def test_transport_error_kinds() -> None:
    """httpx-aiohttp turns every aiohttp connection error into ConnectTimeout; the kind
    comes from the aiohttp error it chains."""
    key = aiohttp.client_reqrep.ConnectionKey("h", 80, False, True, None, None, None)

    def chained(cause: BaseException) -> httpx.ConnectTimeout:
        exc = httpx.ConnectTimeout("x")
        exc.__cause__ = cause
        return exc

    assert transport_error_kind(chained(aiohttp.ServerDisconnectedError())) == "reset"
    assert transport_error_kind(chained(aiohttp.ClientConnectorError(key, OSError(111, "refused")))) == "connect"  # fmt: skip
    assert transport_error_kind(chained(aiohttp.ClientConnectorDNSError(key, OSError(-2, "no name")))) == "dns"  # fmt: skip
    assert transport_error_kind(chained(aiohttp.SocketTimeoutError())) == "timeout"
    assert transport_error_kind(httpx.ReadTimeout("slow")) == "timeout"
    assert transport_error_kind(httpx.RemoteProtocolError("garbage")) == "reset"
