"""URL canonicalisation: the article id must not depend on tracking or cosmetic details."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.urls import (
    article_id_for,
    canonicalize_url,
    domain_of,
    is_web_url,
    resolve_link,
    same_site,
)


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
    assert canonicalize_url(url) is None


# Links seen in real feeds and pages, and worse: each must give a verdict, never an exception.
HOSTILE_URLS = [
    "https://x.example:99999/a",  # port out of range
    "https://x.example:-1/a",
    "https://x.example:+80/a",
    "https://x.example:8o/a",
    "https://x.example:0/a",  # no server listens on port 0
    "http://[::1/a",  # unbalanced IPv6 bracket
    "http://::1]/a",
    "http://[zz::1]/a",  # not an IPv6 address
    "http://[::1]:99999/",
    "http://[fe80::1%25eth0]/",
    "http:///a",  # empty host
    "http://./a",  # a host that is only the root dot
    "http://:80/a",
    "http://user:pass@/a",  # userinfo, no host
    "http://user:p@ss@x.example/a",
    "http://a b.example/",  # space in the host
    "http://x\x00.example/",
    "http://\uff03.example/",  # fullwidth #: NFKC turns it into a delimiter
    "http://a\u2100b.example/",
    "http://b\u00fccher.example/",  # IDNA
    "http://xn--/",
    "http://" + "a" * 300 + ".example/",
    "https://x.example/" + "a" * 10_000,  # a 10 kB URL
    "https://x.example/?" + "&".join(f"k{i}=v" for i in range(2_000)),
    "",
    " ",
    "http://",
    "https:",
    "//x.example/a",
    "\x00",
]


@pytest.mark.parametrize("url", HOSTILE_URLS)
def test_url_functions_never_raise(url: str) -> None:
    canonical = canonicalize_url(url)
    assert canonical is None or is_web_url(canonical)
    assert is_web_url(url) == (canonical is not None)
    assert isinstance(same_site(url, "https://x.example/"), bool)
    assert isinstance(same_site("https://x.example/", url), bool)
    assert isinstance(domain_of(url), str)
    resolve_link("https://feed.example/rss", url)
    resolve_link(url, "/story")


@pytest.mark.parametrize(
    "url",
    [
        "https://x.example:99999/a",
        "https://x.example:0/a",
        "http://[::1/a",
        "http://[zz::1]/a",
        "http://[fe80::1%25eth0]/a",
        "http:///a",
        "http://./a",
        "http://a b.example/",
        "http://x\x00.example/",
    ],
)
def test_unusable_urls_have_no_canonical_form(url: str) -> None:
    """A URL nobody can fetch gets no article id: it is None, and is_web_url says no."""
    assert canonicalize_url(url) is None
    assert not is_web_url(url)


def test_unusable_links_do_not_resolve() -> None:
    assert resolve_link("https://feed.example/rss", "http://[::1/a") is None
    assert resolve_link("https://feed.example/rss", "/a") == "https://feed.example/a"


def test_userinfo_never_reaches_the_canonical_form() -> None:
    assert canonicalize_url("https://user:secret@X.example:443/a") == "https://x.example/a"


_hosts = st.one_of(
    st.sampled_from(["x.example", "X.Example.", "[::1]", "[2002:a00:1::]", "127.0.0.1", "", "."]),
    st.text(min_size=0, max_size=30),
    st.from_regex(r"\[[0-9a-fA-F:.%zZ]{0,20}\]?", fullmatch=True),
)
_ports = st.one_of(
    st.just(""),
    st.integers(min_value=-10, max_value=200_000).map(lambda p: f":{p}"),
    st.text(max_size=6).map(lambda p: f":{p}"),
)
_urls = st.one_of(
    st.builds(
        lambda scheme, userinfo, host, port, rest: f"{scheme}://{userinfo}{host}{port}{rest}",
        st.sampled_from(["http", "https", "HTTPS", "ftp", "javascript", ""]),
        st.sampled_from(["", "user@", "user:pass@", "@", "a@b@"]),
        _hosts,
        _ports,
        st.text(max_size=40),
    ),
    st.text(max_size=80),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(url=_urls, other=_urls)
def test_url_functions_never_raise_fuzzed(url: str, other: str) -> None:
    """Whatever a feed or page says, the URL functions answer; a canonical form is stable."""
    canonical = canonicalize_url(url)
    if canonical is not None:
        assert canonical.startswith(("http://", "https://"))
        assert canonicalize_url(canonical) == canonical
    assert is_web_url(url) == (canonical is not None)
    same_site(url, other)
    domain_of(url)
    resolve_link(url, other)


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("https://www.bbc.co.uk/news/1", "https://bbc.co.uk/news/1", True),
        ("https://www.example.com/a", "https://example.com/b", True),
        ("https://news.example/a", "https://www.news.example/b", True),  # unlisted TLD: *.tld
        ("http://127.0.0.1:8000/a", "http://127.0.0.1:9000/b", True),
        ("https://evil.co.uk/a", "https://www.bbc.co.uk/a", False),
        ("https://a.github.io/a", "https://b.github.io/a", False),  # private suffixes
        ("https://github.io/a", "https://a.github.io/a", False),
        ("https://foo.blogspot.com/a", "https://bar.blogspot.com/a", False),
        ("https://x.s3.amazonaws.com/a", "https://y.s3.amazonaws.com/a", False),
        ("https://a.b.co.jp/a", "https://c.b.co.jp/a", True),
        ("https://example.com/a", "https://example.org/a", False),
        ("http://10.0.0.1/a", "http://20.0.0.1/a", False),  # IPs: "0.1" is no site
        ("http://[::1]/a", "http://[::2]/a", False),
    ],
)
def test_same_site_follows_the_public_suffix_list(a: str, b: str, same: bool) -> None:
    assert same_site(a, b) is same
    assert same_site(b, a) is same


def test_a_malformed_href_costs_only_itself_in_feed_discovery() -> None:
    from service.discover import find_feed_links

    html = (
        '<link rel="alternate" type="application/rss+xml" href="http://[::1/bad.xml">'
        '<link rel="alternate" type="application/rss+xml" href="https://x.example:99999/f">'
        '<link rel="alternate" type="application/rss+xml" href="/good.xml">'
    )
    assert find_feed_links(html, "https://site.example/") == ["https://site.example/good.xml"]


def test_the_public_suffix_list_is_never_fetched(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bundled snapshot is the list: loading it opens no connection."""
    import importlib
    import socket

    import core.urls

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the Public Suffix List was fetched")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    fresh = importlib.reload(core.urls)
    assert not fresh.same_site("https://a.github.io/", "https://b.github.io/")
    assert fresh.site_of("https://news.bbc.co.uk/x") == "bbc.co.uk"
