"""``workers.cascade`` against trafilatura itself: the raw-tree prunes select the elements
trafilatura's XPath expressions select, and the cascade hands back what
``trafilatura_sequence`` hands back, for every kind of options we pass."""

from __future__ import annotations

import copy
import hashlib
import random
from typing import Any

import lxml.html
import pytest
import trafilatura.core
import trafilatura.xpaths
from trafilatura.htmlprocessing import prune_unwanted_nodes

import workers.cascade
from service.demo import SITE_DIR
from workers.cascade import COMMENT_RULES, RAW_TREE_RULES, cascade, matches, prune_raw_tree
from workers.extract import _OPTIONS, _parse, decode_html

RULES_AND_XPATHS = [
    (RAW_TREE_RULES, trafilatura.xpaths.RAW_TREE_PRUNE_XPATH),
    (COMMENT_RULES, trafilatura.xpaths.REMOVE_COMMENTS_AND_LISTS_XPATH),
]
# The expressions the rules were written from (trafilatura 2.3.1). Another text means
# trafilatura changed them: write the rules again from the new text, then this hash.
PINNED = "4886bf3f8ae56599ab9029aa8bce5f62067f965a13f8377e3005158e53dd7b1f"

NAMES = ["comment", "Comment", "comments", "Commentary", "commentary-box", "comol", "comolx",
         "disqus_thread", "dsq-comments", "x-dsq-comments", "article-comments", "post-comments",
         "my-post-comments", "infinite-scroll", "infinitescroll", "infinite_scroll",
         "mvp-post-add-box", "mvp-post-add-wrap", "mvp-post-add", "elementor-share-buttons",
         "share", "main", ""]  # fmt: skip
TAGS = ["div", "section", "aside", "ol", "ul", "details", "list", "p", "span", "article", "h1"]


def _random_page(rng: random.Random, depth: int = 0) -> str:
    parts = []
    for _ in range(rng.randint(1, 4)):
        tag = rng.choice(TAGS)
        attrs = ""
        if rng.random() < 0.6:
            attrs += f' id="{rng.choice(NAMES)}"'
        if rng.random() < 0.6:
            attrs += f' class="{rng.choice(NAMES)} {rng.choice(NAMES)}"'
        inner = _random_page(rng, depth + 1) if depth < 4 and rng.random() < 0.7 else "words"
        parts.append(f"<{tag}{attrs}>{inner}</{tag}> tail {len(parts)}")
    return "".join(parts)


def test_the_expressions_are_the_ones_the_rules_were_written_from() -> None:
    paths = [x.path for _, xpaths in RULES_AND_XPATHS for x in xpaths]
    assert hashlib.sha256("\n".join(paths).encode()).hexdigest() == PINNED
    assert [len(rules) for rules, _ in RULES_AND_XPATHS] == [len(x) for _, x in RULES_AND_XPATHS]


def test_rules_select_what_the_xpath_expressions_select_on_random_pages() -> None:
    rng = random.Random(11)
    selected = 0
    for _ in range(400):
        tree = lxml.html.fromstring(f"<html><body>{_random_page(rng)}</body></html>")
        for rules, xpaths in RULES_AND_XPATHS:
            for rule, xpath in zip(rules, xpaths, strict=True):
                expected = xpath(tree)
                assert matches(tree, rule) == expected
                selected += len(expected)
            pruned = prune_raw_tree(copy.deepcopy(tree), rules)
            reference = prune_unwanted_nodes(copy.deepcopy(tree), xpaths)
            assert lxml.html.tostring(pruned) == lxml.html.tostring(reference)
    assert selected > 400  # the pages hold plenty of what the rules look for


CRAFTED = {
    "comments and scroll": (
        "<html><body><article><h1>Port volumes rise</h1>"
        + "<p>Container volumes rose for a third month as shippers moved cargo early.</p>" * 12
        + '<ul id="disqus_thread"><li>'
        + "A reader's long comment on the port. " * 20
        + '</li></ul></article><div id="comments"><p>'
        + "A reader says hello. " * 30
        + "</p></div>"
        '<div class="infinite-scroll"><article><p>'
        + "Next story text. "
        * 40
        + '</p></article></div><ul class="post-comments"><li>first</li></ul>'
        '<div class="elementor-share-buttons">Share</div></body></html>'
    ),
    "forum thread": (
        '<html><head><script type="application/ld+json">{"@type": "DiscussionForumPosting"}'
        '</script></head><body><h1>Tariff thread</h1><div class="comment-list">'
        + "<div class='comment'><p>I think the tariff on steel will raise prices a lot.</p></div>"
        * 8
        + "</div></body></html>"
    ),
    "short page": (
        "<html><body><div><p>Beijing answered on Friday.</p></div><div>"
        + "<span>Menu item</span> " * 50
        + "</div><div>"
        + "<p>Short line of a listing.</p>" * 20
        + "</div></body></html>"
    ),
    "infinite scroll holding the headline": (
        '<html><body><div id="infinite-scroll"><h1>The headline</h1>'
        + "<p>The story sits inside the scroller on this theme, paragraph after paragraph.</p>" * 10
        + "</div></body></html>"
    ),
}
DEMO = {path.name: path.read_bytes().decode("utf-8") for path in
        sorted((SITE_DIR / "articles").iterdir())[:6]}  # fmt: skip


@pytest.mark.parametrize("options_key", sorted(_OPTIONS))
@pytest.mark.parametrize("name", [*CRAFTED, *DEMO])
def test_cascade_gives_what_trafilatura_sequence_gives(
    name: str, options_key: tuple[bool, bool]
) -> None:
    html = CRAFTED.get(name) or decode_html(DEMO[name].encode("utf-8"))
    _assert_same_as_trafilatura(html, options_key)


def _assert_same_as_trafilatura(html: str, options_key: tuple[bool, bool]) -> None:
    options = copy.copy(_OPTIONS[options_key])
    url = "https://ledger.example/a"
    body, text = cascade(_parse(html), options, url)
    ref_body, ref_text, _, _ = trafilatura.core.trafilatura_sequence(_parse(html), options, url)
    assert text == ref_text, html
    assert lxml.html.tostring(body) == lxml.html.tostring(ref_body), html


WORDS = ("tariff exporters ministry rare earth magnets shipment monthly reports Beijing "
         "Washington talks steel duties quota soybeans chips license").split()  # fmt: skip
CLASSES = ["widget", "sidebar", "post", "entry", "content", "footer", "date", ""]


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + ". "


def _block(rng: random.Random, depth: int = 0) -> str:
    """One piece of a made-up blog page: paragraphs, loose text, link lists, widgets."""
    text = _sentence(rng, rng.randint(3, 40))
    blocks = {
        "p": f"<p>{text}</p>",
        "loose": f"<div>{text}<strong>{_sentence(rng, 3)}</strong>{text}</div>",
        "span": f"<span>{text}</span>",
        "br": f"{text}<br><br>{text}",
        "h2": f"<h2>{_sentence(rng, 5)}</h2>",
        "links": "".join(f"<a href='/l{i}'>{_sentence(rng, 3)}</a> " for i in range(5)),
        "ul": "<ul>"
        + "".join(
            f"<li><a href='/u{i}'>{_sentence(rng, 4)}</a></li>" for i in range(rng.randint(1, 6))
        )
        + "</ul>",
    }
    kind = rng.choice([*blocks, "container"])
    if kind != "container":
        return blocks[kind]
    inner = "".join(_block(rng, depth + 1) for _ in range(rng.randint(1, 4))) if depth < 3 else text
    return f"<div class='{rng.choice(CLASSES)}'>{inner}</div>"


def test_cascade_gives_what_trafilatura_sequence_gives_on_random_pages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Random layouts reach every stage: among them pages whose extraction is short
    beside the page's text, where the recall escalation (and in a full pass justext)
    replaces the result."""
    escalated: list[bool] = []
    escalate = workers.cascade._escalate

    def spy(tree: Any, options: Any, url: str | None, body: Any, text: str) -> tuple[Any, str]:
        result = escalate(tree, options, url, body, text)
        escalated.append(result[0] is not body)
        return result

    monkeypatch.setattr(workers.cascade, "_escalate", spy)
    rng = random.Random(5)
    for _ in range(150):
        html = "<html><body>" + "".join(_block(rng) for _ in range(rng.randint(2, 10)))
        for options_key in _OPTIONS:
            _assert_same_as_trafilatura(html + "</body></html>", options_key)
    assert sum(escalated) >= 10


@pytest.mark.parametrize("candidate", ["long", "short", "fails"])
def test_escalation_weighs_a_justext_candidate_as_trafilatura_does(
    monkeypatch: pytest.MonkeyPatch, candidate: str
) -> None:
    """justext's candidate (full passes) stands in for one that wins, loses or raises, in
    both cascades alike, on random pages that escalate."""

    def justext_rescue(tree: Any, options: Any) -> tuple[Any, str]:
        if candidate == "fails":
            raise ValueError("justext failed")
        body = lxml.html.fromstring("<div><p>justext</p></div>")
        return body, "justext " * (400 if candidate == "long" else 2)

    monkeypatch.setattr(trafilatura.core, "justext_rescue", justext_rescue)
    monkeypatch.setattr(workers.cascade, "justext_rescue", justext_rescue)
    rng = random.Random(5)
    for _ in range(60):
        html = "<html><body>" + "".join(_block(rng) for _ in range(rng.randint(2, 10)))
        _assert_same_as_trafilatura(html + "</body></html>", (False, False))
