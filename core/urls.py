"""URL canonicalisation and the ids derived from it (pure).

The article id is the first 16 hex digits of sha256(canonical URL), so the same article
always gets the same id, whichever feed or tracking link it arrived through.
"""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

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


def is_tracking_param(name: str) -> bool:
    lowered = name.lower()
    for pattern in TRACKING_PARAMS:
        if pattern.endswith("*"):
            if lowered.startswith(pattern[:-1]):
                return True
        elif lowered == pattern:
            return True
    return False


def is_web_url(url: str) -> bool:
    """True for absolute http(s) URLs with a host; feeds also carry javascript:, file:, data:."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() in _DEFAULT_PORTS and bool(parts.hostname)


def resolve_link(base: str, link: str) -> str:
    """Make a feed entry's link absolute against the feed URL."""
    return urljoin(base, link.strip())


def canonicalize_url(url: str) -> str:
    """Lower-case scheme and host, drop fragment, default port and tracking parameters,
    sort what remains of the query. Raises ValueError for a URL that is not http(s)."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url[:200]!r}")
    host = parts.hostname.lower().rstrip(".")
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    port = parts.port
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    path = parts.path or "/"
    query_pairs = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not is_tracking_param(k)
    ]
    query = urlencode(sorted(query_pairs))
    return urlunsplit((scheme, netloc, path, query, ""))


def short_hash(text: str) -> str:
    """16 lowercase hex digits of sha256: article ids, feed ids, guid keys."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def article_id_for(canonical_url: str) -> str:
    return short_hash(canonical_url)


def same_site(a: str, b: str) -> bool:
    """Whether two URLs belong to the same site (registrable-domain approximation:
    the last two host labels, so www.example.com and example.com match)."""
    ha = (urlsplit(a).hostname or "").lower()
    hb = (urlsplit(b).hostname or "").lower()
    if not ha or not hb:
        return False
    return ha.split(".")[-2:] == hb.split(".")[-2:]


def domain_of(url: str) -> str:
    host = (urlsplit(url).hostname or "").lower()
    return host.removeprefix("www.")
