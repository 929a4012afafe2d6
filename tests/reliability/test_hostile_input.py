"""Hostile feeds, pages and credentials: the service keeps running and reports a reason."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis
import structlog
import yaml
from pytest_httpserver import HTTPServer
from structlog.testing import capture_logs
from werkzeug import Request, Response

from core import keys, queues
from core.models import Feed
from core.settings import Settings
from service.demo import SITE_DIR
from service.embedded_redis import EmbeddedRedis
from tests.conftest import ROOT, free_port
from tests.integration.test_pipeline import run_pipeline
from tests.integration.test_poller import Clock, poll
from tests.reliability.conftest import Recorder

GOOD_ITEM = "<item><title>ok</title><link>https://good.example/story</link></item>"
BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
    '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">'
    '<!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;"><!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">'
    '<!ENTITY g "&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;"><!ENTITY h "&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;">]>'
    "<rss version='2.0'><channel><title>&h;</title>" + GOOD_ITEM + "</channel></rss>"
)
XXE = (
    '<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    "<rss version='2.0'><channel><title>t</title><item><title>&xxe;</title>"
    "<link>https://good.example/xxe</link></item></channel></rss>"
)
HOSTILE_FEEDS: dict[str, bytes] = {
    "not_xml": b"\x89PNG\r\n\x1a\n this is not a feed",
    "truncated": b"<rss version='2.0'><channel><title>t</title><item><title>cut",
    "billion_laughs": BILLION_LAUGHS.encode(),
    "xxe": XXE.encode(),
    "items_50000": (
        "<rss version='2.0'><channel><title>big</title>"
        + "".join(
            f"<item><title>{i}</title><link>https://big.example/{i}</link></item>"
            for i in range(50_000)
        )
        + "</channel></rss>"
    ).encode(),
    "bad_links": (
        b"<rss version='2.0'><channel><title>t</title>"
        b"<item><link>javascript:alert(1)</link></item><item><link>file:///etc/passwd</link></item>"
        b"<item><link>data:text/html,hi</link></item></channel></rss>"
    ),
    "title_1mb": (
        "<rss version='2.0'><channel><title>"
        + "T" * 1_000_000
        + "</title>"
        + GOOD_ITEM
        + "</channel></rss>"
    ).encode(),
    "invalid_utf8": b"<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>\xff\xfe bad \xc3</title>"
    + GOOD_ITEM.encode()
    + b"</channel></rss>",
}


@pytest.mark.scenario(
    "hostile feeds", "not XML, truncated XML, billion laughs, XXE, 50,000 items, javascript:/file:/data: "
    "links, a 1 MB title, invalid UTF-8 — beside one healthy feed",
    "each gets a result or a per-feed reason; the healthy feed flows; no entity expanded, no file read",
)  # fmt: skip
def test_hostile_feeds(
    record: Recorder,
    httpserver: HTTPServer,
    settings: Settings,
    text_redis: redis.Redis,
    rq_redis: redis.Redis,
) -> None:
    for name, body in HOSTILE_FEEDS.items():
        httpserver.expect_request(f"/{name}").respond_with_data(
            body, content_type="application/rss+xml"
        )
    httpserver.expect_request("/healthy").respond_with_data(
        f"<rss version='2.0'><channel><title>h</title>{GOOD_ITEM.replace('story', 'healthy')}</channel></rss>",
        content_type="application/rss+xml",
    )
    feeds = {name: Feed(url=httpserver.url_for(f"/{name}")) for name in [*HOSTILE_FEEDS, "healthy"]}
    small = settings.with_overrides(max_feed_bytes=8 * 1024 * 1024)
    report = poll(small, text_redis, rq_redis, list(feeds.values()), Clock())
    outcomes = {
        name: text_redis.hget(keys.feed_state(f.feed_id), "last_status")
        for name, f in feeds.items()
    }
    items = [a for job in queues.queue(rq_redis, keys.EXTRACT_QUEUE).jobs for a in job.args[0]]
    urls = [item["url"] for item in items]
    titles = " ".join(item["title"] for item in items)
    record.observed(
        f"{report.polled} polled, {report.failed} failed; statuses {outcomes}; {len(items)} items queued, "
        f"the largest title {max(len(item['title']) for item in items)} chars"
    )
    assert outcomes["healthy"] == "200" and "https://good.example/healthy" in urls
    assert outcomes["not_xml"] == "not_a_feed"
    assert "root:" not in titles and "lollol" not in titles
    assert not any(u.startswith(("javascript:", "file:", "data:")) for u in urls)
    assert len([u for u in urls if "big.example" in u]) == settings.max_items_per_feed
    assert all(len(item["title"]) <= 1000 for item in items)
    assert all(status for status in outcomes.values())


def _page_site(server: HTTPServer) -> dict[str, str]:
    real = (SITE_DIR / "articles" / "fentanyl-tariffs-cut.html").read_bytes()
    bomb = gzip.compress(b"<html><body>" + b"<p>x</p>" * 40_000_000, compresslevel=9)

    def endless(_: Request) -> Response:
        def chunks():  # type: ignore[no-untyped-def]
            yield b"<html><body>"
            for _ in range(100_000):
                yield b"<p>" + b"y" * 8192 + b"</p>"

        return Response(chunks(), content_type="text/html")

    server.expect_request("/bomb").respond_with_data(
        bomb, content_type="text/html", headers={"Content-Encoding": "gzip"}
    )
    server.expect_request("/endless").respond_with_handler(endless)
    for i in range(30):
        server.expect_request(f"/hop{i}").respond_with_data(
            "", status=302, headers={"Location": f"/hop{i + 1}"}
        )
    server.expect_request("/pdf").respond_with_data(
        b"%PDF-1.7\n" + b"0" * 5000, content_type="application/pdf"
    )
    server.expect_request("/wrong-charset").respond_with_data(
        real.replace(b'charset="utf-8"', b'charset="iso-8859-1"').replace(
            b"charset=utf-8", b"charset=iso-8859-1"
        ),
        content_type="text/html; charset=utf-8",
    )
    nested = "<html><body>" + "<div>" * 100_000 + "deep" + "</div>" * 100_000 + "</body></html>"
    server.expect_request("/nested").respond_with_data(nested, content_type="text/html")
    other = (SITE_DIR / "articles" / "geneva-talks-greer-he-lifeng.html").read_bytes()
    script = other.replace(
        b"</head>", b"<script>var x='" + b"z" * 1_500_000 + b"';</script></head>"
    )
    server.expect_request("/huge-script").respond_with_data(script, content_type="text/html")
    return {
        "gzip_bomb": "/bomb", "endless_body": "/endless", "30_redirects": "/hop0",
        "pdf": "/pdf", "wrong_charset": "/wrong-charset", "nested_100k": "/nested",
        "huge_inline_script": "/huge-script",
    }  # fmt: skip


@pytest.mark.scenario(
    "hostile pages", "gzip bomb, endless body, 30 redirects, a PDF, a lying charset, "
    "100,000 nested divs, a 1.5 MB inline script",
    "each job ends with a typed reason or a clean article; no crash, no retry storm",
)  # fmt: skip
def test_hostile_pages(
    record: Recorder, settings: Settings, text_redis: redis.Redis, rq_redis: redis.Redis
) -> None:
    with HTTPServer() as server:
        paths = _page_site(server)
        items = "".join(
            f"<item><title>{n}</title><link>{server.url_for(p)}</link></item>"
            for n, p in paths.items()
        )
        server.expect_request("/rss").respond_with_data(
            f"<rss version='2.0'><channel><title>t</title>{items}</channel></rss>",
            content_type="application/rss+xml",
        )
        settings.feeds_file.write_text(yaml.safe_dump({"feeds": [{"url": server.url_for("/rss")}]}))
        strict = settings.with_overrides(
            max_page_bytes=2 * 1024 * 1024, http_total_timeout_s=10.0, job_timeout_s=30
        )
        with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
            queued = run_pipeline(strict, text_redis, rq_redis)
    outcomes = {
        e["url"].rsplit("/", 1)[-1]: e.get("reason") or e.get("status")
        for e in logs
        if e["event"] in ("article.processed", "article.extracted") and "url" in e
    }
    record.observed(f"{queued} queued; outcomes {outcomes}")
    by_name = {name: outcomes.get(path.lstrip("/")) for name, path in paths.items()}
    assert by_name["gzip_bomb"] == "too_large" and by_name["endless_body"] == "too_large"
    assert by_name["30_redirects"] == "too_many_redirects" and by_name["pdf"] == "unsupported_type"
    assert by_name["wrong_charset"] in ("extracted", "emitted")
    assert by_name["nested_100k"] in ("empty", "too_short")
    assert by_name["huge_inline_script"] in ("extracted", "emitted")


@pytest.mark.scenario(
    "redirect to private addresses", "a public page that redirects to 169.254.169.254, 10.0.0.7 "
    "and 127.0.0.1 with private hosts not allowed", "refused as blocked_address at the hop",
)  # fmt: skip
def test_redirects_to_private_ranges_are_refused(record: Recorder, settings: Settings) -> None:
    import asyncio

    import httpx

    from core.errors import PermanentFetchError
    from core.fetch import Fetcher

    async def resolver(host: str, port: int) -> list[str]:
        return {"news.example": ["93.184.216.34"], "169.254.169.254": ["169.254.169.254"],
                "10.0.0.7": ["10.0.0.7"], "127.0.0.1": ["127.0.0.1"]}[host]  # fmt: skip

    targets = [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.7/admin",
        "http://127.0.0.1:6379/",
    ]
    kinds = []
    for target in targets:

        def handler(request: httpx.Request, target: str = target) -> httpx.Response:
            if request.url.host == "news.example":
                return httpx.Response(302, headers={"Location": target})
            raise AssertionError(f"connected to {request.url}")

        async def go(handler=handler) -> None:  # type: ignore[no-untyped-def]
            fetcher = Fetcher(settings.with_overrides(allow_private_hosts=False),
                              transport=httpx.MockTransport(handler), resolver=resolver)  # fmt: skip
            try:
                await fetcher.get("http://news.example/story", max_bytes=1000)
            finally:
                await fetcher.aclose()

        with pytest.raises(PermanentFetchError) as info:
            asyncio.run(go())
        kinds.append(info.value.kind)
    record.observed(f"kinds {kinds}; no connection made to any private target")
    assert kinds == ["blocked_address"] * 3


def _tls_files(directory: Path) -> tuple[Path, Path]:
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return key, cert


@pytest.mark.scenario(
    "Redis credentials", "a Redis with a password, over TLS (rediss://), and a wrong password",
    "the service works over both; the password never appears in logs, errors or /readyz",
)  # fmt: skip
def test_password_and_tls_redis(record: Recorder, tmp_path: Path, demo_site: str) -> None:
    password = "s3cret-Pw-4-test"
    key, cert = _tls_files(tmp_path)
    plain_port, tls_port = free_port(), free_port()
    tls = ["--requirepass", password, "--tls-port", str(tls_port), "--tls-cert-file", str(cert),
           "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no"]  # fmt: skip
    server = EmbeddedRedis(
        tmp_path / "redis", port=plain_port, appendonly=False, extra_args=tls, password=password
    )
    with server:
        feeds = tmp_path / "feeds.yaml"
        from service.demo import demo_feeds

        feeds.write_text(yaml.safe_dump({"feeds": demo_feeds(demo_site)}))
        outputs = {}
        for label, url in {
            "password": f"redis://:{password}@127.0.0.1:{plain_port}/0",
            "tls": f"rediss://:{password}@127.0.0.1:{tls_port}/0?ssl_ca_certs={cert}&ssl_cert_reqs=required",
        }.items():
            env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWIRE_")} | {
                "TRADEWIRE_REDIS_URL": url, "TRADEWIRE_FEEDS_FILE": str(feeds),
                "TRADEWIRE_CORPUS_DIR": str(tmp_path / f"corpus-{label}"),
                "TRADEWIRE_ALLOW_PRIVATE_HOSTS": "1", "TRADEWIRE_CONFIG": str(ROOT / "config" / "settings.yaml"),
                "TRADEWIRE_TAXONOMY_FILE": str(ROOT / "config" / "taxonomy.yaml"),
            }  # fmt: skip
            status = subprocess.run([sys.executable, "-m", "service", "status"], env=env, capture_output=True,
                                    text=True, timeout=60, check=False)  # fmt: skip
            worker = subprocess.run([sys.executable, "-m", "service", "work-one", "--queue", "extract", "--burst"],
                                    env=env, capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
            outputs[label] = (status, worker)
        wrong = env | {"TRADEWIRE_REDIS_URL": f"redis://:wrong-{password}@127.0.0.1:{plain_port}/0"}
        refused = subprocess.run([sys.executable, "-m", "service", "status"], env=wrong, capture_output=True,
                                 text=True, timeout=60, check=False)  # fmt: skip
    everything = (
        "".join(p.stdout + p.stderr for pair in outputs.values() for p in pair)
        + refused.stdout
        + refused.stderr
    )
    record.observed(
        f"status over password: exit {outputs['password'][0].returncode}, over TLS: exit "
        f"{outputs['tls'][0].returncode}; wrong password: exit {refused.returncode} "
        f"({refused.stderr.strip().splitlines()[-1][:90] if refused.stderr.strip() else ''}); password in output: "
        f"{password in everything}"
    )
    assert outputs["password"][0].returncode == 0 and "queue" in outputs["password"][0].stdout
    assert outputs["tls"][0].returncode == 0 and "queue" in outputs["tls"][0].stdout
    assert all(pair[1].returncode == 0 for pair in outputs.values())
    assert refused.returncode == 2 and "not reachable" in refused.stderr
    assert password not in everything
