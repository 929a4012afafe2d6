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


def _title(tree: Any, site_name: str) -> str:
    title = _first(tree, "//meta[@property='og:title']/@content",
                   "//meta[@name='twitter:title']/@content")  # fmt: skip
    if title:
        return title
    h1 = [" ".join("".join(h.itertext()).split()) for h in tree.xpath("//h1")]
    h1 = [h for h in h1 if h]
    if len(h1) == 1:
        return h1[0]
    head_title = _first(tree, "//head/title/text()")
    parts = _TITLE_SEPARATORS.split(head_title)
    if len(parts) > 1:
        # "Story headline | Site Name": keep the longest part, which is the headline.
        return max((p for p in parts if p != site_name), key=len, default=head_title)
    return head_title or (h1[0] if h1 else "")


def _authors(tree: Any) -> tuple[str, ...]:
    raw = [
        " ".join(str(v).split())
        for v in tree.xpath(
            "//meta[@name='author' or @property='article:author' or @name='byl' or "
            "@name='sailthru.author' or @name='dc.creator' or @name='DC.creator']/@content"
        )
    ]
    names: list[str] = []
    for value in raw:
        value = re.sub(r"^by\s+", "", value, flags=re.I)
        for name in re.split(r"\s*(?:,|;|\band\b|&)\s*", value):
            if name and not name.startswith("http") and name not in names and len(name) < 80:
                names.append(name)
    return tuple(names)


def page_metadata(tree: Any) -> PageMeta:
    site_name = _first(tree, "//meta[@property='og:site_name']/@content") or None
    published = _first(
        tree,
        "//meta[@property='article:published_time']/@content",
        "//meta[@name='article:published_time']/@content",
        "//meta[@itemprop='datePublished']/@content",
        "//meta[@name='pubdate' or @name='publishdate' or @name='date' or @name='dc.date' "
        "or @name='DC.date.issued']/@content",
        "//time[@datetime][1]/@datetime",
    )
    return PageMeta(
        title=_title(tree, site_name or ""),
        authors=_authors(tree),
        published=published or None,
        site_name=site_name,
        language=_first(tree, "/html/@lang", "/html/@xml:lang") or None,
        canonical_url=_first(tree, "//link[@rel='canonical']/@href") or None,
        page_type=(_first(tree, "//meta[@property='og:type']/@content") or "").lower() or None,
    )
