"""Is this page an article at all? (pure). A typed reason when it is not.

Every rule asks what the page's *main content* is, never whether some marker occurs
somewhere: a reCAPTCHA in a comment form, a subscription box beside a full story or a
"related stories" list under it do not make an article a challenge, a paywall or a section
page. Walls and challenges are recognised by vendor and CMS markup plus little text;
section pages by the structure of their links (many headline links of similar shape to
sibling pages making up the kept text); short pages by article-likeness (an article
container, a headline, a date), not by a word count alone. No site names anywhere.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any
from urllib.parse import urljoin, urlsplit

from core.document import is_server_error

BOT_CHALLENGE = "bot_challenge"
CONSENT_WALL = "consent_wall"
PAYWALL = "paywall"
INDEX_PAGE = "index_page"
ERROR_PAGE = "error_page"
TOO_SHORT = "too_short"
EMPTY = "empty"

# Titles and headings that challenge and interstitial pages show (vendors' defaults).
_CHALLENGE_TITLE = re.compile(
    r"^(?:just a moment|attention required|checking (?:your browser|if the site connection)"
    r"|please wait|one more step|are you (?:a )?(?:robot|human)|robot or human"
    r"|pardon our interruption|access denied|security check|verify(?:ing)? (?:you are )?human"
    r"|ddos protection|captcha)",
    re.I,
)
# The patterns searched in the page source (``Page.head_lower``) are lowercase and
# case-sensitive: a case-insensitive search of 20,000 characters costs about ten times a
# lowercasing and a plain search (1.5 ms a pattern, a few percent of the step).
# Markup only a challenge page carries in its body (not the scripts CDNs add everywhere).
_CHALLENGE_MARKUP = re.compile(
    r"cf-browser-verification|cf-challenge|cf_chl_opt|challenge-form|px-captcha|"
    r"captcha-delivery\.com|geo\.captcha"
)
# Captcha widgets also sit in comment, contact and login forms of ordinary pages.
_CAPTCHA_WIDGET = re.compile(r"g-recaptcha|h-captcha|recaptcha/api\.js|cf-turnstile")
_CHALLENGE_TEXT = re.compile(
    r"please (?:verify|confirm) (?:that )?you(?:'re| are) (?:a )?human|are you a robot|"
    r"checking (?:if the site connection is secure|your browser)|enable javascript and cookies"
    r"|complete the security check|press (?:&|and) hold",
    re.I,
)
_CONSENT = re.compile(
    r"\b(?:cookies?|consent|privacy (?:settings|preferences|choices)|accept all|reject all|"
    r"manage (?:options|preferences)|partners|legitimate interest|personali[sz]ed ads|"
    r"before you continue|we value your privacy|"
    r"einwilligung|zustimmen|alle akzeptieren|datenschutz|partner|"  # de
    r"consentement|accepter|tout accepter|tout refuser|partenaires|"  # fr
    r"zgod[ay]|akceptuj[eę]|prywatno[sś]ci|partnerzy|ciasteczk)\b",  # pl
    re.I,
)
# Searched in lowercased text (see _CHALLENGE_MARKUP).
_PAYWALL = re.compile(
    r"subscribe (?:now )?to (?:continue|keep) reading|this (?:article|content|story) is "
    r"(?:only )?(?:available )?(?:for|to) (?:paying )?subscribers|already a subscriber\??|"
    r"to continue reading,? (?:please )?(?:subscribe|log ?in|sign in)|create a free account to "
    r"(?:continue|read)|\"isaccessibleforfree\"\s*:\s*\"?false"
)
_ERROR_TITLE = re.compile(
    r"\b(?:404|410|500|502|503)\b.{0,40}(?:not found|error|gone|unavailable)|"
    r"^(?:page|file|article|content) (?:not found|unavailable)|not found$|"
    r"^(?:error|oops)\b|internal server error|service unavailable|"
    r"seite nicht gefunden|page (?:introuvable|non trouvée)|nie znaleziono strony|"
    r"strona nie (?:istnieje|została znaleziona)|página no encontrada",
    re.I,
)
_ARTICLE_TYPES = re.compile(
    r"\"@type\"\s*:\s*\[?\s*\"(?:News|Reportage|Analysis|Opinion|Report|Blog)?(?:Article|"
    r"Posting)\"",
)
_CONTAINER_XPATH = (
    "//article | //*[@itemprop='articleBody'] | //*[contains(@itemtype, 'Article')]"
    " | //*[contains(@itemtype, 'BlogPosting')]"
    " | //*[contains(concat(' ', normalize-space(@class), ' '), ' entry-content ')"
    " or contains(@class, 'post-body') or contains(@class, 'article-body')"
    " or contains(@class, 'story-body') or contains(@class, 'articleBody')]"
)
_HEADLINE_XPATH = (
    "//h1 | //*[@itemprop='headline'] | //h2[contains(@class, 'title')"
    " or contains(@class, 'headline')]"
)
_DATE = re.compile(
    r"\b(?:\d{4}-\d{2}-\d{2}|\d{1,2}[./]\d{1,2}[./]\d{2,4}|"
    r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.? \d{1,2}(?:st|nd|rd|th)?,? "
    r"\d{4}|\d{1,2}(?:st|nd|rd|th|er)?\.? (?:jan|feb|m[aä]r|apr|ma[iy]|jun|jul|aug|sep|o[ck]t|"
    r"nov|de[cz]|janv|févr|mars|avr|mai|juin|juil|août|sept|déc|stycz|lut|marc|kwie|maj|czerw|lip|sierp|wrze|"
    r"paźdz|listop|grud)[a-zéûèżźł]*\.?,? \d{4})",
    re.I,
)

# A consent wall uses one consent term (cookies, partners, Einwilligung...) per this many words.
CONSENT_WORDS_PER_TERM = 25
# Walls, challenges and error pages leave little text; long pages skip those searches.
WALL_MAX_WORDS = 250
# A short page showing two of (article container, headline, date) is kept from this many
# words on, one showing all three from half as many (a photo caption, a wire flash).
BRIEF_MIN_WORDS = 20
# Section pages: at least this many teaser blocks (a headline link to a sibling page each)
INDEX_MIN_TEASERS = 6
# hold at least this share of the kept words, spread over at least this many paragraphs.
INDEX_TEASER_SHARE = 0.6
INDEX_MIN_PARAGRAPHS = 4
# A teaser is a headline and a standfirst; a block with more words is a story of its own.
TEASER_MAX_WORDS = 80


@dataclasses.dataclass(frozen=True)
class Page:
    """The parsed page as refusal rules see it; every look-up is lazy and cached."""

    tree: Any
    url: str
    html_head: str  # the start of the page source: challenge and paywall flags sit early
    page_type: str | None  # og:type
    published: str | None

    @functools.cached_property
    def head_lower(self) -> str:
        return self.html_head.lower()

    @functools.cached_property
    def title(self) -> str:
        return " ".join(" ".join(self.tree.xpath("//head/title//text()")).split())

    @functools.cached_property
    def body_text(self) -> str:
        body = self.tree.find(".//body")  # a bare fragment parses without one
        root = body if body is not None else self.tree
        return " ".join(" ".join(root.itertext()).split())[:20000]

    @functools.cached_property
    def article_like(self) -> int:
        """How many of (article container, headline, date) the page shows, 0 to 3."""
        container = (
            self.page_type == "article"
            or bool(_ARTICLE_TYPES.search(self.html_head))
            or bool(self.tree.xpath(_CONTAINER_XPATH))
        )
        headline = any(
            len("".join(h.itertext()).split()) >= 2 for h in self.tree.xpath(_HEADLINE_XPATH)
        )
        date = bool(self.published or self.tree.xpath("//time")) or bool(
            _DATE.search(self.body_text[:5000])
        )
        return int(container) + int(headline) + int(date)

    @functools.cached_property
    def teaser_blocks(self) -> list[str]:
        """The text of each teaser block (see ``_is_index``); empty when the page has fewer
        than ``INDEX_MIN_TEASERS`` headline links to sibling pages."""
        host = urlsplit(self.url).netloc.lower()
        anchors, paths = [], []
        for a in _headline_links(self.tree):
            if len("".join(a.itertext()).split()) < 3:
                continue  # the word count first: resolving a URL costs ten times as much
            target = urlsplit(urljoin(self.url, a.get("href", "").strip()))
            if target.netloc.lower() in (host, ""):
                anchors.append(a)
                paths.append(target.path.strip("/").split("/"))
        if len({"/".join(p) for p in paths}) < INDEX_MIN_TEASERS:
            return []
        n_depth = Counter(len(p) for p in paths).most_common(1)[0][1]
        n_prefix = Counter(p[0] for p in paths).most_common(1)[0][1]
        if max(n_depth, n_prefix) < 0.6 * len(paths):
            return []  # links to all corners of the site: navigation, not a section's teasers
        blocks = _block_texts(anchors)
        blocks = [b for b in blocks if len(b.split()) <= TEASER_MAX_WORDS]
        return blocks if len(blocks) >= INDEX_MIN_TEASERS else []


def _headline_links(tree: Any) -> list[Any]:
    """Links inside a heading or wrapping one, in document order, each once."""
    found: dict[Any, None] = {}
    for heading in tree.iter("h1", "h2", "h3", "h4"):
        for a in heading.iter("a"):
            found[a] = None
        for a in heading.iterancestors("a"):
            found[a] = None
    return [a for a in found if a.get("href")]


def _block_texts(anchors: list[Any]) -> list[str]:
    """For each anchor, the text of its largest ancestor holding no other headline link."""
    return [" ".join(" ".join(node.itertext()).split()) for node in lone_blocks(anchors)]


def lone_blocks(marks: list[Any]) -> list[Any]:
    """For each marked element, its largest ancestor (below ``body``) holding no other mark:
    a teaser around its headline link, a gallery slide around its counter. One count of
    marks per ancestor, so the climb costs the depth, not the subtree."""
    under: Counter[Any] = Counter()
    for mark in marks:
        under.update(mark.iterancestors())
    blocks = []
    for mark in marks:
        node = mark
        while (parent := node.getparent()) is not None and parent.tag != "body":
            if under[parent] > 1:
                break
            node = parent
        blocks.append(node)
    return blocks


def _is_challenge(page: Page, text: str, words: int) -> bool:
    """The main content is the challenge: a challenge title, or challenge markup or wording
    with no article around it. A captcha in a story's comment form is not enough."""
    if _CHALLENGE_TITLE.match(page.title) or _CHALLENGE_TEXT.search(text):
        return True
    if _CHALLENGE_MARKUP.search(page.head_lower):
        return page.article_like < 2
    widget = _CAPTCHA_WIDGET.search(page.head_lower)
    return bool(widget) and words < BRIEF_MIN_WORDS and page.article_like < 2


def _is_consent_wall(text: str, words: int) -> bool:
    hits = len(_CONSENT.findall(text))
    return hits >= 3 and hits * CONSENT_WORDS_PER_TERM >= words  # consent wording dominates


def _is_paywall(page: Page, text: str, words: int) -> bool:
    """A wall with nothing of the story in front of it. A teaser whose lead paragraphs and
    headline survive is kept (its prompts are stripped as boilerplate), and so is a full
    article beside a subscription box."""
    if not (_PAYWALL.search(page.head_lower) or _PAYWALL.search(text[-2000:].lower())):
        return False
    return words < BRIEF_MIN_WORDS or page.article_like < 2


def _is_index(page: Page, paragraphs: Sequence[str], words: int) -> bool:
    """Most of the kept text sits in teaser blocks: blocks each holding one headline link
    to a sibling page of the same section (same site, same path depth or first segment),
    at least ``INDEX_MIN_TEASERS`` of them. A story's own paragraphs sit in no such block,
    whatever "related stories" list or sidebar the page also has."""
    if len(paragraphs) < INDEX_MIN_PARAGRAPHS:
        return False
    lengths = [len(p.split()) for p in paragraphs]
    if sum(n for n in lengths if n <= TEASER_MAX_WORDS) < INDEX_TEASER_SHARE * sum(lengths):
        return False  # most of the text is in paragraphs longer than any teaser
    blocks = page.teaser_blocks
    if not blocks:
        return False
    teaser_words = sum(
        n for p, n in zip(paragraphs, lengths, strict=True) if any(p in b for b in blocks)
    )
    return teaser_words >= INDEX_TEASER_SHARE * sum(lengths)


def refusal_reason(page: Page, paragraphs: Sequence[str], words: int, min_words: int) -> str | None:
    """The reason to refuse the page, or None to keep it; ``paragraphs`` and ``words`` are
    what extraction kept."""
    text = " ".join(paragraphs)
    if not paragraphs:
        if _is_challenge(page, text, words):
            return BOT_CHALLENGE
        return ERROR_PAGE if _is_error(page) or is_server_error(page.body_text[:500]) else EMPTY
    if words < WALL_MAX_WORDS:
        if _is_challenge(page, text, words):
            return BOT_CHALLENGE
        if _is_consent_wall(text, words):
            return CONSENT_WALL
        if _is_error(page):
            return ERROR_PAGE
        if _is_paywall(page, text, words):
            return PAYWALL
    if _is_index(page, paragraphs, words):
        return INDEX_PAGE
    if words < min_words and not _is_brief(page, words):
        return TOO_SHORT
    return None


def _is_error(page: Page) -> bool:
    """An error title on a page that is not an article. (A page whose only text is a server
    error, a PHP warning or a stack trace, keeps no paragraph: see ``refusal_reason``.)"""
    return bool(_ERROR_TITLE.search(page.title)) and page.article_like < 3


def _is_brief(page: Page, words: int) -> bool:
    """A short text that is still an article: it sits in an article-like page."""
    likeness = page.article_like
    return (likeness >= 2 and words >= BRIEF_MIN_WORDS) or (
        likeness == 3 and words >= BRIEF_MIN_WORDS // 2
    )
