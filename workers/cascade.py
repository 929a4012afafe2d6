"""trafilatura's extraction cascade for our options (pure), its raw-tree prunes in Python.

``trafilatura.core.trafilatura_sequence`` (2.3.1) first deletes two kinds of section from
the raw page: infinite-scroll and share-button containers (``RAW_TREE_PRUNE_XPATH``) and
comment sections (``REMOVE_COMMENTS_AND_LISTS_XPATH``). libxml2 evaluates each of those
three ``.//*[...]`` expressions by walking every element of the page, about 0.45 ms on a
180 KB page, and the cascade runs them again on every pass: 1.7 ms of a 13.6 ms
extraction. The same tests read from each element's ``id`` and ``class`` in Python take
a fifth of that, and the same elements come out (all 781 pages of the shared extraction
sets: 9,256 matches, the same texts).

``cascade`` is ``trafilatura_sequence`` as our options reach it (comments off), those two
prunes done by ``prune_raw_tree``, the rest trafilatura's own steps in trafilatura's
order. Tests hold both equal to trafilatura's (the matchers to its XPath expressions,
whose text they pin, and the cascade to ``trafilatura_sequence``), so an upgrade that
changes either fails there rather than here.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from copy import copy
from typing import Any

import trafilatura.core as tc
from trafilatura.baseline import baseline, html2txt
from trafilatura.external import justext_rescue
from trafilatura.htmlprocessing import prune_unwanted_nodes
from trafilatura.xml import delete_element
from trafilatura.xpaths import REMOVE_COMMENTS_XPATH

_MVP_OR_SCROLL = re.compile("mvp-post-add-(?:box|wrap)|infinite-?scroll")
_MVP = re.compile("mvp-post-add-(?:box|wrap)")
_COMMENT_ID = re.compile("^(?:[Cc]omment(?!ary)|comol|disqus_thread|dsq-comments)")
_COMMENT_LIST_ID = re.compile("^(?:[Cc]omment(?!ary)|comol)")
_COMMENT_CLASS = re.compile("^[Cc]omment(?!ary)|(?:article|post)-comments")


def _id_class(element: Any) -> tuple[str, str]:
    # XPath's string value of a missing attribute is "", which no pattern here matches.
    return element.get("id") or "", element.get("class") or ""


def _endless_container(element: Any) -> bool:
    """``RAW_TREE_PRUNE_XPATH[0]``: an infinite-scroll (or MVP theme's appended-post)
    container, unless an infinite-scroll one holds the page's ``h1``."""
    id_, class_ = _id_class(element)
    if not (_MVP_OR_SCROLL.search(id_) or _MVP_OR_SCROLL.search(class_)):
        return False
    if next(element.iterdescendants("h1"), None) is None:
        return True
    return bool(_MVP.search(id_) or _MVP.search(class_))


def _share_buttons(element: Any) -> bool:
    """``RAW_TREE_PRUNE_XPATH[1]``."""
    return "elementor-share-buttons" in (element.get("class") or "")


def _comment_section(element: Any) -> bool:
    """``REMOVE_COMMENTS_AND_LISTS_XPATH[0]``: a comment section; a list only when its own
    id or class says so."""
    id_, class_ = _id_class(element)
    if not (_COMMENT_ID.search(id_) or _COMMENT_CLASS.search(class_)):
        return False
    if element.tag not in ("ol", "ul"):
        return True
    return bool(_COMMENT_LIST_ID.search(id_) or _COMMENT_CLASS.search(class_))


Rule = tuple[tuple[str, ...], Callable[[Any], bool]]
_CONTAINERS = ("div", "section", "aside")
RAW_TREE_RULES: tuple[Rule, ...] = (
    (_CONTAINERS, _endless_container),
    (_CONTAINERS, _share_buttons),
)
COMMENT_RULES: tuple[Rule, ...] = (
    (("div", "list", "section", "details", "ol", "ul"), _comment_section),
)


def matches(tree: Any, rule: Rule) -> list[Any]:
    """The descendants of ``tree`` a rule selects, in document order (as its XPath)."""
    tags, test = rule
    return [element for element in tree.iterdescendants(*tags) if test(element)]


def prune_raw_tree(tree: Any, rules: tuple[Rule, ...]) -> Any:
    """``prune_unwanted_nodes``: each rule's matches deleted (tails kept), rule by rule."""
    for rule in rules:
        for element in matches(tree, rule):
            delete_element(element)
    return tree


def cascade(tree: Any, options: Any, url: str | None) -> tuple[Any, str]:
    """``trafilatura_sequence(tree, options, url)``'s body and text for ``options`` with
    comments off (the only kind we pass)."""
    is_forum = tc._forum_thread_page(tree)
    tree = prune_raw_tree(tree, RAW_TREE_RULES)
    if options.focus == "precision" or not is_forum:
        tree = prune_raw_tree(tree, COMMENT_RULES)
    cleaned_tree, cleaned_tree_backup = tc._prepare_tree(tree, options, url)
    if options.focus == "precision" and not is_forum:
        cleaned_tree = prune_unwanted_nodes(cleaned_tree, REMOVE_COMMENTS_XPATH)
    body, text = tc._extract_and_compare(cleaned_tree, cleaned_tree_backup, tree, options)
    if len(text) < options.min_extracted_size and options.focus != "precision":
        rescued_body, rescued_text, rescued_len = baseline(tree)
        if rescued_len > len(text):
            body, text = rescued_body, rescued_text
    if (
        options.focus == "balanced"
        and 0 < len(text) < tc.ESCALATION_MAX_LENGTH
        and len(text) < tc.ESCALATION_PAGE_SHARE * len(html2txt(tree))
    ):
        body, text = _escalate(tree, options, url, body, text)
    return body, text


def _escalate(tree: Any, options: Any, url: str | None, body: Any, text: str) -> tuple[Any, str]:
    """Stage 4, the recall escalation: the cascade again in recall mode, and justext beside
    it in a full pass; either kept when clearly longer."""
    recall_options = copy(options)
    recall_options.focus = "recall"
    recall_body, recall_text = None, ""
    # A candidate that raises is none: trafilatura logs it and goes on without it.
    with contextlib.suppress(Exception):
        recall_body, recall_text = tc._recall_retry(tree, recall_options, url)
    justext_body, justext_text = None, ""
    if not options.fast:
        with contextlib.suppress(Exception):
            justext_body, justext_text = justext_rescue(copy(tree), options)
    if len(justext_text) > len(recall_text) and (
        len(justext_text) > tc.ESCALATION_JUSTEXT_RATIO * len(text)
    ):
        return justext_body, justext_text
    if len(recall_text) >= options.min_extracted_size and (
        len(recall_text) > tc.ESCALATION_ACCEPT_RATIO * len(text)
    ):
        return recall_body, recall_text
    return body, text
