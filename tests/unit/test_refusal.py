"""Pages that are not articles are refused with a typed reason."""

from __future__ import annotations

import pytest

from core.errors import RefusedArticleError
from workers.extract import extract_article

STORY = " ".join(
    f"Sentence {i} of a real story about tariffs, talks and the people who negotiate them."
    for i in range(40)
)


def page(body: str, head: str = "") -> str:
    return f"<html><head><title>Page</title>{head}</head><body>{body}</body></html>"


def reason(html: str) -> str:
    with pytest.raises(RefusedArticleError) as info:
        extract_article(html, "https://x.example/a", min_words=80)
    return info.value.reason


def test_bot_challenge() -> None:
    html = page(
        "<div id='cf-browser-verification'><h1>Just a moment...</h1>"
        "<p>Checking if the site connection is secure. This process is automatic and your "
        "browser will redirect to your requested content shortly. Please allow up to 5 "
        "seconds while we verify that you are a human visitor and not an automated program.</p></div>",
        "<script src='/cdn-cgi/challenge-platform/h/b/orchestrate/jsch/v1'></script>",
    )
    assert reason(html) == "bot_challenge"


def test_consent_wall() -> None:
    html = page(
        "<div class='consent'><h1>Before you continue</h1><p>We use cookies and data to "
        "deliver and maintain our services, measure audience engagement and show personalised "
        "ads. If you choose to accept all, we and our partners will also use cookies for "
        "legitimate interest purposes. Select reject all to decline, or manage options to see "
        "more choices about your privacy settings at any time, for every one of our sites.</p>"
        "<p>Accept all</p><p>Reject all</p></div>"
    )
    assert reason(html) == "consent_wall"


def test_paywall_teaser_cut_short() -> None:
    html = page(
        "<article><h1>Tariff deal details emerge</h1><p>Negotiators from both sides met late on "
        "Sunday to settle the remaining points of the agreement, officials said, adding that "
        "the text would be published within days after a legal review by both governments and "
        "their trade ministries and negotiating teams.</p>"
        "<p>Subscribe to continue reading. Already a subscriber? Log in.</p></article>"
    )
    assert reason(html) == "paywall"


def test_section_page() -> None:
    teasers = "".join(
        f"<article><h2><a href='/story-{i}'>Headline number {i} about markets</a></h2>"
        f"<p>A one-line standfirst for story {i} on the index.</p></article>"
        for i in range(12)
    )
    html = page(f"<main>{teasers}</main>", "<meta property='og:type' content='website'>")
    assert reason(html) == "index_page"


def test_a_long_article_mentioning_cookies_and_subscribers_is_kept() -> None:
    html = page(
        f"<article><h1>Story</h1><p>{STORY}</p><p>We use cookies; accept all or reject all "
        f"in your privacy settings.</p><p>{STORY}</p></article>",
        "<meta property='og:type' content='article'>",
    )
    assert extract_article(html, "https://x.example/a", min_words=80).paragraphs
