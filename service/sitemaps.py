"""Sitemap parsing (pure): bytes in, entries and child sitemaps out.

Reads the sitemaps.org protocol (``<urlset>`` and ``<sitemapindex>``) with Google's news
extension (``news:publication_date``, ``news:title``, ``news:language``), plain or gzipped.

The parse streams: ``lxml.etree.iterparse`` reads the (decompressed) bytes in chunks and
every ``<url>`` is dropped once read, so a 50 MB sitemap never sits in memory as a tree.
The parser is hardened: no entity expansion, no network, no DTD, huge_tree off, and any
DOCTYPE is refused outright (a sitemap never needs one; billion laughs and XXE need one).
A gzipped body is inflated through a reader that stops at ``max_bytes`` decoded bytes, so
a gzip bomb is cut at the same cap as every other body.
"""

from __future__ import annotations

import dataclasses
import io
import zlib
from datetime import UTC, datetime
from typing import Any

from lxml import etree

SITEMAP_NAMESPACES = frozenset(
    {
        "http://www.sitemaps.org/schemas/sitemap/0.9",
        # Older Google namespaces, still served by some publishers.
        "http://www.google.com/schemas/sitemap/0.84",
        "http://www.google.com/schemas/sitemap/0.9",
    }
)
NEWS_NAMESPACE = "http://www.google.com/schemas/sitemap-news/0.9"
# The protocol's limit per file; a longer one is read this far.
MAX_SITEMAP_URLS = 50_000
MAX_LOC_CHARS = 2048
MAX_TITLE_CHARS = 1000
GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 64 * 1024


class NotASitemapError(ValueError):
    """The body is no sitemap: an HTML page, another XML vocabulary, broken or hostile XML."""


@dataclasses.dataclass(frozen=True)
class SitemapEntry:
    """One ``<url>``: its location and what it says about when it was published."""

    loc: str
    lastmod: float | None = None  # epoch seconds
    published: float | None = None  # news:publication_date, epoch seconds
    title: str = ""
    language: str | None = None

    @property
    def when(self) -> float | None:
        """The publication date when the news extension gives one, else lastmod."""
        return self.published if self.published is not None else self.lastmod


@dataclasses.dataclass(frozen=True)
class SitemapRef:
    """One ``<sitemap>`` of an index."""

    loc: str
    lastmod: float | None = None


@dataclasses.dataclass(frozen=True)
class ParsedSitemap:
    is_index: bool
    children: tuple[SitemapRef, ...]
    entries: tuple[SitemapEntry, ...]
    is_news: bool  # some entry carried the news extension
    older: int  # dated entries left out because they were older than ``since``
    truncated: int  # entries past MAX_SITEMAP_URLS, not read


class _BoundedGunzip:
    """A file-like reader inflating gzip bytes, refusing more than ``max_bytes`` decoded."""

    def __init__(self, data: bytes, max_bytes: int) -> None:
        self._data = memoryview(data)
        self._offset = 0
        self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._max = max_bytes
        self._size = 0

    def read(self, size: int = -1) -> bytes:
        want = _CHUNK if size is None or size < 0 else max(size, 1)
        out = b""
        try:
            while not out and not self._zlib.eof:
                if self._zlib.unconsumed_tail:
                    out = self._zlib.decompress(self._zlib.unconsumed_tail, want)
                elif self._offset < len(self._data):
                    chunk = self._data[self._offset : self._offset + _CHUNK]
                    self._offset += len(chunk)
                    out = self._zlib.decompress(chunk, want)
                else:
                    out = self._zlib.flush()
                    break
        except zlib.error as exc:
            raise NotASitemapError(f"broken gzip: {exc}") from exc
        self._size += len(out)
        if self._size > self._max:
            raise NotASitemapError(f"sitemap over {self._max} bytes once decompressed")
        return out


class _NoDeclarations:
    """Passes a reader's bytes through, refusing a DOCTYPE or ENTITY declaration before the
    XML parser sees it (a sitemap never has one; billion laughs and XXE need one)."""

    def __init__(self, reader: Any) -> None:
        self._reader = reader
        self._tail = b""

    def read(self, size: int = -1) -> bytes:
        data: bytes = self._reader.read(size)
        window = self._tail + data
        if b"<!DOCTYPE" in window or b"<!ENTITY" in window:
            raise NotASitemapError("a DOCTYPE in a sitemap (entities are refused)")
        self._tail = window[-9:]
        return data


def _source(body: bytes, max_bytes: int) -> Any:
    if body[:2] == GZIP_MAGIC:
        return _NoDeclarations(_BoundedGunzip(body, max_bytes))
    if len(body) > max_bytes:
        raise NotASitemapError(f"sitemap over {max_bytes} bytes")
    return _NoDeclarations(io.BytesIO(body))


def parse_w3c_datetime(text: str | None) -> float | None:
    """Epoch seconds of a W3C datetime (``2026-11-30``, ``2026-11-30T08:15:00+01:00``,
    ``...Z``, fractions); a date alone is midnight UTC, no offset is UTC. None if invalid."""
    if not text:
        return None
    value = text.strip()
    if len(value) == 4 and value.isdigit():
        value += "-01-01"
    elif len(value) == 7 and value[4] == "-":
        value += "-01"
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.timestamp()
    except (OverflowError, OSError, ValueError):
        return None


def _texts(element: Any) -> dict[str, str]:
    """The stripped text of each direct child, by qualified tag (one pass: ``find`` with a
    namespaced path costs as much as the whole parse)."""
    out: dict[str, str] = {}
    for child in element:
        text = child.text
        if text is not None and isinstance(child.tag, str):
            out.setdefault(child.tag, text.strip())
    return out


_NEWS = f"{{{NEWS_NAMESPACE}}}news"
_NEWS_TITLE = f"{{{NEWS_NAMESPACE}}}title"
_NEWS_DATE = f"{{{NEWS_NAMESPACE}}}publication_date"
_NEWS_PUBLICATION = f"{{{NEWS_NAMESPACE}}}publication"
_NEWS_LANGUAGE = f"{{{NEWS_NAMESPACE}}}language"


def _entry(element: Any, ns: str) -> tuple[SitemapEntry | None, bool]:
    """The entry of one ``<url>`` (None without a usable loc), and whether it is news."""
    texts = _texts(element)
    loc = texts.get(f"{{{ns}}}loc")
    if not loc or len(loc) > MAX_LOC_CHARS:
        return None, False
    lastmod = parse_w3c_datetime(texts.get(f"{{{ns}}}lastmod"))
    news = next((child for child in element if child.tag == _NEWS), None)
    if news is None:
        return SitemapEntry(loc=loc, lastmod=lastmod), False
    about = _texts(news)
    publication = next((child for child in news if child.tag == _NEWS_PUBLICATION), None)
    language = _texts(publication).get(_NEWS_LANGUAGE) if publication is not None else None
    return SitemapEntry(
        loc=loc,
        lastmod=lastmod,
        published=parse_w3c_datetime(about.get(_NEWS_DATE)),
        title=" ".join(about.get(_NEWS_TITLE, "").split())[:MAX_TITLE_CHARS],
        language=language[:20] if language else None,
    ), True


# Only the elements read are reported: a <url>'s children are read from it, and the events
# of every leaf would cost more than the rest of the parse.
_REPORTED = tuple(f"{{{ns}}}{tag}" for ns in SITEMAP_NAMESPACES for tag in ("url", "sitemap"))


def _iterparse(source: Any) -> Any:
    """iterparse with every dangerous feature off."""
    return etree.iterparse(
        source,
        events=("end",),
        tag=_REPORTED,
        resolve_entities=False,
        no_network=True,
        huge_tree=False,
        load_dtd=False,
        dtd_validation=False,
        remove_comments=True,
        remove_pis=True,
    )


def _check_root(root: Any) -> tuple[bool, str]:
    """Whether the root is an index, and its namespace; refuse anything else."""
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise NotASitemapError("a DOCTYPE in a sitemap (entities are refused)")
    qname = etree.QName(root)
    if qname.localname not in ("urlset", "sitemapindex"):
        raise NotASitemapError(f"not a sitemap: root element <{qname.localname}>")
    if qname.namespace not in SITEMAP_NAMESPACES:
        raise NotASitemapError(f"not a sitemap: namespace {qname.namespace!r}")
    return qname.localname == "sitemapindex", qname.namespace


@dataclasses.dataclass
class _Collected:
    children: list[SitemapRef] = dataclasses.field(default_factory=list)
    entries: list[SitemapEntry] = dataclasses.field(default_factory=list)
    is_news: bool = False
    older: int = 0
    truncated: int = 0


def parse_sitemap(body: bytes, max_bytes: int, since: float | None = None) -> ParsedSitemap:
    """Parse a sitemap or sitemap index (gzipped or not). Dated entries older than
    ``since`` are counted, not kept. Raises NotASitemapError (a ValueError)."""
    out = _Collected()
    is_index, ns = False, ""
    root: Any = None
    context = _iterparse(_source(body, max_bytes))
    try:
        for _event, element in context:
            if root is None:
                root = element.getroottree().getroot()
                is_index, ns = _check_root(root)
            if element.getparent() is not root:
                continue
            _collect(out, element, ns, is_index, since)
            # Drop what was read: the tree never holds more than one <url>.
            element.clear()
            while element.getprevious() is not None:
                del root[0]
    except etree.XMLSyntaxError as exc:
        raise NotASitemapError(f"not well-formed XML: {exc}") from exc
    if root is None:  # nothing reported: another vocabulary, or a sitemap with no entry
        if context.root is None:
            raise NotASitemapError("empty document")
        is_index, ns = _check_root(context.root)
    return ParsedSitemap(
        is_index=is_index,
        children=tuple(out.children),
        entries=tuple(out.entries),
        is_news=out.is_news,
        older=out.older,
        truncated=out.truncated,
    )


def _collect(out: _Collected, element: Any, ns: str, is_index: bool, since: float | None) -> None:
    if is_index:
        if element.tag == f"{{{ns}}}sitemap" and len(out.children) < MAX_SITEMAP_URLS:
            texts = _texts(element)
            loc = texts.get(f"{{{ns}}}loc")
            if loc and len(loc) <= MAX_LOC_CHARS:
                lastmod = parse_w3c_datetime(texts.get(f"{{{ns}}}lastmod"))
                out.children.append(SitemapRef(loc=loc, lastmod=lastmod))
        return
    if element.tag != f"{{{ns}}}url":
        return
    if len(out.entries) + out.older >= MAX_SITEMAP_URLS:
        out.truncated += 1
        return
    entry, is_news = _entry(element, ns)
    out.is_news = out.is_news or is_news
    if entry is None:
        return
    when = entry.when
    if since is not None and when is not None and when < since:
        out.older += 1
        return
    out.entries.append(entry)


def looks_like_sitemap(body: bytes) -> bool:
    """A cheap sniff of a body's start, for sources whose kind was not configured."""
    if body[:2] == GZIP_MAGIC:
        try:
            head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(body[:4096], 4096)
        except zlib.error:
            return False
    else:
        head = body[:4096]
    return b"<urlset" in head or b"<sitemapindex" in head
