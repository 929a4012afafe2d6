"""URL canonicalisation and the ids derived from it (pure).

The article id is the first 16 hex digits of sha256(canonical URL), so the same article
always gets the same id, whichever feed or tracking link it arrived through.

Contract: these functions take whatever a feed or a page says and never raise. A URL that
cannot be fetched (another scheme, no host, a port out of range, a malformed IPv6 literal,
a host with characters no resolver answers for) has no canonical form: ``canonicalize_url``
returns None and ``is_web_url`` False, so each caller drops that one item, not its batch.
"""

from __future__ import annotations

import hashlib
import ipaddress
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import tldextract

# Query parameters that identify a campaign or a click, never the article. Matched
# case-insensitively; entries ending in "*" are prefixes.
TRACKING_PARAMS: tuple[str, ...] = (
    "utm_*",
    "fbclid",
    "gclid",
    "gclsrc",
    "dclid",
    "msclkid",
    "yclid",
    "twclid",
    "igshid",
    "mc_cid",
    "mc_eid",
    "mkt_tok",
    "_ga",
    "_gl",
    "_hsenc",
    "_hsmi",
    "oly_anon_id",
    "oly_enc_id",
    "vero_id",
    "wt.*",
    "wt_mc",
    "ns_*",
    "at_medium",
    "at_campaign",
    "cmpid",
    "ocid",
    "smid",
    "sr_share",
    "ref_src",
    "spm",
    "rss",
    "taid",
    "ito",
)

_DEFAULT_PORTS = {"http": 80, "https": 443}

# The URL Standard's forbidden domain code points (C0 controls, space, delimiters, %, DEL):
# a host holding one is a parsing accident, not a name any resolver answers for.
_FORBIDDEN_HOST_CHARS = frozenset([chr(c) for c in range(0x21)] + list("#/:<>?@[\\]^|%\x7f"))

# Sites are told apart with the Public Suffix List, private suffixes included (github.io,
# blogspot.com: each subdomain is its own owner's site). The snapshot bundled with the
# package is used as it is: no download and no cache directory at run time.
_SUFFIXES = tldextract.TLDExtract(
    suffix_list_urls=(), cache_dir=None, include_psl_private_domains=True
)


def is_tracking_param(name: str) -> bool:
    lowered = name.lower()
    for pattern in TRACKING_PARAMS:
        if pattern.endswith("*"):
            if lowered.startswith(pattern[:-1]):
                return True
        elif lowered == pattern:
            return True
    return False


def _host_and_port(url: str) -> tuple[str, str, int | None] | None:
    """(scheme, host, port) of a usable absolute http(s) URL, the host lower-cased and an
    IPv6 literal in brackets; None for anything that cannot be fetched."""
    try:
        parts = urlsplit(url.strip())
        port, hostname = parts.port, parts.hostname
    except ValueError:  # a port out of range or not a number, a malformed IPv6 literal
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not hostname or port == 0:
        return None
    host = hostname.lower().rstrip(".")
    if ":" in host:
        # A zone id ("%25eth0") names an interface of one machine: no article lives there.
        return (scheme, f"[{host}]", port) if _is_ipv6(host) and "%" not in host else None
    if not host or not _FORBIDDEN_HOST_CHARS.isdisjoint(host):
        return None
    return scheme, host, port


def is_web_url(url: str) -> bool:
    """True for absolute http(s) URLs that could be fetched; feeds also carry javascript:,
    file:, data: and plain garbage."""
    return _host_and_port(url) is not None


def resolve_link(base: str, link: str) -> str | None:
    """Make a feed entry's or a page's link absolute against the URL it came from; None
    when the two cannot be joined (a malformed IPv6 literal in either)."""
    try:
        return urljoin(base, link.strip())
    except ValueError:
        return None


def canonicalize_url(url: str) -> str | None:
    """Lower-case scheme and host, drop userinfo, fragment, default port and tracking
    parameters, sort what remains of the query. None when ``is_web_url`` is False."""
    found = _host_and_port(url)
    if found is None:
        return None
    scheme, host, port = found
    parts = urlsplit(url.strip())  # cannot fail: _host_and_port split it already
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    query_pairs = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not is_tracking_param(k)
    ]
    # errors="replace": a lone surrogate must not make an otherwise good URL unusable.
    query = urlencode(sorted(query_pairs), errors="replace")
    return urlunsplit((scheme, netloc, parts.path or "/", query, ""))


def short_hash(text: str) -> str:
    """16 lowercase hex digits of sha256: article ids, feed ids, guid keys."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def article_id_for(canonical_url: str) -> str:
    return short_hash(canonical_url)


def site_of(url: str) -> str | None:
    """The site a URL belongs to: its registrable domain under the Public Suffix List
    (bbc.co.uk for www.bbc.co.uk, a.github.io for x.a.github.io); a host that is itself a
    public suffix, or an IP address, is a site of its own. None for an unusable URL."""
    found = _host_and_port(url)
    if found is None:
        return None
    host = found[1]
    if host.startswith("[") or _is_ipv4(host):
        return host
    try:
        parts = _SUFFIXES.extract_str(host)
    except ValueError:  # tldextract decodes xn-- labels, and some do not decode
        return host
    if parts.suffix:
        return parts.top_domain_under_public_suffix or host
    # A TLD the list does not name is a public suffix by the list's default rule "*".
    return ".".join(host.split(".")[-2:])


def _is_ipv4(host: str) -> bool:
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return False
    return True


def _is_ipv6(host: str) -> bool:
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        return False
    return True


def same_site(a: str, b: str) -> bool:
    """Whether two URLs belong to the same site (see ``site_of``): www.example.com and
    example.com do, evil.co.uk and www.bbc.co.uk or a.github.io and b.github.io do not."""
    site = site_of(a)
    return site is not None and site == site_of(b)


def domain_of(url: str) -> str:
    """The host without a leading ``www.`` (the event's source_domain, the politeness key);
    empty for an unusable URL."""
    found = _host_and_port(url)
    return found[1].strip("[]").removeprefix("www.") if found is not None else ""
