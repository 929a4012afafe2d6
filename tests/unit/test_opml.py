"""OPML import: nested folders, hostile XML, and a feed list load_feeds reads back."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from core.errors import ConfigError
from core.models import Feed
from service.feedlist import load_feeds
from service.opml import dump_feed_list, merge_feed_list, parse_opml

NESTED = b"""<?xml version="1.0" encoding="UTF-8"?>
<opml version="2.0">
  <head><title>Subscriptions</title></head>
  <body>
    <outline text="News" title="News">
      <outline type="rss" text="Wire Markets" title="Wire \xe2\x80\x94 Markets"
               xmlUrl="https://wire.example/rss" htmlUrl="https://wire.example/"/>
      <outline text="Asia">
        <outline type="rss" text="Asia Desk" xmlUrl="https://asia.example/feed.xml"/>
        <outline type="rss" text="Local file" xmlUrl="file:///etc/passwd"/>
        <outline type="rss" text="Script" xmlUrl="javascript:alert(1)"/>
      </outline>
    </outline>
    <outline text="Tech">
      <outline type="rss" text="Atom Site" xmlUrl="http://atom.example/atom.xml"/>
      <outline type="rss" text="Wire again" xmlUrl="https://WIRE.example/rss#top"/>
      <outline type="link" text="Just a page" htmlUrl="https://page.example/"/>
    </outline>
  </body>
</opml>
"""

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE opml [
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
<opml version="2.0"><head><title>&lol9;</title></head><body>
<outline type="rss" text="&lol9;" xmlUrl="https://a.example/feed"/>
</body></opml>
"""


def test_nested_folders_filtered_and_deduplicated() -> None:
    feeds = parse_opml(NESTED)
    assert feeds == [
        Feed(url="https://wire.example/rss", title="Wire — Markets"),
        Feed(url="https://asia.example/feed.xml", title="Asia Desk"),
        Feed(url="http://atom.example/atom.xml", title="Atom Site"),
    ]


@pytest.mark.parametrize(
    "data",
    [b"", b"not xml at all", b"<opml><body><outline xmlUrl='https://a.example/'>", b"<html/>"],
)
def test_malformed_or_foreign_documents_are_config_errors(data: bytes) -> None:
    with pytest.raises(ConfigError, match="OPML"):
        parse_opml(data)


def test_billion_laughs_is_refused_quickly() -> None:
    started = time.monotonic()
    with pytest.raises(ConfigError):
        parse_opml(BILLION_LAUGHS)
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize("place", ["attribute", "text"])
def test_external_entity_is_never_read(place: str) -> None:
    """XXE in an attribute or in element text: refused, and /etc/passwd never appears."""
    use = 'text="&xxe;"' if place == "attribute" else 'text="t"'
    body = "&xxe;" if place == "text" else ""
    data = f"""<?xml version="1.0"?>
<!DOCTYPE opml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<opml version="2.0"><head><title>x</title></head><body>
<outline type="rss" {use} xmlUrl="https://a.example/feed">{body}</outline>
</body></opml>""".encode()
    with pytest.raises(ConfigError) as info:
        parse_opml(data)
    assert "root:" not in str(info.value)


def test_merge_keeps_existing_entries_and_appends_new_ones() -> None:
    existing = [
        Feed(url="https://wire.example/rss", title="", interval_s=900.0),
        Feed(url="https://kept.example/feed", title="Kept"),
    ]
    merged = merge_feed_list(existing, parse_opml(NESTED))
    assert merged == [
        Feed(url="https://wire.example/rss", title="Wire — Markets", interval_s=900.0),
        Feed(url="https://kept.example/feed", title="Kept"),
        Feed(url="https://asia.example/feed.xml", title="Asia Desk"),
        Feed(url="http://atom.example/atom.xml", title="Atom Site"),
    ]


def test_dump_round_trips_through_load_feeds(tmp_path: Path) -> None:
    feeds = [
        Feed(url="https://wire.example/rss", title="Wire — Markets", interval_s=900.0),
        Feed(url="https://asia.example/feed.xml", title="Asia: Desk #1"),
        Feed(url="http://untitled.example/atom.xml", interval_s=90.5),
    ]
    text = dump_feed_list(feeds)
    assert text.startswith("# ")
    assert "\n  - url: https://wire.example/rss\n" in text  # indented like config/feeds.yaml
    assert "interval_s: 900\n" in text
    path = tmp_path / "feeds.yaml"
    path.write_text(text, encoding="utf-8")
    assert load_feeds(path) == feeds


def test_dump_of_an_empty_list_loads_as_empty(tmp_path: Path) -> None:
    path = tmp_path / "feeds.yaml"
    path.write_text(dump_feed_list([]), encoding="utf-8")
    assert load_feeds(path) == []
