"""Feed parsing: the three formats, relative links, hostile links and broken input."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.feeds import parse_feed

FEEDS = Path(__file__).resolve().parents[1] / "data" / "feeds"


def parse(name: str, url: str) -> object:
    return parse_feed((FEEDS / name).read_bytes(), {"content-type": "application/xml"}, url, 500)


def test_rss2_links_resolved_canonicalised_and_hostile_ones_skipped() -> None:
    feed = parse_feed((FEEDS / "rss2.xml").read_bytes(), {}, "https://wire.example/rss", 500)
    assert feed.title == "Test Wire — Markets"
    assert feed.hint_s == 1800  # <ttl>30</ttl>
    assert len(feed.published_times) == 2
    assert [i.canonical_url for i in feed.items] == [
        "https://wire.example/markets/2025/tariff-truce-holds",
        "https://wire.example/markets/2025/soybeans",
    ]
    first = feed.items[0]
    assert first.url.startswith("https://wire.example/markets/2025/tariff-truce-holds?utm_source")
    assert first.guid == "wire-1001"
    assert first.published_at == "2025-11-03T07:30:00Z"
    assert feed.skipped_links == 3  # javascript:, file:, data:


def test_atom_with_xml_base() -> None:
    feed = parse_feed((FEEDS / "atom.xml").read_bytes(), {}, "https://atom.example/feed.atom", 500)
    assert [i.url for i in feed.items] == [
        "https://atom.example/news/chips/curbs-widen.html",
        "https://atom.example/news/rare-earths",
    ]
    assert feed.items[0].published_at == "2025-11-04T13:00:00Z"


def test_rdf_in_latin1() -> None:
    feed = parse_feed((FEEDS / "rdf.xml").read_bytes(), {}, "https://rdf.example/rdf", 500)
    assert feed.items[0].title == "Zölle: Gespräche in Genf"
    assert feed.items[0].canonical_url == "https://rdf.example/zoelle"


@pytest.mark.parametrize(
    "body",
    [b"this is not xml at all", b"<html><body><p>Hello</p></body></html>", b""],
)
def test_not_a_feed_is_a_clear_error(body: bytes) -> None:
    with pytest.raises(ValueError, match="not a feed"):
        parse_feed(body, {}, "https://x.example/feed", 500)


def test_truncated_feed_gives_what_it_can() -> None:
    body = (FEEDS / "rss2.xml").read_bytes()
    cut = body[: body.index(b"<title>Soybean buyers return</title>")]
    feed = parse_feed(cut, {}, "https://wire.example/rss", 500)
    assert feed.problem  # bozo: reported, not fatal
    assert [i.guid for i in feed.items] == ["wire-1001"]


def test_items_are_capped() -> None:
    items = "".join(
        f"<item><title>t{i}</title><link>https://x.example/{i}</link></item>" for i in range(2000)
    )
    body = f"<rss version='2.0'><channel><title>big</title>{items}</channel></rss>".encode()
    assert len(parse_feed(body, {}, "https://x.example/rss", 500).items) == 500
