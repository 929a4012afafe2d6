"""The sitemap parser: news and plain sitemaps, indexes, gzip, and hostile documents."""

from __future__ import annotations

import gzip
import os
import resource
import subprocess
import sys
import tracemalloc
import zlib
from pathlib import Path

import pytest

from service.sitemap_source import current_children, select_entries, to_parsed_feed
from service.sitemaps import (
    MAX_SITEMAP_URLS,
    NotASitemapError,
    SitemapEntry,
    SitemapRef,
    looks_like_sitemap,
    parse_sitemap,
    parse_w3c_datetime,
)

NS = "http://www.sitemaps.org/schemas/sitemap/0.9"
NEWS = "http://www.google.com/schemas/sitemap-news/0.9"
MB = 1024 * 1024


def news_url(loc: str, date: str, title: str = "T", language: str = "en") -> str:
    return (
        f"<url><loc>{loc}</loc><news:news><news:publication><news:name>Site</news:name>"
        f"<news:language>{language}</news:language></news:publication>"
        f"<news:publication_date>{date}</news:publication_date>"
        f"<news:title>{title}</news:title></news:news></url>"
    )


def urlset(*urls: str, ns: str = NS) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="{ns}" xmlns:news="{NEWS}">'
        + "".join(urls)
        + "</urlset>"
    ).encode()


def test_news_sitemap_entries_carry_date_title_and_language() -> None:
    body = urlset(
        news_url("https://ex.com/a", "2026-11-30T08:15:00+01:00", "Tariff  truce\n extended"),
        "<url><loc> https://ex.com/b </loc><lastmod>2026-11-29</lastmod></url>",
        "<url><loc>https://ex.com/c</loc></url>",
    )
    parsed = parse_sitemap(body, MB)
    assert not parsed.is_index and parsed.is_news
    a, b, c = parsed.entries
    assert a.loc == "https://ex.com/a" and a.title == "Tariff truce extended"
    assert a.language == "en"
    assert a.when == parse_w3c_datetime("2026-11-30T07:15:00Z")
    assert b.loc == "https://ex.com/b" and b.when == parse_w3c_datetime("2026-11-29T00:00:00Z")
    assert c.when is None and c.title == ""


def test_plain_sitemap_and_the_old_google_namespace() -> None:
    body = urlset(
        "<url><loc>https://ex.com/x</loc><lastmod>2026-11-01</lastmod></url>",
        ns="http://www.google.com/schemas/sitemap/0.84",
    )
    parsed = parse_sitemap(body, MB)
    assert [e.loc for e in parsed.entries] == ["https://ex.com/x"] and not parsed.is_news


def test_index_lists_children_with_lastmod() -> None:
    body = (
        f'<sitemapindex xmlns="{NS}"><sitemap><loc>https://ex.com/s1.xml.gz</loc>'
        "<lastmod>2026-11-30T10:00:00Z</lastmod></sitemap>"
        "<sitemap><loc>https://ex.com/s0.xml</loc></sitemap></sitemapindex>"
    ).encode()
    parsed = parse_sitemap(body, MB)
    assert parsed.is_index and parsed.entries == ()
    assert parsed.children == (
        SitemapRef("https://ex.com/s1.xml.gz", parse_w3c_datetime("2026-11-30T10:00:00Z")),
        SitemapRef("https://ex.com/s0.xml", None),
    )


def test_gzip_body_is_read_and_sniffed() -> None:
    body = gzip.compress(urlset(news_url("https://ex.com/a", "2026-11-30")))
    assert looks_like_sitemap(body) and not looks_like_sitemap(b"<rss><channel/></rss>")
    assert [e.loc for e in parse_sitemap(body, MB).entries] == ["https://ex.com/a"]


def test_entries_older_than_since_are_counted_not_kept() -> None:
    body = urlset(
        news_url("https://ex.com/old", "2026-11-01"),
        news_url("https://ex.com/new", "2026-11-30"),
        "<url><loc>https://ex.com/undated</loc></url>",
    )
    parsed = parse_sitemap(body, MB, since=parse_w3c_datetime("2026-11-29"))
    assert [e.loc for e in parsed.entries] == ["https://ex.com/new", "https://ex.com/undated"]
    assert parsed.older == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026", "2026-01-01T00:00:00+00:00"),
        ("2026-11", "2026-11-01T00:00:00+00:00"),
        ("2026-11-30T08:15Z", "2026-11-30T08:15:00+00:00"),
        ("2026-11-30T08:15:30.25-05:00", "2026-11-30T13:15:30.25+00:00"),
        ("2026-11-30T08:15:30", "2026-11-30T08:15:30+00:00"),
    ],
)
def test_w3c_datetimes(text: str, expected: str) -> None:
    assert parse_w3c_datetime(text) == parse_w3c_datetime(expected)


@pytest.mark.parametrize("text", ["", "yesterday", "2026-13-45", "30/11/2026", None])
def test_bad_dates_are_undated(text: str | None) -> None:
    assert parse_w3c_datetime(text) is None


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>https://ex.com/&lol9;</loc></url></urlset>"""


def test_billion_laughs_is_refused_without_expanding() -> None:
    tracemalloc.start()
    try:
        with pytest.raises(NotASitemapError, match="DOCTYPE"):
            parse_sitemap(BILLION_LAUGHS, 8 * MB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5 * MB  # expanded, lol9 alone would be 3 GB


@pytest.mark.parametrize(
    "entity",
    [
        '<!ENTITY xxe SYSTEM "file:///etc/passwd">',
        '<!ENTITY xxe SYSTEM "http://127.0.0.1:1/secret">',
        '<!ENTITY % remote SYSTEM "http://127.0.0.1:1/evil.dtd"> %remote;',
    ],
)
def test_external_entities_are_refused(entity: str) -> None:
    body = (
        f'<?xml version="1.0"?><!DOCTYPE urlset [{entity}]><urlset xmlns="{NS}">'
        "<url><loc>https://ex.com/&xxe;</loc></url></urlset>"
    ).encode()
    with pytest.raises(NotASitemapError) as caught:
        parse_sitemap(body, MB)
    assert "root:" not in str(caught.value)  # no file content leaked into the error


# Peak RSS growth while parsing, from a peak reset just before (Linux: writing 5 to
# clear_refs resets VmHWM). The process-lifetime peak (ru_maxrss) is not enough: building
# the body can peak higher than the tree, which then fits in freed memory and shows as 0.
_MEMORY_PROBE = """
import gc, sys
from lxml import etree
from service.sitemaps import parse_sitemap
from tests.unit.test_sitemaps import news_url, urlset
def kb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field)
body = urlset(*(news_url(f"https://ex.com/a/{i}", "2026-11-30") for i in range(60_000)))
gc.collect()
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
before = kb("VmRSS")
if sys.argv[1] == "tree":
    tree = etree.fromstring(body)
else:
    parse_sitemap(body, 32 * 1024 * 1024, since=2e9)
print(kb("VmHWM") - before)
"""


def _growth_kb(mode: str) -> int:
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, mode], cwd=root, capture_output=True, check=True,
        env={**os.environ, "PYTHONPATH": str(root)},
    )  # fmt: skip
    return int(out.stdout.decode().split()[-1])


def test_fifty_thousand_urls_are_read_and_capped() -> None:
    body = urlset(*(news_url(f"https://ex.com/a/{i}", "2026-11-30") for i in range(60_000)))
    parsed = parse_sitemap(body, 32 * MB, since=parse_w3c_datetime("2026-12-01"))
    # Every entry read and dropped (all older than since); the protocol's cap is applied.
    assert parsed.older == MAX_SITEMAP_URLS and parsed.truncated == 10_000
    kept = parse_sitemap(body, 32 * MB)
    assert len(kept.entries) == MAX_SITEMAP_URLS
    assert kept.entries[-1].loc == "https://ex.com/a/49999"


def test_a_big_sitemap_never_sits_in_memory_as_a_tree() -> None:
    """The same 60,000-URL (15 MB) document: a whole tree costs its process far more
    memory than the streaming parse, which drops each <url> once read."""
    streamed, whole = _growth_kb("stream"), _growth_kb("tree")
    assert whole > 30 * 1024, f"the probe is too small to tell ({whole} KB)"
    assert streamed < whole / 4, f"streaming grew {streamed} KB, a tree {whole} KB"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (urlset("<url><loc>https://ex.com/a</loc></url>", ns="http://example.com/ns"), "namespace"),
        (b"<urlset><url><loc>https://ex.com/a</loc></url></urlset>", "namespace"),
        (f'<rss xmlns="{NS}"><channel/></rss>'.encode(), "root element <rss>"),
        (b"<html><head><title>Error</title></head><body><p>Oops</p></body></html>", "<html>"),
        (b"<html><body><p>Oops<br></p></body></html>", "not well-formed"),
        (b"<!DOCTYPE html><html><body>503 Service Unavailable</body></html>", "DOCTYPE"),
        (b"<html><body><p>unclosed", "not well-formed"),
        (b"", "not well-formed|empty"),
        (gzip.compress(b"")[:10], "gzip|not well-formed|empty"),
    ],
)
def test_wrong_namespaces_and_error_pages_are_not_sitemaps(body: bytes, message: str) -> None:
    with pytest.raises(NotASitemapError, match=message):
        parse_sitemap(body, MB)


def test_news_elements_in_a_wrong_namespace_are_ignored() -> None:
    body = (
        f'<urlset xmlns="{NS}" xmlns:news="http://example.com/not-news">'
        "<url><loc>https://ex.com/a</loc><news:news><news:publication_date>2026-11-30"
        "</news:publication_date></news:news></url></urlset>"
    ).encode()
    (entry,) = parse_sitemap(body, MB).entries
    assert entry.when is None and not parse_sitemap(body, MB).is_news


def gzip_bomb(head: bytes, inflated_mib: int) -> bytes:
    """`head` then `inflated_mib` MiB of spaces, compressed a MiB at a time so that building
    the bomb never holds its inflated size in memory (and takes a second, not twenty)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # gzip container
    spaces = b" " * MB
    parts = [packer.compress(head)]
    parts += [packer.compress(spaces) for _ in range(inflated_mib)]
    return b"".join([*parts, packer.flush()])


def test_gzip_bomb_is_cut_at_the_body_cap() -> None:
    bomb = gzip_bomb(f'<urlset xmlns="{NS}"><url><loc>https://ex.com/a</loc></url>'.encode(), 512)
    assert len(bomb) < MB
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(NotASitemapError, match="over 8388608 bytes once decompressed"):
        parse_sitemap(bomb, 8 * MB)
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kb < 64 * 1024  # a 512 MiB inflation never happened


def test_plain_oversized_body_is_refused() -> None:
    with pytest.raises(NotASitemapError, match="over"):
        parse_sitemap(urlset("<url><loc>https://ex.com/a</loc></url>" * 100), 1000)


def test_current_children_prefers_recent_then_ends() -> None:
    refs = [
        SitemapRef(f"https://ex.com/{d}.xml", parse_w3c_datetime(f"2026-11-{d}"))
        for d in (27, 28, 29, 30)
    ]
    now = parse_w3c_datetime("2026-11-30T12:00:00Z") or 0.0
    assert current_children(refs, now, 2 * 86400) == [
        "https://ex.com/30.xml",
        "https://ex.com/29.xml",
    ]
    assert current_children(refs, now + 30 * 86400, 2 * 86400) == ["https://ex.com/30.xml"]
    undated = [SitemapRef(f"https://ex.com/{i}.xml") for i in range(5)]
    assert current_children(undated, now, 86400) == ["https://ex.com/0.xml", "https://ex.com/4.xml"]


def test_select_entries_oldest_first_then_undated_minus_known() -> None:
    entries = [
        SitemapEntry("https://ex.com/c", published=30.0),
        SitemapEntry("https://ex.com/u1"),
        SitemapEntry("https://ex.com/a", published=10.0),
        SitemapEntry("https://ex.com/old", published=1.0),
        SitemapEntry("https://ex.com/u2"),
    ]
    chosen = select_entries(entries, floor=5.0, known={"https://ex.com/u1"}, cap=3)
    assert [e.loc for e in chosen] == ["https://ex.com/a", "https://ex.com/c", "https://ex.com/u2"]


def test_entries_become_canonical_items_with_the_loc_as_guid() -> None:
    entries = [
        SitemapEntry("/news/a?utm_source=x#top", published=1_796_000_000.0, title="A"),
        SitemapEntry("javascript:alert(1)"),
        SitemapEntry("https://EX.com/news/a"),
    ]
    parsed = to_parsed_feed("Site", "https://ex.com/sitemap.xml", entries, [1_796_000_000.0])
    (item,) = parsed.items
    assert item.url == "https://ex.com/news/a?utm_source=x#top"
    assert item.canonical_url == "https://ex.com/news/a" and item.guid == "/news/a?utm_source=x#top"
    assert item.published_at is not None and parsed.skipped_links == 1
