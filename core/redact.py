"""Credential masking for URLs and free text: the one place that knows what a secret looks like.

redis-py takes credentials from a URL's userinfo (``user:pass@``, ``:pass@``, a lone
``token@``) and from any query argument (``?password=``, ``?username=``, ``ssl_password``),
for ``redis://``, ``rediss://`` and ``unix://`` alike. Settings, the log processors and
/readyz all mask through here, so a new form is handled everywhere at once.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

# Query arguments that carry a credential. redis-py decodes the key, so we match decoded.
_SECRET_PARAM = re.compile(r"pass|secret|token|username|credential", re.I)
# A URL inside text runs to the next whitespace: a quote or bracket closing a repr may be
# swallowed (and kept, or masked with a query value), but one inside a password cannot cut
# the URL short and leave the rest of the password in clear.
_URL_IN_TEXT = re.compile(r"[a-z][a-z0-9+.-]*://\S+", re.I)
MASK = "***"


def redact_url(url: str) -> str:
    """``url`` with its password (or lone username token) and credential query values masked;
    everything else, TLS file paths included, is kept as written."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc = re.match(r"[^/?#]*", rest)[0]  # type: ignore[index]  # always matches
    tail = rest[len(netloc) :]
    if "@" in netloc:
        # rpartition: an unencoded "@" inside the password still belongs to the userinfo.
        userinfo, _, hostport = netloc.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{hostport}" if colon and user else f"{MASK}@{hostport}"
    before_fragment, hash_sign, fragment = tail.partition("#")
    path, question, query = before_fragment.partition("?")
    if question:
        query = "&".join(_mask_param(param) for param in query.split("&"))
    return f"{scheme}://{netloc}{path}{question}{query}{hash_sign}{fragment}"


def _mask_param(param: str) -> str:
    name, equals, _ = param.partition("=")
    if equals and _SECRET_PARAM.search(unquote_plus(name)):
        return f"{name}={MASK}"
    return param


def mask_secrets(text: str) -> str:
    """Mask the credentials of every URL in ``text`` (log messages, exception text)."""
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda match: redact_url(match[0]), text)
