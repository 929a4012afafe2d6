"""Pages that are not articles are refused with a typed reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import RefusedArticleError
from workers.extract import extract_article
from workers.pipeline import page_to_extraction

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


def test_paywall_teaser_keeps_its_lead_and_loses_the_wall() -> None:
    """A teaser whose headline and lead survive is kept (its gold text is the lead); the
    subscription prompt is stripped, not delivered as text."""
    html = page(
        "<article><h1>Tariff deal details emerge</h1><p>Negotiators from both sides met late on "
        "Sunday to settle the remaining points of the agreement, officials said, adding that "
        "the text would be published within days after a legal review by both governments and "
        "their trade ministries and negotiating teams.</p>"
        "<p>Subscribe to continue reading. Already a subscriber? Log in.</p></article>"
    )
    kept = extract_article(html, "https://x.example/a", min_words=80)
    assert kept.paragraphs[-1].startswith("Negotiators from both sides")
    assert not any("subscriber" in p for p in kept.paragraphs)


def test_paywall_with_no_story_in_front_is_refused() -> None:
    html = page(
        "<div class='wall'><h2>This content is available to subscribers only</h2>"
        "<p>Subscribe now to keep reading and get unlimited access.</p>"
        "<p>Already a subscriber? Sign in</p></div>"
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


LABELLED = Path(__file__).resolve().parents[1] / "data" / "refusal"
LABELS = {
    name: label
    for name, label in json.loads((LABELLED / "labels.json").read_text(encoding="utf-8")).items()
    if not name.startswith("_")
}


def _verdict(name: str) -> str | None:
    body = (LABELLED / name).read_bytes()
    try:
        page_to_extraction(body, "text/html", f"https://site.example/news/{name}", 80, "")
    except RefusedArticleError as err:
        return err.reason
    return None


@pytest.mark.parametrize("name", sorted(LABELS))
def test_labelled_page_gets_its_verdict(name: str) -> None:
    """Hand-written non-article pages (consent walls in three languages, challenges of four
    vendors, section and blog index pages, error pages) are refused with their reason;
    real-looking articles that trip the old rules (a wire brief, a short blog post, a how-to
    with lists and links, a captcha comment form, a subscription box, a related-links list,
    a PHP warning, ``<br>`` text) are kept."""
    assert _verdict(name) == LABELS[name]


def test_labelled_set_covers_every_reason_and_both_verdicts() -> None:
    reasons = set(LABELS.values())
    assert {None, "consent_wall", "bot_challenge", "index_page", "error_page", "paywall"} <= reasons
    assert sum(label is None for label in LABELS.values()) >= 8


def test_captcha_widget_alone_is_not_a_challenge_but_a_challenge_page_is() -> None:
    """The same reCAPTCHA markup: in a comment form under a story it is kept; as the main
    content of a page titled as a security check it is a challenge."""
    form = "<form><div class='g-recaptcha' data-sitekey='k'></div><button>Post</button></form>"
    script = "<script src='https://www.google.com/recaptcha/api.js'></script>"
    story = page(f"<article><h1>Story</h1><p>{STORY}</p>{form}</article>", script)
    assert extract_article(story, "https://x.example/a", min_words=80).paragraphs
    wall = page(
        f"<main><h1>One more step</h1><p>Please wait while we check.</p>{form}</main>", script
    )
    assert reason(wall) == "bot_challenge"


def test_short_text_is_kept_when_the_page_is_article_like_and_refused_when_not() -> None:
    brief = (
        "Shares in Asian exporters rose on Tuesday after officials confirmed that the tariff "
        "truce would be extended for another ninety days."
    )
    article = page(
        f"<article><h1>Truce extended</h1><time datetime='2025-03-04'>4 March 2025</time>"
        f"<p>{brief}</p></article>"
    )
    assert extract_article(article, "https://x.example/a", min_words=80).paragraphs == (brief,)
    bare = page(f"<div><p>{brief}</p></div>")
    assert reason(bare) == "too_short"


def test_server_error_page_is_an_error_page() -> None:
    html = (
        "<b>Fatal error</b>: Uncaught Error: Call to a member function query() on bool in "
        "/var/www/html/article.php:52<br>Stack trace:<br>#0 /var/www/html/index.php(18): "
        "load()<br>#1 {main}<br> thrown in <b>/var/www/html/article.php</b> on line <b>52</b>"
    )
    assert reason(html) == "error_page"
