"""Is this page an article at all? (pure). A typed reason when it is not.

Walls and challenges are recognised by the markers their vendors and CMSs put in pages,
teasers and section pages by the shape of what extraction kept, never by site names.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence

BOT_CHALLENGE = "bot_challenge"
CONSENT_WALL = "consent_wall"
PAYWALL = "paywall"
INDEX_PAGE = "index_page"

_CHALLENGE = re.compile(
    r"cf-browser-verification|challenge-platform|cf_chl_|just a moment\.\.\.|"
    r"checking (?:if the site connection is secure|your browser)|"
    r"attention required!?\s*\|\s*cloudflare|"
    r"px-captcha|captcha-delivery|datadome|g-recaptcha|h-captcha|hcaptcha\.com|"
    r"please (?:verify|confirm) (?:that )?you are (?:a )?human|are you a robot",
    re.I,
)
_CONSENT = re.compile(
    r"\b(?:cookies?|consent|privacy (?:settings|preferences|choices)|accept all|reject all|"
    r"manage (?:options|preferences)|partners|legitimate interest|personali[sz]ed ads|"
    r"before you continue|we value your privacy)\b",
    re.I,
)
_PAYWALL = re.compile(
    r"subscribe (?:now )?to (?:continue|keep) reading|this (?:article|content|story) is "
    r"(?:only )?(?:available )?(?:for|to) (?:paying )?subscribers|already a subscriber\??|"
    r"to continue reading,? (?:please )?(?:subscribe|log ?in|sign in)|create a free account to "
    r"(?:continue|read)|\"isAccessibleForFree\"\s*:\s*\"?false",
    re.I,
)

# A walled page's extract is short; a long article that merely mentions cookies is fine.
WALL_MAX_WORDS = 250


def refusal_reason(
    html_head: str, paragraphs: Sequence[str], words: int, page_type: str | None
) -> str | None:
    """The reason to refuse the page, or None to keep it.

    ``html_head`` is the start of the page (challenges and paywall flags sit early),
    ``paragraphs`` what extraction kept, ``page_type`` its og:type when it has one."""
    if words < WALL_MAX_WORDS:  # walls leave little text; most pages skip the searches
        if _CHALLENGE.search(html_head):
            return BOT_CHALLENGE
        text = " ".join(paragraphs)
        if len(_CONSENT.findall(text)) >= 3:
            return CONSENT_WALL
        if _PAYWALL.search(html_head) or _PAYWALL.search(text[-2000:]):
            return PAYWALL
    if paragraphs and page_type in ("website", "section", "object"):
        lengths = [len(p.split()) for p in paragraphs]
        if len(lengths) >= 5 and statistics.median(lengths) < 14:
            return INDEX_PAGE  # a list of headlines and standfirsts, not a story
    return None
