"""OPML import (pure): subscription lists exported by feed readers, into our feed list.

OPML is untrusted XML, so it is parsed by lxml with entity resolution, network access and
huge-tree mode off, and any document whose DTD declares entities is refused outright: an
OPML file never needs one, and refusing is clearer than parsing around billion-laughs
expansions or ``SYSTEM "file:///etc/passwd"`` references.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml
from lxml import etree

from core.errors import ConfigError
from core.models import Feed
from core.urls import is_web_url

FEED_LIST_HEADER = (
    "# Feeds the poller reads: a top-level `feeds:` list of `url:`, optional `title:` and"
    " `interval_s:`."
)


def _xml_parser() -> Any:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        huge_tree=False,
        load_dtd=False,
        dtd_validation=False,
    )


def feed_key(url: str) -> str:
    """What makes two feed URLs the same feed: scheme and host are case-insensitive and the
    fragment is never sent. The query is left alone, since on feed URLs it often selects
    the feed (``?format=rss``, ``?cat=3``)."""
    parts = urlsplit(url)
    return urlunsplit(
        (parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", parts.query, "")
    )


def _with_title(feed: Feed, title: str) -> Feed:
    return dataclasses.replace(feed, title=title)


def _dedupe(feeds: Iterable[Feed]) -> list[Feed]:
    """First occurrence wins and keeps its place; a later duplicate only supplies a title
    the first one lacked."""
    by_key: dict[str, Feed] = {}
    for feed in feeds:
        key = feed_key(feed.url)
        kept = by_key.get(key)
        if kept is None:
            by_key[key] = feed
        elif not kept.title and feed.title:
            by_key[key] = _with_title(kept, feed.title)
    return list(by_key.values())


def parse_opml(data: bytes) -> list[Feed]:
    """Every http(s) ``xmlUrl`` in the document, at any folder depth, deduplicated in
    document order. Outlines without one (folders, links) are skipped, as are ``file:`` or
    ``javascript:`` URLs. Raises ConfigError when the bytes are not safe, well-formed OPML."""
    try:
        root = etree.fromstring(data, _xml_parser())
    except etree.XMLSyntaxError as exc:
        raise ConfigError(f"OPML is not well-formed XML: {exc}") from exc
    if root is None:
        raise ConfigError("OPML document is empty")
    dtd = root.getroottree().docinfo.internalDTD
    if dtd is not None and any(True for _ in dtd.iterentities()):
        raise ConfigError("OPML declares XML entities; refused (OPML never needs a DTD)")
    if not isinstance(root.tag, str) or root.tag.lower() != "opml":
        raise ConfigError(f"not an OPML document: root element is <{root.tag}>, not <opml>")

    feeds: list[Feed] = []
    for outline in root.iter("outline"):
        url = (outline.get("xmlUrl") or outline.get("xmlurl") or "").strip()
        if not is_web_url(url):
            continue
        title = outline.get("title") or outline.get("text") or ""
        feeds.append(Feed(url=url, title=" ".join(title.split())))
    return _dedupe(feeds)


def merge_feed_list(existing: list[Feed], new: list[Feed]) -> list[Feed]:
    """The existing list with new feeds appended. Existing entries keep their place, URL
    and interval (someone chose them); an imported title only fills an empty one."""
    return _dedupe([*existing, *new])


class _FeedListDumper(yaml.SafeDumper):
    """SafeDumper that indents list items under their key, as config/feeds.yaml is written."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _entry(feed: Feed) -> dict[str, object]:
    entry: dict[str, object] = {"url": feed.url}
    if feed.title:
        entry["title"] = feed.title
    if feed.interval_s is not None:
        interval = feed.interval_s
        entry["interval_s"] = int(interval) if interval.is_integer() else interval
    if feed.kind != "feed":
        entry["kind"] = feed.kind
    return entry


def dump_feed_list(feeds: Iterable[Feed], header: str = FEED_LIST_HEADER) -> str:
    """The feed list as YAML that ``service.feedlist.load_feeds`` reads back, with a
    comment header (YAML dumpers drop comments, so it is written here)."""
    body = yaml.dump(
        {"feeds": [_entry(feed) for feed in feeds]},
        Dumper=_FeedListDumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=4096,
    )
    comment = "\n".join(f"# {line.lstrip('# ')}" for line in header.splitlines() if line)
    return f"{comment}\n{body}" if comment else body
