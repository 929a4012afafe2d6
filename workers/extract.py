"""Page bytes → clean article (pure). The only trafilatura importer.

Settings chosen from measurements on the extraction benchmark (``benchmarks/``): comments
off is the one setting that lifts F1; ``fast`` skips the readability fallback for a 1.4x
speed-up at no loss of F1; tables stay in because news tables (tariff schedules) are text
readers want.
"""

from __future__ import annotations

import codecs
import dataclasses
import re
from typing import Any

import charset_normalizer
import trafilatura

from service.errors import RefusedArticleError
from workers.document import format_document, normalize_paragraph, strip_boilerplate, word_count
from workers.language import detect_language, normalize_language_tag

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([a-zA-Z0-9_:.-]+)""", re.I)
_HTML_LANG = re.compile(r"""<html[^>]*\blang\s*=\s*["']?([a-zA-Z_-]+)""", re.I)
# Legacy labels whose superset decodes everything they do (as browsers treat them).
_SUPERSETS = {"gb2312": "gb18030", "gbk": "gb18030", "iso-8859-1": "cp1252", "latin-1": "cp1252",
              "ascii": "cp1252", "us-ascii": "cp1252", "ks_c_5601-1987": "cp949"}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Extraction:
    """What the page said, cleaned."""

    title: str
    paragraphs: tuple[str, ...]
    authors: tuple[str, ...]
    published: str | None  # YYYY-MM-DD as trafilatura reports it
    site_name: str | None
    language: str | None

    @property
    def text(self) -> str:
        return format_document(self.title, self.paragraphs)


def _codec(label: str | None) -> str | None:
    if not label:
        return None
    label = label.strip().strip("\"'").lower()
    label = _SUPERSETS.get(label, label)
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def decode_html(body: bytes, content_type: str = "") -> str:
    """Bytes → text: the HTTP charset, else a BOM, else the meta charset, else UTF-8 if it
    decodes cleanly, else detection. Chinese and Cyrillic pages come out readable."""
    http_charset = None
    for part in content_type.split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == "charset":
            http_charset = _codec(value)
    if body.startswith(codecs.BOM_UTF8):
        return body[3:].decode("utf-8", errors="replace")
    for codec in (http_charset, _meta_charset(body)):
        if codec:
            try:
                return body.decode(codec)
            except UnicodeDecodeError:
                continue  # a lying header: fall through to the next source
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    best = charset_normalizer.from_bytes(body[:200_000]).best()
    codec = _codec(best.encoding) if best else None
    return body.decode(codec or "utf-8", errors="replace")


def _meta_charset(body: bytes) -> str | None:
    match = _META_CHARSET.search(body[:8192])
    return _codec(match.group(1).decode("ascii", "ignore")) if match else None


def extract_article(html: str, url: str, min_words: int, fallback_title: str = "") -> Extraction:
    """Extract the article of ``html``; raise RefusedArticleError when there is none."""
    document: Any = trafilatura.bare_extraction(
        html,
        url=url,
        fast=True,
        include_comments=False,
        include_tables=True,
        include_images=False,
        with_metadata=True,
    )
    if document is None or not (document.text or "").strip():
        raise RefusedArticleError("empty", "no main text found")
    title = normalize_paragraph(document.title or fallback_title)
    blocks = paragraphs_from_body(document.body) if document.body is not None else []
    if not blocks:
        blocks = document.text.split("\n")
    paragraphs = strip_boilerplate([p for p in (normalize_paragraph(b) for b in blocks) if p])
    words = word_count(" ".join(paragraphs))
    if words < min_words:
        raise RefusedArticleError("too_short", f"{words} words")
    language = (
        normalize_language_tag(document.language)
        or normalize_language_tag(_html_lang(html))
        or detect_language(" ".join(paragraphs))
    )
    authors = tuple(
        a
        for a in (normalize_paragraph(x) for x in re.split(r";|\band\b", document.author or ""))
        if a
    )
    return Extraction(
        title=title,
        paragraphs=tuple(paragraphs),
        authors=authors,
        published=document.date,
        site_name=document.sitename,
        language=language,
    )


_BREAK = "\x00"


def paragraphs_from_body(body: Any) -> list[str]:
    """One paragraph per block of trafilatura's body tree. Line breaks in the page source
    are spaces; ``<br>`` (``lb``) separates paragraphs, as old CMSs use ``<br><br>``;
    list items and table rows are paragraphs of their own."""
    out: list[str] = []
    for block in body:
        if block.tag == "list":
            out.extend(_flatten(item) for item in block.iter("item"))
        elif block.tag == "table":
            for row in block.iter("row"):
                cells = [normalize_paragraph(_flatten(cell)) for cell in row.iter("cell")]
                out.append(" | ".join(c for c in cells if c))
        else:
            out.extend(_flatten(block).split(_BREAK))
    return out


def _flatten(element: Any) -> str:
    parts: list[str] = []

    def walk(node: Any) -> None:
        if node.tag == "lb":
            parts.append(_BREAK)
        elif node.text:
            parts.append(node.text)
        for child in node:
            walk(child)
            if child.tail:
                parts.append(child.tail)

    walk(element)
    return "".join(parts)


def _html_lang(html: str) -> str | None:
    match = _HTML_LANG.search(html[:4096])
    return match.group(1) if match else None
