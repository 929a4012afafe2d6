"""The guarded HTTP client against real local servers: each safety limit holds."""

from __future__ import annotations

import asyncio
import gzip
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pytest_httpserver import HTTPServer

from service.errors import FetchError, PermanentFetchError, TransientFetchError
from service.fetch import (
    Fetcher,
    FetchResult,
    classify_status,
    is_public_address,
    parse_retry_after,
)
from service.settings import Settings


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


def test_connection_refused_is_transient(local: Settings) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(TransientFetchError) as info:
        fetch(local, f"http://127.0.0.1:{port}/")
    assert info.value.kind == "connect"
