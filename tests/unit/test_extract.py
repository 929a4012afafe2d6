"""Extraction of the bundled demo pages: story kept, chrome gone, encodings right."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import lxml.html
import pytest
import trafilatura

from core.errors import RefusedArticleError
from service.demo import SITE_DIR
from workers.extract import (
    _body_paragraphs,
    _parse,
    _trafilatura,
    decode_html,
    drop_empty_inline_elements,
    drop_gallery_slides,
    extract_article,
    repair_html,
    shows_gallery,
    wrap_loose_text,
)
from workers.pipeline import page_to_extraction

EXPECTED = json.loads((SITE_DIR / "expected.json").read_text(encoding="utf-8"))
PAGES = sorted(EXPECTED)


def _extract(name: str) -> str:
    body = (SITE_DIR / "articles" / name).read_bytes()
    return page_to_extraction(
        body, "text/html", f"https://ledger.example/articles/{name}", 80, ""
    ).text


@pytest.mark.parametrize("name", PAGES)
def test_demo_page_keeps_the_story_and_drops_the_chrome(name: str) -> None:
    expected = EXPECTED[name]
    text = _extract(name)
    title, _, body = text.partition("\n\n")
    assert title == expected["title"]
    paragraphs = body.split("\n\n")
    assert paragraphs[-1] == expected["last_paragraph"]
    # A standalone dateline ("GENEVA —") is joined to the paragraph it introduces.
    assert any(p.endswith(expected["first_paragraph"]) for p in paragraphs[:3])
    for chrome in expected["boilerplate"]:
        assert chrome not in text, chrome
    assert "\n\n\n" not in text and not text.endswith("\n") and "  " not in text


def test_br_separated_page_gives_one_paragraph_per_block() -> None:
    """Old CMS pages separate paragraphs with <br><br> and hard-wrap their source lines."""
    text = _extract("rare-earth-magnets-export-licences.html")
    paragraphs = text.split("\n\n")
    assert len(paragraphs) == 7  # title + 6 paragraphs, no line-wrapped fragments
    assert paragraphs[1].startswith("European and American car parts makers")
    assert paragraphs[1].endswith("works through applications slowly.")


def test_gb18030_page_is_not_mojibake() -> None:
    """The meta charset names GB18030; the text comes out as readable Chinese."""
    body = (SITE_DIR / "articles" / "soybean-purchases-stall.html").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        body.decode("utf-8")
    text = page_to_extraction(body, "text/html", "https://ledger.example/s", 80, "").text
    assert text.startswith("美国大豆对华出口陷入停滞")
    assert "�" not in text


def test_http_charset_wins_and_lying_charset_falls_back() -> None:
    html = "<html><head><meta charset='utf-8'></head><body>Привет мир</body></html>"
    assert "Привет" in decode_html(html.encode("cp1251"), "text/html; charset=windows-1251")
    # The header lies (says UTF-8); the bytes are CP1251: detection still reads them.
    assert "Привет мир" in decode_html(
        ("<p>Привет мир, как дела? " * 20).encode("cp1251"), "text/html; charset=utf-8"
    )


def test_index_page_is_refused_with_a_reason() -> None:
    body = (SITE_DIR / "feeds" / "index.html").read_bytes()
    with pytest.raises(RefusedArticleError) as info:
        page_to_extraction(body, "text/html", "https://ledger.example/", 80, "")
    assert info.value.reason in {"empty", "too_short"}


def test_empty_page_is_refused() -> None:
    with pytest.raises(RefusedArticleError, match="empty"):
        extract_article("<html><body></body></html>", "https://x.example/", 80)


def test_cli_extract_prints_seed_format_and_exit_3_for_non_articles(tmp_path: Path) -> None:
    """`tradewire extract` prints the document; a page with no article exits 3 with a reason."""
    page = SITE_DIR / "articles" / "tariff-truce-extended.html"
    done = subprocess.run(
        [sys.executable, "-m", "service", "extract", str(page)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("US and China extend tariff truce by another 90 days\n\n")
    empty = tmp_path / "empty.html"
    empty.write_text("<html><body><nav>Home</nav></body></html>")
    done = subprocess.run(
        [sys.executable, "-m", "service", "extract", str(empty)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 3
    assert done.stderr.strip().startswith("not an article:")
    assert len(done.stderr.strip().splitlines()) == 1


GOLDEN = Path(__file__).resolve().parents[1] / "data" / "pages"


@pytest.mark.parametrize("name", PAGES)
def test_demo_page_matches_its_reviewed_output_exactly(name: str) -> None:
    """The whole cleaned document, character for character, against a reviewed golden file
    (regenerate deliberately, and read the diff, when extraction is meant to change)."""
    expected = (GOLDEN / name.replace(".html", ".expected.txt")).read_text(encoding="utf-8")
    assert _extract(name) == expected


REFUSAL_DATA = Path(__file__).resolve().parents[1] / "data" / "refusal"


def _paragraphs(name: str) -> tuple[str, ...]:
    body = (REFUSAL_DATA / name).read_bytes()
    return page_to_extraction(body, "text/html", f"https://site.example/{name}", 80, "").paragraphs


def test_br_separated_post_keeps_every_line_including_the_closing_ones() -> None:
    """Wrapping ``<br>`` text into paragraphs must not cost the short closing lines of a post
    (the precise pass used to drop them once they were paragraphs of their own)."""
    paragraphs = _paragraphs("keep_br_post.html")
    assert paragraphs[-3:] == (
        "The ferry timetable changes on Monday, so check before you travel.",
        "Thanks for reading, and see you next week.",
        "Martha",
    )
    assert any(p.startswith("The last container ship") for p in paragraphs)


def test_wrapping_keeps_a_div_beside_loose_text() -> None:
    """A text-only ``div`` among wrapped ``<br>`` runs becomes a paragraph as well."""
    tree = lxml.html.fromstring(
        "<div class='post'>Loose first line.<br><br><div class='x'>Boxed <b>second</b> line."
        "</div><br>Loose third line.</div>"
    )
    wrap_loose_text(tree)
    assert [p.text_content() for p in tree.iter("p")] == [
        "Loose first line.", "Boxed second line.", "Loose third line."
    ]  # fmt: skip


def test_layout_table_gives_paragraphs_and_no_glued_words() -> None:
    """Old pages put the story in a one-cell layout table: its blocks stay paragraphs, the
    words at their edges are not glued together ("effectPublished"), and a PHP warning
    printed above the table is dropped."""
    paragraphs = _paragraphs("keep_php_warning.html")
    assert paragraphs[0] == "Published 10/14/2025"  # the headline is the title line
    assert paragraphs[1].startswith("Chinese customs data released on Tuesday")
    assert not any("on line" in p or "Warning" in p for p in paragraphs)
    assert len(paragraphs) == 6


def test_misspelt_title_end_tag_does_not_swallow_the_page() -> None:
    story = "".join(
        f"<p>The port reopened after strike number {i} ended on Monday, and {i * 40} trucks "
        f"queued at gate {i} before dawn while officials counted the backlog.</p>"
        for i in range(1, 9)
    )
    html = f"<html><head><title>Port reopens</titlevalue='1' --></head><body>{story}</body></html>"
    extraction = extract_article(html, "https://x.example/a", 80)
    assert extraction.paragraphs[0].startswith("The port reopened")


def test_invisible_characters_do_not_reach_the_paragraphs() -> None:
    story = " ".join(
        f"Tar\u00adiffs on ex\u200bports rose by {i} percent in week {i}." for i in range(15)
    )
    html = f"<html><body><article><h1>Tariffs</h1><p>{story}</p></article></body></html>"
    (paragraph,) = extract_article(html, "https://x.example/a", 80).paragraphs
    assert "\u00ad" not in paragraph and "\u200b" not in paragraph
    assert paragraph.startswith("Tariffs on exports rose by 0 percent")


@pytest.mark.parametrize("name", PAGES)
def test_cascade_on_the_page_tree_gives_what_bare_extraction_gives_on_a_copy(name: str) -> None:
    """``_trafilatura`` runs trafilatura's internal cascade on the page's own tree to save a
    copy; it must hand back the body ``bare_extraction`` gives for the same options, with
    the tree still usable by a second pass (a trafilatura upgrade that changes either fails
    here)."""
    html = decode_html((SITE_DIR / "articles" / name).read_bytes())
    url = f"https://ledger.example/articles/{name}"
    reference = trafilatura.bare_extraction(
        _parse(html), url=url, fast=True, favor_precision=True, include_comments=False,
        include_tables=True, with_metadata=False, output_format="txt",
    )  # fmt: skip
    tree = _parse(html)
    first = _body_paragraphs(_trafilatura(tree, url, fast=True))
    assert first == _body_paragraphs(reference.body)
    assert _body_paragraphs(_trafilatura(tree, url, fast=True)) == first


_FILLER = (
    "The port authority said container volumes rose for a third month as shippers moved "
    "cargo ahead of the tariff deadline, and analysts expect the rush to fade by spring."
)


def _story(*blocks: str) -> bytes:
    body = "".join(f"<p>{_FILLER} {i}</p>{block}" for i, block in enumerate(blocks))
    return (
        "<html><head><title>Port volumes rise</title></head><body><article>"
        f"<h1>Port volumes rise</h1>{body}<p>{_FILLER} end</p></article></body></html>"
    ).encode()


def test_section_titles_with_permalink_anchors_are_kept() -> None:
    """Blogs put an icon anchor (``#``, ``¶``, an SVG) or an in-page link on each section
    title; the precise pass took such headings for link boilerplate and dropped them."""
    page = _story(
        '<h2 id="s1">Tariff deadline looms <a class="anchor" href="#s1">#</a></h2>',
        '<h2 id="s2"><a href="#s2"><svg></svg></a>Shippers rush cargo</h2>',
        '<h3><a href="#s3">Analysts expect a slowdown</a></h3>',
    )
    paragraphs = page_to_extraction(page, "", "https://ledger.example/a", 80, "").paragraphs
    assert "Tariff deadline looms" in paragraphs
    assert "Shippers rush cargo" in paragraphs
    assert "Analysts expect a slowdown" in paragraphs
    assert not any(p in ("#", "¶") for p in paragraphs)


def test_a_span_inside_a_sentence_keeps_its_words_but_a_hidden_one_stays_out() -> None:
    """A span classed like chrome (``link``) in the middle of a sentence is the sentence's
    words; the precise pass deleted it and left a hole. A hidden span is still left out."""
    page = _story(
        '<p>Officials said <span class="link"><a href="/port">the port of Long Beach</a></span>'
        " handled a record number of containers in October, ahead of the deadline.</p>",
        '<p>Dockworkers said <span class="sr-hidden" aria-hidden="true">icon</span>'
        " the overtime shifts would continue until the end of the year at least.</p>",
    )
    text = page_to_extraction(page, "", "https://ledger.example/a", 80, "").text
    assert "Officials said the port of Long Beach handled a record number" in text
    assert "Dockworkers said the overtime shifts" in text
    assert "icon" not in text


def test_words_after_an_empty_inline_element_are_kept() -> None:
    """The precise pass deletes an empty ``<span>``/``<i>`` together with the words after
    it (a citation lost its title, a paragraph its first clause); a line break inside one
    still separates lines."""
    page = _story(
        '<p><span class="kern"></span>Harbour officials said the new cranes would cut'
        " unloading times by a third before the holiday season began in earnest.</p>",
        '<p>Shipping lines reported <i class="icon"><svg></svg></i>longer queues at'
        " the outer anchorage, where vessels waited up to four days for a berth.</p>",
        "<p>Pilots said <b><br></b>the night shifts would resume in the spring.</p>",
    )
    text = page_to_extraction(page, "", "https://ledger.example/a", 80, "").text
    assert "Harbour officials said the new cranes would cut unloading times" in text
    assert "Shipping lines reported longer queues at the outer anchorage" in text
    assert "the night shifts would resume" in text


def test_drop_empty_inline_elements_keeps_the_tail_and_a_space_for_whitespace() -> None:
    tree = lxml.html.fromstring(
        "<div><p>Rates <span> </span>rose and <em></em>fell</p>"
        "<p>Keep <i><br></i>break and <strong>bold</strong> text</p></div>"
    )
    drop_empty_inline_elements(tree)
    first, second = tree.findall("p")
    assert first.text_content() == "Rates  rose and fell"
    assert not first.findall("span") and not first.findall("em")
    assert second.find("i") is not None and second.find("strong") is not None


_FILLER_PARAGRAPHS = f"<p>{_FILLER}</p>" * 4


def _gallery(total: int, shown: int, counter: str = "{k}/{n}") -> str:
    slides = "".join(
        f'<li><h2><span class="counter">{counter.format(k=k, n=total)}</span>'
        f" Slide headline number {k}</h2><p>Caption of another story, slide {k}, with"
        " enough words to be kept as a paragraph by the extractor.</p></li>"
        for k in range(1, shown + 1)
    )
    return f'<ul class="legends">{slides}</ul>'


@pytest.mark.parametrize("counter", ["{k}/{n}", "{k} of {n}", "{k} / {n}"])
def test_an_embedded_photo_gallery_is_left_out_of_the_story(counter: str) -> None:
    """Slides counted ``k/N`` (or ``k of N``) are a gallery of other stories' captions."""
    page = _story(_gallery(8, 4, counter), "", "")
    text = page_to_extraction(page, "", "https://ledger.example/a", 80, "").text
    assert "Slide headline" not in text and "Caption of another story" not in text
    assert text.count("The port authority said") == 4  # the story around it stays


def test_gallery_slides_go_but_a_lone_pager_and_unrelated_counts_stay() -> None:
    html = (
        f"<html><body><div>{_gallery(8, 4)}<p>Score: <b>3/4</b></p>{_FILLER_PARAGRAPHS}"
        '<div class="pager"><span>1 of 3</span></div>'
        "<ol><li><span>1/5</span> a</li><li><span>2/6</span> b</li>"
        "<li><span>3/7</span> c</li></ol></div></body></html>"
    )
    tree = lxml.html.fromstring(html)
    assert drop_gallery_slides(tree)
    text = tree.text_content()
    assert "Slide headline" not in text
    assert "3/4" in text and "1 of 3" in text
    assert "1/5" in text and "2/6" in text and "3/7" in text  # no common total: no gallery


def test_a_slideshow_story_keeps_its_slides() -> None:
    """A story that is a slideshow (a short intro, then its slides) keeps the slides."""
    page = (
        "<html><head><title>Ports in pictures</title></head><body><article>"
        "<h1>Ports in pictures</h1><p>The busiest harbours of the year, in pictures.</p>"
        f"{_gallery(5, 5)}</article></body></html>"
    ).encode()
    text = page_to_extraction(page, "", "https://ledger.example/a", 20, "").text
    assert "Caption of another story, slide 4" in text


def test_kept_paragraphs_show_a_gallery_only_for_slides_counted_against_one_total() -> None:
    assert shows_gallery(["Intro", "1/6 Star Wars", "2/6 Net sales", "3 / 6 City", "Coda"])
    assert shows_gallery(["1 of 4 Cranes", "2 of 4 Cargo", "3 of 4 Docks"])
    assert not shows_gallery(["1/2 cup flour", "1/2 teaspoon salt", "3/4 cup sugar"])
    assert not shows_gallery(["1/15 Talks open", "2/15 Talks stall", "3/15 A deal"])  # dates
    assert not shows_gallery(["1/5 a", "2/6 b", "3/7 c"])


REPAIR_CASES = [
    "<html><body><p>plain</p></body></html>",
    "<!DOCTYPE html/>\n<html><body><p>a doctype with a slash</p></body></html>",
    '<!doctype html PUBLIC "-//W3C//DTD XHTML 1.0//EN" "x/y.dtd">\n<html><p>x</p></html>',
    '<html lang="en"/>\n<body><p>a self-closing html tag</p></body>',
    "<html><body><p>a NUL\x00, a bell\x07 and a form feed\x0c</p></body></html>",
    "<html><body><p>tab\tnew line\ncarriage return\r stay</p></body></html>",
    "<html><body><p>non-characters \ufffe and \uffff go</p></body></html>",
    "<html><body><p>\u4e2d\u7f8e\u8d38\u6613 \u0442\u043e\u0440\u0433\u043e\u0432\u043b\u044f\x1f</p>",
    "<!DOCTYPE html/><html/>" + "<p>one long line</p>" * 400,
    "no html at all \ud800 a lone surrogate",
    "",
]


@pytest.mark.parametrize("html", REPAIR_CASES)
def test_repair_html_gives_what_trafilatura_gives(html: str) -> None:
    beginning = html[:50].lower()
    assert repair_html(html, beginning) == trafilatura.utils.repair_faulty_html(html, beginning)


def test_repair_html_gives_what_trafilatura_gives_on_random_text() -> None:
    rng = random.Random(7)
    alphabet = (
        "<html|/>|<!DOCTYPE x/>|\n|\t|\r|\x00|\x08|\x0b|\x1f|\x7f|\ufffe|\uffff|\u00e9|\u4e2d|a| "
    )
    pieces = [*alphabet.split("|"), "\U0001f600"]
    for _ in range(2000):
        html = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 40)))
        beginning = html[:50].lower()
        expected = trafilatura.utils.repair_faulty_html(html, beginning)
        assert repair_html(html, beginning) == expected, repr(html)
