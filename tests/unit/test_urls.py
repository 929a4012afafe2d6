"""URL canonicalisation: the article id must not depend on tracking or cosmetic details."""

from __future__ import annotations

import pytest

from core.urls import article_id_for, canonicalize_url, is_web_url


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("HTTPS://Example.COM:443/a?b=2&a=1#frag", "https://example.com/a?a=1&b=2"),
        ("http://example.com:80", "http://example.com/"),
        ("http://example.com:8080/x", "http://example.com:8080/x"),
        ("https://ex.com/a?utm_source=rss&utm_medium=feed&id=7", "https://ex.com/a?id=7"),
        ("https://ex.com/a?fbclid=1&gclid=2&mc_cid=3&mc_eid=4&ocid=5", "https://ex.com/a"),
        ("https://ex.com/a?UTM_Campaign=x&page=2", "https://ex.com/a?page=2"),
        ("https://www.ex.com./a", "https://www.ex.com/a"),
    ],
)
def test_canonical_forms(raw: str, canonical: str) -> None:
    assert canonicalize_url(raw) == canonical


def test_same_article_same_id() -> None:
    """Tracking parameters and fragments do not change the id; the path does."""
    a = article_id_for(canonicalize_url("https://ex.com/story?utm_source=x#top"))
    b = article_id_for(canonicalize_url("https://EX.com/story"))
    c = article_id_for(canonicalize_url("https://ex.com/story2"))
    assert a == b != c
    assert len(a) == 16 and int(a, 16) >= 0


@pytest.mark.parametrize(
    "url",
    ["javascript:alert(1)", "file:///etc/passwd", "data:text/html,x", "ftp://x/y", "/relative"],
)
def test_non_web_urls_are_refused(url: str) -> None:
    assert not is_web_url(url)
    with pytest.raises(ValueError, match="not an http"):
        canonicalize_url(url)
