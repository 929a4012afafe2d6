"""Page metadata read from the tree, and loose <br> text wrapped into paragraphs."""

from __future__ import annotations

import lxml.html

from workers.extract import extract_article, wrap_loose_text
from workers.metadata import page_metadata

PAGE = """<html lang="en-GB"><head><title>Chip curbs widen | The Wire</title>
<meta property="og:site_name" content="The Wire">
<meta name="author" content="By Ana Ruiz and Li Wei">
<meta property="article:published_time" content="2025-11-04T08:00:00Z">
<link rel="canonical" href="https://wire.example/chips"></head>
<body><h1>Chip curbs widen</h1><h1>Newsletter</h1></body></html>"""


def test_metadata_from_meta_tags() -> None:
    meta = page_metadata(lxml.html.fromstring(PAGE))
    assert meta.title == "Chip curbs widen"  # "<title> | Site" without the site name
    assert meta.authors == ("Ana Ruiz", "Li Wei")
    assert meta.published == "2025-11-04T08:00:00Z"
    assert meta.site_name == "The Wire"
    assert meta.language == "en-GB"
    assert meta.canonical_url == "https://wire.example/chips"


def test_og_title_wins_and_single_h1_is_next() -> None:
    og = '<html><head><meta property="og:title" content="OG headline"><title>T | S</title></head><body><h1>H</h1></body></html>'
    assert page_metadata(lxml.html.fromstring(og)).title == "OG headline"
    h1 = "<html><head><title>Site</title></head><body><h1>The  headline</h1></body></html>"
    assert page_metadata(lxml.html.fromstring(h1)).title == "The headline"


def test_loose_text_between_breaks_becomes_paragraphs() -> None:
    tree = lxml.html.fromstring(
        "<html><body><div id='c'>First <b>bold</b> part.<br><br>Second part.<br><br>"
        "<div class='ad'>Ad</div>Third.</div></body></html>"
    )
    wrap_loose_text(tree)
    container = tree.get_element_by_id("c")
    # A text-only div among the runs is a paragraph too (left a div, the precise pass drops it).
    assert [child.tag for child in container] == ["p", "p", "p", "p"]
    assert container[0].text_content() == "First bold part."
    assert container[3].text_content() == "Third."


def test_br_page_keeps_its_lead_paragraph() -> None:
    lead = "The lead paragraph says what happened, where and when, and who said so. " * 3
    body = "<br><br>".join(
        [
            lead,
            *(
                f"Paragraph {i} adds more detail on the story, with quotes and numbers. " * 3
                for i in range(6)
            ),
        ]
    )
    html = f"<html><head><title>Story</title></head><body><nav>Home News</nav><div class='entry'>{body}</div></body></html>"
    text = extract_article(html, "https://x.example/a", min_words=50).text
    assert text.split("\n\n")[1] == lead.strip()
