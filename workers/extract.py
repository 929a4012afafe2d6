"""Page bytes → clean article (pure). With ``workers.cascade``, the only trafilatura importer.

Settings chosen by measurement (``benchmarks/extraction_quality.py`` over the two shared
real sets, ``extraction`` and ``extraction-more``; token F1, refused pages scoring empty):

- comments off and tables on (news tables are text readers want);
- a fast, precise pass (``fast=True``, ``favor_precision=True``) for nearly every page;
  a full pass when it keeps under ``SECOND_PASS_WORDS`` words; a fast recall pass when the
  result is still short or a small share of the page's ``<p>`` text (the precise pass kept
  a sidebar and dropped the story), taken when it keeps ``RECALL_GAIN`` times the words;
- loose text between ``<br><br>`` is wrapped in ``<p>`` first (``wrap_loose_text``), and a
  text-only ``div`` beside it too, so the precise pass keeps every line of such pages;
- links in headings that lead nowhere else (icons, in-page anchors) and spans inside a
  sentence go before extraction, so the precise pass keeps section titles and words;
- empty inline elements (kerning and icon spans) go before extraction, their tail kept:
  the precise pass deletes an empty element with the words after it;
- when slides of a photo gallery embedded in a story (blocks counted ``k/N``) were kept,
  they go and the main text is extracted again;
- ``with_metadata=False``: ``workers.metadata`` reads the few fields we use from the same
  parsed tree; ``workers.refusal`` decides whether the page is an article at all.
"""

from __future__ import annotations

import codecs
import copy
import dataclasses
import re
from typing import Any

import charset_normalizer
import lxml.etree
import lxml.html
import trafilatura
import trafilatura.settings
import trafilatura.utils
import trafilatura.xml

from core.document import format_document, normalize_paragraph, strip_boilerplate, word_count
from core.errors import RefusedArticleError
from workers.cascade import cascade
from workers.language import detect_language, normalize_language_tag
from workers.metadata import page_metadata
from workers.refusal import EMPTY, TOO_SHORT, Page, lone_blocks, refusal_reason

# A fast pass keeping fewer words than this gets a second, full pass (see extract_article).
SECOND_PASS_WORDS = 100
# A result under this share of the page's <p> text gets a recall pass (see _main_text),
# taken when it keeps RECALL_GAIN times the words. Chosen on extraction-more, checked on
# extraction (benchmarks/extraction_quality.py): any share in 0.2-0.5 and gain in 2-3 gives
# the same sign on every source. The lowest share of that range, because the pass is
# speculative: at 0.3 it ran on 50 of the 781 shared pages with 100 words or more and was
# taken on 2 (shares 0.12 and 0.03); at 0.2 it runs on 27, the same 2 taken, outputs equal.
RECALL_SHARE = 0.2
RECALL_GAIN = 2.0
FAVOR_PRECISION = True

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([a-zA-Z0-9_:.-]+)""", re.I)
# Legacy labels whose superset decodes everything they do (as browsers treat them).
_SUPERSETS = {"gb2312": "gb18030", "gbk": "gb18030", "iso-8859-1": "cp1252", "latin-1": "cp1252",
              "ascii": "cp1252", "us-ascii": "cp1252", "ks_c_5601-1987": "cp949"}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Extraction:
    """What the page said, cleaned."""

    title: str
    paragraphs: tuple[str, ...]
    canonical_url: str | None
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


_INLINE = frozenset(
    "a abbr b bdi cite code em i kbd mark q s small span strong sub sup time u".split()
)
_TEXT_BLOCKS = frozenset("p li td th pre h1 h2 h3 h4 h5 h6 blockquote figcaption".split())


def wrap_loose_text(tree: Any) -> None:
    """Old CMSs put an article's text straight into a container, paragraphs separated by
    ``<br><br>``. Precise extraction drops such loose text, so each run of text and
    inline elements between breaks becomes a ``<p>`` of its own (in place)."""
    parents = {br.getparent() for br in tree.iter("br")} - {None}
    for parent in parents:
        if parent.tag in _TEXT_BLOCKS or parent.tag in _INLINE:
            continue
        children = list(parent)
        if not ((parent.text or "").strip() or any((c.tail or "").strip() for c in children)):
            continue
        runs: list[list[Any]] = [[parent.text or ""]]
        for child in children:
            tail, child.tail = child.tail or "", None
            parent.remove(child)
            if child.tag == "br":
                runs.append([])
            elif child.tag in _INLINE or not isinstance(child.tag, str):
                runs[-1].append(child)
            else:
                _as_paragraph(child)
                runs.append([child])  # a block element stands alone
                runs.append([])
            runs[-1].append(tail)
        parent.text = None
        for run in runs:
            if len(run) == 1 and not isinstance(run[0], str):
                parent.append(run[0])
                continue
            if not "".join(x for x in run if isinstance(x, str)).strip() and all(
                isinstance(x, str) for x in run
            ):
                continue
            paragraph = lxml.etree.SubElement(parent, "p")
            last = None
            for item in run:
                if isinstance(item, str):
                    if last is None:
                        paragraph.text = (paragraph.text or "") + item
                    else:
                        last.tail = (last.tail or "") + item
                else:
                    paragraph.append(item)
                    last = item


_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
_WORD_CHAR = re.compile(r"\w")


def drop_heading_icon_links(tree: Any) -> None:
    """Links in headings that lead nowhere else. A link without a word is an icon: the
    permalink anchor (``#``, ``¶`` or an SVG) blogs and documentation put beside every
    section title, a share button; a link to a fragment of the page itself is a section
    title made its own anchor. trafilatura's precise pass finds such a heading all link
    (or no link text at all) and drops the section title with it. So icons go and
    in-page links become plain text, before extraction (in place, text after them kept)."""
    links = [a for heading in tree.iter(_HEADINGS) for a in heading.iter("a")]
    for a in links:
        if a.getparent() is None:  # seen twice (nested headings) and already gone
            continue
        if not _WORD_CHAR.search("".join(a.itertext())):
            a.drop_tree()
        elif a.get("href", "").strip().startswith("#"):
            a.drop_tag()


def _hidden(element: Any) -> bool:
    style = element.get("style", "").replace(" ", "")
    return (
        element.get("aria-hidden") == "true"
        or "display:none" in style
        or "hidden" in element.get("class", "")
    )


def unwrap_spans_in_sentences(tree: Any) -> None:
    """A ``<span>`` with words of its paragraph on both sides is part of the sentence,
    whatever its class says: precise extraction deletes some by class name (``link``,
    ``bottom``) and leaves a hole in the sentence. Such spans become plain text of their
    paragraph (in place) before extraction; hidden ones stay as they are."""
    found = []
    for paragraph in tree.iter("p"):
        for span in paragraph.iter("span"):
            if _hidden(span):
                continue
            before = span.getprevious()
            lead = (before.tail if before is not None else span.getparent().text) or ""
            if _WORD_CHAR.search(lead) and _WORD_CHAR.search(span.tail or ""):
                found.append(span)
    for span in found:
        span.drop_tag()


# Inline elements trafilatura deletes when empty; its precise pass deletes their tail with them.
_EMPTY_CUT_INLINE = ("b", "em", "i", "q", "span", "strong")


def drop_empty_inline_elements(tree: Any) -> None:
    """An inline element with no text (a kerning or icon ``<span>``, an ``<i>`` holding an
    SVG or an image) followed by words of the sentence: trafilatura's precise pass deletes
    empty elements together with their tail, so the words after it vanish mid-sentence
    (a citation losing its title, a paragraph its first clause). Such elements go before
    extraction and their tail stays where it was (in place); one holding a line break is
    kept, as the break separates lines."""
    found = [
        element
        for element in tree.iter(_EMPTY_CUT_INLINE)
        if _WORD_CHAR.search(element.tail or "")
        and not "".join(element.itertext()).strip()
        and element.find(".//br") is None
    ]
    for element in found:
        if element.getparent() is None:
            continue
        if "".join(element.itertext()):  # whitespace inside: keep one space in its place
            element.tail = " " + (element.tail or "")
        element.drop_tree()


# A slide counter ("3/50", "3 of 50") as the whole text of an element of its own.
_SLIDE_COUNTER = re.compile(r"^\s*(\d{1,3})\s*(?:/|of)\s*(\d{1,3})\s*$", re.I)
_COUNTER_CANDIDATES = lxml.etree.XPath(
    "//*[not(*) and string-length(normalize-space(.)) <= 12"
    " and (contains(., '/') or contains(., ' of '))]"
)
# A kept paragraph that starts with a slide counter: the gallery reached the output.
_COUNTER_START = re.compile(r"(\d{1,3})\s*(?:/|of)\s*(\d{1,3})\b", re.I)
# A gallery: at least this many slides counted against the same total N, and at least half
# of N (a gallery's page holds its captions; dates such as 1/15, 2/15, 3/15 are no gallery).
GALLERY_MIN_SLIDES = 3


def _is_gallery(total: str, counted: set[str]) -> bool:
    return len(counted) >= max(GALLERY_MIN_SLIDES, int(total) / 2)


def shows_gallery(paragraphs: list[str]) -> bool:
    """Whether ``GALLERY_MIN_SLIDES`` kept paragraphs start with slide counters of the same
    total: a gallery's slides were kept. Checking the output, not the page, costs nothing on
    the pages without one (a search of every page's tree costs a twentieth of the step)."""
    by_total: dict[str, set[str]] = {}
    for paragraph in paragraphs:
        if paragraph[:1].isdigit() and (match := _COUNTER_START.match(paragraph)):
            by_total.setdefault(match.group(2), set()).add(match.group(1))
    return any(_is_gallery(total, ks) for total, ks in by_total.items())


def drop_gallery_slides(tree: Any) -> bool:
    """A photo gallery embedded in a story ("1/50 Star Wars boosts economy ...", "2/50 ...")
    carries the captions of other stories: each slide is a block with its counter, ``k/N``
    or ``k of N``. Slides are found by their counters (at least ``GALLERY_MIN_SLIDES``
    different ``k`` with the same ``N``, and half of ``N``; each counter an element of its
    own) and removed in place: each slide is the largest block holding its counter and no
    other. A lone "1 of 3" pager is no gallery and stays; so do the slides of a slideshow
    story, whose paragraphs outside them hold under ``SECOND_PASS_WORDS`` words. Returns
    whether slides were removed (the caller then extracts the main text again)."""
    by_total: dict[str, list[tuple[str, Any]]] = {}
    for element in _COUNTER_CANDIDATES(tree):
        match = _SLIDE_COUNTER.match("".join(element.itertext()))
        if match and 0 < int(match.group(1)) <= int(match.group(2)):
            by_total.setdefault(match.group(2), []).append((match.group(1), element))
    counters = [
        element
        for total, found in by_total.items()
        if _is_gallery(total, {k for k, _ in found})
        for _, element in found
    ]
    if not counters:
        return False
    slides = lone_blocks(counters)
    in_slides = sum(word_count(" ".join(_IN_PARAGRAPHS(slide))) for slide in set(slides))
    if word_count(" ".join(_P_TEXT(tree))) - in_slides < SECOND_PASS_WORDS:
        return False  # no story of its own beside the slides: a slideshow's slides are its story
    for slide in slides:
        if slide.getparent() is not None:
            slide.drop_tree()
    return True


def _as_paragraph(element: Any) -> None:
    """A ``div`` beside the wrapped runs holding only text and inline elements is a
    paragraph too: left a ``div`` among new ``<p>`` siblings, precise extraction drops it."""
    if element.tag != "div" or not "".join(element.itertext()).strip():
        return
    if all(
        child.tag in _INLINE or child.tag == "br"
        for child in element.iter()
        if child is not element and isinstance(child.tag, str)
    ):
        element.tag = "p"


def _options(*, fast: bool, precise: bool) -> Any:
    return trafilatura.settings.Extractor(
        fast=fast,
        precision=precise,
        comments=False,
        tables=True,
        images=False,
        with_metadata=False,
    )


# One options object per pass kind, built once: building one reads trafilatura's config
# and formats today's date, about a hundredth of a pass. Each call gets a shallow copy
# carrying its URL, so no call sees another's.
_OPTIONS = {
    (fast, precise): _options(fast=fast, precise=precise)
    for fast in (True, False)
    for precise in (True, False)
}


def _trafilatura(tree: Any, url: str, *, fast: bool, precise: bool = FAVOR_PRECISION) -> Any:
    """trafilatura's extraction cascade run on ``tree`` itself; its body tree, or None.

    ``bare_extraction`` copies the tree it is given, then copies it twice more to clean
    it; with comments off, the only change the cascade makes to the tree it is handed is
    to delete the comment sections and infinite-scroll containers, which every later pass
    deletes too. So the page's own tree goes in and one copy of three is saved (each a few
    percent of the step). What follows (the paragraph share, the refusal rules) sees the
    tree without those sections; no output changed on the 781 shared pages and the
    labelled set. ``test_cascade_on_the_page_tree_...`` holds the two paths equal. The
    cascade is ``workers.cascade``'s, trafilatura's own with its raw-tree prunes in Python."""
    options = copy.copy(_OPTIONS[fast, precise])
    options.url = url
    options.source = url and url.encode("utf-8", "replace").decode("utf-8")
    try:
        body, text = cascade(tree, options, url)
    except (TypeError, ValueError):  # as bare_extraction: no result
        return None
    return body if len(text) >= options.min_output_size else None


def _body_paragraphs(body: Any) -> list[str]:
    if body is None:
        return []
    blocks = paragraphs_from_body(body)
    if not blocks:
        text = trafilatura.xml.xmltotxt(body, include_formatting=False)
        blocks = text.split("\n") if text else []
    return strip_boilerplate([p for p in (normalize_paragraph(b) for b in blocks) if p])


_TITLE_START = re.compile(r"(<title\b[^>]*>)([^<]*)", re.I)
# No real title is this long and holds markup: the parser took the page as title text.
_MAX_TITLE_CHARS = 300


def _html_parser() -> Any:
    """trafilatura's parser settings with a class lookup done in C. lxml.html's own lookup
    calls a Python function for every element proxy created (to give ``<form>``, ``<input>``
    and the like their form classes, which neither trafilatura nor we use): thousands of
    calls a page, through our passes and trafilatura's, about a twentieth of the step.
    Every element is still an ``HtmlElement``, as trafilatura requires."""
    parser = lxml.html.HTMLParser(
        collect_ids=False, default_doctype=False, encoding="utf-8", remove_comments=True,
        remove_pis=True,
    )  # fmt: skip
    parser.set_element_class_lookup(
        lxml.etree.ElementDefaultClassLookup(
            element=lxml.html.HtmlElement,
            comment=lxml.html.HtmlComment,
            pi=lxml.html.HtmlProcessingInstruction,
            entity=lxml.html.HtmlEntity,
        )
    )
    return parser


_PARSER = _html_parser()


# Each byte of UTF-8 text mapped to 0 when it is a control character that XML forbids
# (C0 but tab, line feed and carriage return: no other character's UTF-8 holds one), else 1.
_FORBIDDEN_C0 = bytes(0 if b < 0x20 and b not in (0x09, 0x0A, 0x0D) else 1 for b in range(256))


def _may_hold_forbidden_chars(html: str) -> bool:
    """True when ``html`` holds a character that ``repair_faulty_html`` deletes. Its regular
    expression took 0.3 to 0.5 ms over a 180 KB page, a twentieth of an extraction, to find
    none on nearly every page; this check, in C over the UTF-8 bytes, a third of that."""
    if "\ufffe" in html or "\uffff" in html:
        return True
    return b"\x00" in html.encode("utf-8", "surrogatepass").translate(_FORBIDDEN_C0)


def repair_html(html: str, beginning: str) -> str:
    """``trafilatura.utils.repair_faulty_html``, the same result: its scan for characters
    XML forbids only where there may be one, then its two repairs of the first lines."""
    if _may_hold_forbidden_chars(html):
        return trafilatura.utils.repair_faulty_html(html, beginning)
    if "doctype" in beginning:
        firstline, _, rest = html.partition("\n")
        html = trafilatura.utils.DOCTYPE_TAG.sub("", firstline, count=1) + "\n" + rest
    for line in html[:4096].splitlines()[:4]:
        if "<html" in line and line.endswith("/>"):
            return trafilatura.utils.FAULTY_HTML.sub(r"\1>", html, count=1)
    return html


def _load_html(html: str) -> Any:
    """``trafilatura.utils.load_html`` for a string, with ``_PARSER``: the same repairs,
    the same fallback to bytes and the same rejection of what is not HTML."""
    beginning = html[:50].lower()
    html = repair_html(html, beginning)
    tree, as_bytes = None, False
    try:
        tree = lxml.html.fromstring(html, parser=_PARSER)
    except ValueError:  # a str declaring an encoding: lxml wants bytes
        as_bytes = True
    except Exception:  # lxml's own errors, as trafilatura treats them: no tree
        tree = None
    if as_bytes or tree is None or len(tree) < 1:
        try:
            tree = lxml.html.fromstring(html.encode("utf8", "surrogatepass"), parser=_PARSER)
        except Exception:  # as trafilatura's fromstring_bytes: no tree
            tree = None
    if tree is not None and "html" not in beginning and len(tree) < 2:
        return None
    return tree


def _parse(html: str) -> Any:
    """Parse; a ``<title>`` whose end tag is misspelt (``</titlevalue=...``) swallows the
    whole page as title text, as it would in a browser, so it is closed at its first tag."""
    tree = _load_html(html)
    title = tree.find(".//title") if tree is not None else None
    text = title.text or "" if title is not None else ""
    if len(text) > _MAX_TITLE_CHARS and "<" in text:
        tree = _load_html(_TITLE_START.sub(r"\1\2</title>", html, count=1))
    return tree


_P_TEXT = lxml.etree.XPath("//p//text()", smart_strings=False)
_IN_PARAGRAPHS = lxml.etree.XPath(".//p//text()", smart_strings=False)


def _paragraph_chars(tree: Any) -> int:
    """Characters in the page's ``<p>`` elements: how much running text the page offers
    (characters, not words: as cheap as it gets, and the same for every script)."""
    return sum(len(text) for text in _P_TEXT(tree))


def _main_text(tree: Any, url: str) -> tuple[list[str], int]:
    """The fast precise pass; a full pass when it keeps under ``SECOND_PASS_WORDS`` words;
    a fast recall pass when the result is still short or a small share of the page's
    paragraph text (the precise pass then often kept a sidebar and dropped the story),
    taken only when it keeps ``RECALL_GAIN`` times as many words."""
    paragraphs = _body_paragraphs(_trafilatura(tree, url, fast=True))
    words = word_count(" ".join(paragraphs))
    if words < SECOND_PASS_WORDS:
        fuller = _body_paragraphs(_trafilatura(tree, url, fast=False))
        fuller_words = word_count(" ".join(fuller))
        if fuller_words > words:
            paragraphs, words = fuller, fuller_words
    chars = sum(len(p) for p in paragraphs)
    if words < SECOND_PASS_WORDS or chars < RECALL_SHARE * _paragraph_chars(tree):
        recall = _body_paragraphs(_trafilatura(tree, url, fast=True, precise=False))
        recall_words = word_count(" ".join(recall))
        if recall_words >= RECALL_GAIN * max(words, 1):
            paragraphs, words = recall, recall_words
    return paragraphs, words


def extract_article(
    html: str,
    url: str,
    min_words: int,
    fallback_title: str = "",
    *,
    refuse_non_articles: bool = True,
) -> Extraction:
    """Extract the article of ``html``; raise RefusedArticleError when there is none.

    One parse serves both our metadata lookups and trafilatura. The fast, precise pass
    suits nearly every page; when it keeps under ``SECOND_PASS_WORDS`` words (it dropped
    the body of an unusual layout), the full pass with its fallbacks runs on the same tree.
    """
    tree = _parse(html)
    if tree is None:
        raise RefusedArticleError(EMPTY, "no HTML document")
    meta = page_metadata(tree)
    wrap_loose_text(tree)
    drop_heading_icon_links(tree)
    unwrap_spans_in_sentences(tree)
    drop_empty_inline_elements(tree)
    paragraphs, words = _main_text(tree, url)
    if shows_gallery(paragraphs) and drop_gallery_slides(tree):
        paragraphs, words = _main_text(tree, url)  # once more, without the slides
    if refuse_non_articles:
        page = Page(tree, url, html[:20000], meta.page_type, meta.published)
        reason = refusal_reason(page, paragraphs, words, min_words)
        if reason is not None:
            raise RefusedArticleError(reason, f"{words} words kept")
    elif not paragraphs:
        raise RefusedArticleError(EMPTY, "no main text found")
    elif words < min_words:
        raise RefusedArticleError(TOO_SHORT, f"{words} words")
    language = normalize_language_tag(meta.language) or detect_language(" ".join(paragraphs))
    title = normalize_paragraph(meta.title or fallback_title)
    return Extraction(
        title=title,
        # The headline repeated in the body is the title line's (format_document drops it too).
        paragraphs=tuple(p for p in paragraphs if p != title),
        canonical_url=meta.canonical_url,
        authors=meta.authors,
        published=meta.published,
        site_name=meta.site_name,
        language=language,
    )


_BREAK = "\x00"


def paragraphs_from_body(body: Any) -> list[str]:
    """One paragraph per block of trafilatura's body tree. Line breaks in the page source
    are spaces; ``<br>`` (``lb``) and nested blocks separate paragraphs, as old CMSs use
    ``<br><br>`` and layout tables; list items and table rows are paragraphs of their own,
    and a one-cell row (a layout table) gives its blocks as paragraphs."""
    out: list[str] = []
    for block in body:
        if block.tag == "list":
            for item in block.iter("item"):
                out.extend(_flatten(item).split(_BREAK))
        elif block.tag == "table":
            for row in block.iter("row"):
                cells = [_flatten(cell) for cell in row.iter("cell")]
                cells = [c for c in cells if c.replace(_BREAK, "").strip()]
                if len(cells) == 1:
                    out.extend(cells[0].split(_BREAK))
                else:
                    out.append(
                        " | ".join(normalize_paragraph(c.replace(_BREAK, " ")) for c in cells)
                    )
        else:
            out.extend(_flatten(block).split(_BREAK))
        if block.tail and block.tail.strip():
            out.append(block.tail)  # text between blocks is a paragraph of its own
    return out


# Elements of trafilatura's output that are blocks: their text never runs into a neighbour's.
_OUTPUT_BLOCKS = frozenset("p head item list quote code table row cell div".split())


def _flatten(element: Any) -> str:
    parts: list[str] = []

    def walk(node: Any) -> None:
        if node.tag == "lb":
            parts.append(_BREAK)
        elif node.text:
            parts.append(node.text)
        for child in node:
            block = child.tag in _OUTPUT_BLOCKS and child.tag != "cell"
            if block:
                parts.append(_BREAK)
            walk(child)
            if block:
                parts.append(_BREAK)
            if child.tail:
                parts.append(child.tail)

    walk(element)
    return "".join(parts)
