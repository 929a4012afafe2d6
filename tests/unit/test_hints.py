"""Polling hints: what publishers state (ttl, sy:*, HTTP freshness) and how feeds behave."""

from __future__ import annotations

import email.utils
import io

import feedparser
import pytest

from service.feeds import parse_feed
from service.hints import (
    adaptive_interval_s,
    combine_hints,
    http_cache_hint_s,
    syndication_hint_s,
)

NOW = 1_762_000_000.0  # 2025-11-01
MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0


def rss(channel_extra: str) -> bytes:
    return f"""<?xml version="1.0"?>
<rss version="2.0" xmlns:sy="http://purl.org/rss/1.0/modules/syndication/">
<channel><title>Wire</title><link>https://wire.example/</link>{channel_extra}
<item><title>a</title><link>https://wire.example/a</link></item>
</channel></rss>""".encode()


def parsed_channel(channel_extra: str) -> feedparser.FeedParserDict:
    return feedparser.parse(io.BytesIO(rss(channel_extra))).feed


def feed_hint_s(channel_extra: str, headers: dict[str, str], now: float) -> float | None:
    """The hint the poller takes from a feed: parse_feed's, combined with HTTP freshness."""
    parsed = parse_feed(rss(channel_extra), {}, "https://wire.example/feed", max_items=100)
    return combine_hints(parsed.hint_s, http_cache_hint_s(headers, now))


def test_feedparser_field_names_for_ttl_and_syndication() -> None:
    """The names parse_feed reads are the ones feedparser really produces."""
    channel = parsed_channel(
        "<ttl>30</ttl><sy:updatePeriod>hourly</sy:updatePeriod>"
        "<sy:updateFrequency>2</sy:updateFrequency>"
    )
    assert channel.get("ttl") == "30"
    assert channel.get("sy_updateperiod") == "hourly"
    assert channel.get("sy_updatefrequency") == "2"


def test_ttl_is_minutes() -> None:
    assert feed_hint_s("<ttl>45</ttl>", {}, NOW) == 45 * MINUTE


def test_syndication_period_divided_by_frequency() -> None:
    channel = "<sy:updatePeriod>daily</sy:updatePeriod><sy:updateFrequency>4</sy:updateFrequency>"
    assert feed_hint_s(channel, {}, NOW) == 6 * HOUR


def test_syndication_defaults_and_nonsense() -> None:
    assert syndication_hint_s(None, "weekly", None) == 7 * DAY  # frequency defaults to 1
    assert syndication_hint_s(None, None, "2") == 12 * HOUR  # period defaults to daily
    assert syndication_hint_s(None, "fortnightly", "1") is None
    assert syndication_hint_s("soon", "hourly", "0") is None
    assert syndication_hint_s(None, None, None) is None
    assert syndication_hint_s("0", None, None) is None


def test_largest_of_ttl_and_syndication_wins() -> None:
    channel = (
        "<ttl>90</ttl><sy:updatePeriod>hourly</sy:updatePeriod>"
        "<sy:updateFrequency>1</sy:updateFrequency>"
    )
    assert feed_hint_s(channel, {}, NOW) == 90 * MINUTE


def test_no_hints_at_all() -> None:
    assert feed_hint_s("", {}, NOW) is None


def test_cache_control_max_age() -> None:
    assert http_cache_hint_s({"cache-control": "public, max-age=600"}, NOW) == 600
    assert http_cache_hint_s({"Cache-Control": "max-age=600", "Age": "100"}, NOW) == 500


@pytest.mark.parametrize("value", ["no-cache, max-age=600", "no-store", "private, no-cache"])
def test_no_cache_or_no_store_gives_no_hint(value: str) -> None:
    expires = email.utils.formatdate(NOW + HOUR, usegmt=True)
    assert http_cache_hint_s({"cache-control": value, "expires": expires}, NOW) is None


def test_expires_relative_to_now() -> None:
    future = email.utils.formatdate(NOW + 15 * MINUTE, usegmt=True)
    past = email.utils.formatdate(NOW - HOUR, usegmt=True)
    assert http_cache_hint_s({"expires": future}, NOW) == pytest.approx(15 * MINUTE)
    assert http_cache_hint_s({"expires": past}, NOW) is None
    assert http_cache_hint_s({"expires": "0"}, NOW) is None


def test_max_age_overrides_expires() -> None:
    """RFC 9111 §5.3: with max-age present, Expires is ignored, even when it is longer."""
    later = email.utils.formatdate(NOW + DAY, usegmt=True)
    assert http_cache_hint_s({"cache-control": "max-age=120", "expires": later}, NOW) == 120


def test_feed_and_http_hints_combine_to_the_largest() -> None:
    headers = {"cache-control": "max-age=7200"}
    assert feed_hint_s("<ttl>30</ttl>", headers, NOW) == 2 * HOUR


def test_combine_hints() -> None:
    assert combine_hints(None, 60.0, 300.0) == 300.0
    assert combine_hints(None, None) is None
    assert combine_hints() is None
    assert combine_hints(-5.0, 0.0, float("nan"), float("inf")) is None
    assert combine_hints(60.0, 10 * 365 * DAY) == 60.0  # a decade is not a polling hint


def times_every(gap_s: float, count: int) -> list[float]:
    return [NOW - i * gap_s for i in range(count)]


def test_busy_feed_polls_often() -> None:
    interval = adaptive_interval_s(times_every(10 * MINUTE, 20), NOW, 300, 60, DAY)
    assert interval == 5 * MINUTE


def test_quiet_feed_polls_rarely() -> None:
    interval = adaptive_interval_s(times_every(DAY, 8), NOW, 300, 60, DAY)
    assert interval == 12 * HOUR


def test_interval_is_clamped() -> None:
    assert adaptive_interval_s(times_every(10.0, 10), NOW, 300, 60, DAY) == 60
    assert adaptive_interval_s(times_every(30 * DAY, 10), NOW, 300, 60, DAY) == DAY


def test_too_few_items_gives_the_default() -> None:
    assert adaptive_interval_s([], NOW, 300, 60, DAY) == 300
    assert adaptive_interval_s(times_every(MINUTE, 2), NOW, 300, 60, DAY) == 300
    # a batch of ten items with one date is one publication, not ten
    assert adaptive_interval_s([NOW - HOUR] * 10, NOW, 300, 60, DAY) == 300


def test_future_and_absurd_dates_are_ignored() -> None:
    hourly = times_every(HOUR, 6)
    noisy = [*hourly, NOW + 30 * DAY, 0.0, -5.0, float("nan"), float("inf")]
    assert adaptive_interval_s(noisy, NOW, 300, 60, DAY) == 30 * MINUTE


def test_only_recent_items_set_the_pace() -> None:
    """A feed that went from daily to every 20 minutes is judged by its last ten items."""
    recent = times_every(20 * MINUTE, 10)
    older = [recent[-1] - (i + 1) * DAY for i in range(30)]
    assert adaptive_interval_s(recent + older, NOW, 300, 60, DAY) == 10 * MINUTE


def test_one_outlier_gap_does_not_swing_the_median() -> None:
    times = [*times_every(HOUR, 9), NOW - 8 * HOUR - 3 * DAY]
    assert adaptive_interval_s(times, NOW, 300, 60, DAY) == 30 * MINUTE
