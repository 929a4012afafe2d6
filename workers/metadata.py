"""Page metadata from the parsed tree (pure): title, authors, date, site, language, canonical.

A handful of XPath lookups on tags publishers fill for search engines and social cards
(Open Graph, article:*, schema-less meta names). trafilatura's own metadata pass costs
about a third of the whole extraction step, mostly for fields we do not use (categories,
tags, licence) and a date search the feed usually answers already, so we read these
directly and run trafilatura with ``with_metadata=False``.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

_TITLE_SEPARATORS = re.compile(r"\s+[|–—·•:-]\s+")


@dataclasses.dataclass(frozen=True)
class PageMeta:
    title: str
    authors: tuple[str, ...]
    published: str | None  # as the page gives it (ISO 8601 date or date-time)
    site_name: str | None
    language: str | None  # the page's own lang attribute, unnormalised
    canonical_url: str | None
    page_type: str | None  # og:type: "article", "website" (a section or home page), ...


def _first(tree: Any, *xpaths: str) -> str:
    for xpath in xpaths:
        for value in tree.xpath(xpath):
            text = " ".join(str(value).split())
            if text:
                return text
    return ""


# (attribute, value) pairs naming a <meta>: ("property", "og:title"), ("name", "author").
_Key = tuple[str, str]


def _metas(tree: Any) -> list[tuple[_Key, str]]:
    """Every named ``<meta>`` with its content, in document order: one walk of the tree
    instead of one XPath search per field (the lookups were a tenth of the step)."""
    found = []
    for meta in tree.iter("meta"):
        content = " ".join((meta.get("content") or "").split())
        if content:
            for attr in ("property", "name", "itemprop"):
                if (value := meta.get(attr)) is not None:
                    found.append(((attr, value), content))
    return found


def _meta(metas: list[tuple[_Key, str]], *groups: frozenset[_Key]) -> str:
    """The first content, in document order, of a meta in the first group that has one."""
    for group in groups:
        for key, content in metas:
            if key in group:
                return content
    return ""


def _one(attr: str, *values: str) -> frozenset[_Key]:
    return frozenset((attr, v) for v in values)


def _title(tree: Any, metas: list[tuple[_Key, str]], site_name: str) -> str:
    title = _meta(metas, _one("property", "og:title"), _one("name", "twitter:title"))
    if title:
        return title
    h1 = [" ".join("".join(h.itertext()).split()) for h in tree.iter("h1")]
    h1 = [h for h in h1 if h]
    if len(h1) == 1:
        return h1[0]
    head_title = _first(tree, "//head/title/text()")
    parts = _TITLE_SEPARATORS.split(head_title)
    if len(parts) > 1:
        # "Story headline | Site Name": keep the longest part, which is the headline.
        return max((p for p in parts if p != site_name), key=len, default=head_title)
    return head_title or (h1[0] if h1 else "")


_AUTHOR = _one("name", "author", "byl", "sailthru.author", "dc.creator", "DC.creator") | _one(
    "property", "article:author"
)


def _authors(metas: list[tuple[_Key, str]]) -> tuple[str, ...]:
    names: list[str] = []
    for key, value in metas:
        if key not in _AUTHOR:
            continue
        value = re.sub(r"^by\s+", "", value, flags=re.I)
        for name in re.split(r"\s*(?:,|;|\band\b|&)\s*", value):
            if name and not name.startswith("http") and name not in names and len(name) < 80:
                names.append(name)
    return tuple(names)


_PUBLISHED = (
    _one("property", "article:published_time"),
    _one("name", "article:published_time"),
    _one("itemprop", "datePublished"),
    _one("name", "pubdate", "publishdate", "date", "dc.date", "DC.date.issued"),
)


def _canonical(tree: Any) -> str:
    """``//link[@rel='canonical']/@href``, first non-blank: lxml's tag walk finds it in a
    seventh of the XPath's time."""
    for link in tree.iter("link"):
        if link.get("rel") == "canonical" and (href := " ".join(link.get("href", "").split())):
            return href
    return ""


def page_metadata(tree: Any) -> PageMeta:
    metas = _metas(tree)
    site_name = _meta(metas, _one("property", "og:site_name")) or None
    published = _meta(metas, *_PUBLISHED) or _first(tree, "//time[@datetime][1]/@datetime")
    root = tree.getroottree().getroot()
    language = root.get("lang") or root.get("{http://www.w3.org/XML/1998/namespace}lang")
    return PageMeta(
        title=_title(tree, metas, site_name or ""),
        authors=_authors(metas),
        published=published or None,
        site_name=site_name,
        language=" ".join((language or "").split()) or None,
        canonical_url=_canonical(tree) or None,
        page_type=_meta(metas, _one("property", "og:type")).lower() or None,
    )
