"""How often a feed wants polling (pure): the publisher's own hints and its real rhythm.

Two kinds of evidence, kept apart so the scheduler can weigh them:

- hints the publisher states: RSS ``<ttl>``, the RSS 1.0 syndication module's
  ``sy:updatePeriod``/``sy:updateFrequency``, and HTTP freshness (``Cache-Control: max-age``,
  ``Expires``). Each says "nothing new before this", so the largest one wins;
- the rhythm the feed actually shows: the gaps between its recent items' dates.

Nothing here reads the clock; callers pass ``now`` (epoch seconds).
"""

from __future__ import annotations

import email.utils
import itertools
import math
import statistics
from collections.abc import Mapping, Sequence
from datetime import UTC

# A stated hint beyond a year is a typo or a CDN default for static files, not a polling
# request; it is ignored rather than obeyed.
MAX_SENSIBLE_HINT_S = 366 * 24 * 3600.0

# The syndication module's periods (http://purl.org/rss/1.0/modules/syndication/).
SYNDICATION_PERIOD_S: Mapping[str, float] = {
    "hourly": 3600.0,
    "daily": 24 * 3600.0,
    "weekly": 7 * 24 * 3600.0,
    "monthly": 30 * 24 * 3600.0,
    "yearly": 365 * 24 * 3600.0,
}

# How many of the newest item dates describe a feed's current rhythm: enough for a stable
# median, few enough that a feed which changed pace last week is judged by its new pace.
RECENT_ITEMS = 10
MIN_ITEMS_FOR_RHYTHM = 3
# Publishers' clocks run a little fast; an item dated a few minutes ahead is still real.
CLOCK_SKEW_S = 300.0


def _sensible(seconds: float | None) -> float | None:
    """The hint if it is a positive, finite, believable number of seconds, else None."""
    if seconds is None or not math.isfinite(seconds) or seconds <= 0:
        return None
    return seconds if seconds <= MAX_SENSIBLE_HINT_S else None


def _number(text: object) -> float | None:
    if text is None:
        return None
    try:
        return float(str(text).strip())
    except ValueError:
        return None


def combine_hints(*hints: float | None) -> float | None:
    """The largest sensible hint: each one is a publisher asking us to wait at least that
    long, so honouring all of them means honouring the longest."""
    sensible = [h for h in map(_sensible, hints) if h is not None]
    return max(sensible) if sensible else None


def syndication_hint_s(
    ttl: str | None, update_period: str | None, update_frequency: str | None
) -> float | None:
    """Seconds from RSS ``<ttl>`` (minutes) and ``sy:updatePeriod``/``sy:updateFrequency``
    (so many updates per period). As the module specifies, a missing period means daily and
    a missing frequency means once; an unknown period or a non-positive count is ignored."""
    ttl_minutes = _number(ttl)
    ttl_s = ttl_minutes * 60 if ttl_minutes is not None else None

    syndication_s: float | None = None
    period = (update_period or "").strip().lower()
    if period or update_frequency:
        period_s = SYNDICATION_PERIOD_S.get(period or "daily")
        frequency = _number(update_frequency) if update_frequency else 1.0
        if period_s is not None and frequency is not None and frequency > 0:
            syndication_s = period_s / frequency
    return combine_hints(ttl_s, syndication_s)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by case-insensitive name: FetchResult lowercases, other callers may not."""
    if name in headers:
        return headers[name]
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def _cache_directives(value: str) -> dict[str, str]:
    directives: dict[str, str] = {}
    for part in value.split(","):
        name, _, argument = part.strip().partition("=")
        if name:
            directives[name.strip().lower()] = argument.strip().strip('"')
    return directives


def http_cache_hint_s(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds the response stays fresh by its HTTP headers, or None.

    ``max-age`` (less any ``Age`` the response already spent in a cache) takes precedence
    over ``Expires``, as RFC 9111 §5.3 requires. ``no-cache`` or ``no-store`` mean the
    publisher states no freshness at all, so there is no hint. An ``Expires`` in the past
    (``Expires: 0`` is common) is no hint either.
    """
    directives = _cache_directives(_header(headers, "cache-control") or "")
    if "no-cache" in directives or "no-store" in directives:
        return None
    if "max-age" in directives:
        max_age = _number(directives["max-age"])
        if max_age is None:
            return None
        age = _number(_header(headers, "age")) or 0.0
        return _sensible(max_age - max(age, 0.0))
    expires = _header(headers, "expires")
    if not expires:
        return None
    try:
        when = email.utils.parsedate_to_datetime(expires.strip())
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return _sensible(when.timestamp() - now)


def adaptive_interval_s(
    published_times: Sequence[float],
    now: float,
    default_s: float,
    min_s: float,
    max_s: float,
) -> float:
    """Poll about twice per typical gap between the feed's recent items, within bounds.

    The typical gap is the median of the gaps between the newest ``RECENT_ITEMS`` distinct
    dates: a median, because one quiet weekend or one burst must not swing the interval.
    Half of it, so a new item waits on average a quarter of a gap to be seen. Dates in the
    future (beyond clock skew), before 1970 or not finite are dropped, and equal dates count
    once, so a feed that publishes ten items in one batch is not mistaken for a busy one.
    With fewer than ``MIN_ITEMS_FOR_RHYTHM`` usable dates there is no rhythm to read, and
    ``default_s`` is returned as given.
    """
    usable = sorted(
        {t for t in published_times if math.isfinite(t) and 0 < t <= now + CLOCK_SKEW_S},
        reverse=True,
    )[:RECENT_ITEMS]
    if len(usable) < MIN_ITEMS_FOR_RHYTHM:
        return default_s
    gaps = [newer - older for newer, older in itertools.pairwise(usable)]
    return max(min_s, min(max_s, statistics.median(gaps) / 2))
