"""WebSub's pure parts: the signature check, the hub and self links a feed declares, the
settings, and the slower polling of a feed whose subscription is live."""

from __future__ import annotations

import hmac
import random
import re

import pytest

from core.errors import ConfigError
from core.settings import Settings, load_settings
from service.feeds import parse_feed
from service.schedule import SchedulePolicy, success_delay
from service.websub import Subscription, _lease, signature_ok

BODY = b"<rss version='2.0'><channel><title>t</title></channel></rss>"
SECRET = "a" * 64


def sign(algorithm: str, secret: str = SECRET, body: bytes = BODY) -> str:
    return f"{algorithm}=" + hmac.new(secret.encode(), body, algorithm).hexdigest()


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "sha384", "sha512"])
def test_a_correct_signature_passes(algorithm: str) -> None:
    assert signature_ok(SECRET, BODY, sign(algorithm))
    assert signature_ok(SECRET, BODY, sign(algorithm).upper().replace(algorithm.upper(), algorithm))


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        sign("sha256", secret="b" * 64),  # another subscription's secret
        sign("sha256", body=BODY + b" "),  # the body changed on the way
        sign("md5"),  # not a WebSub algorithm
        "sha256=",
        "sha256",
        "sha256=" + "é" * 64,  # not hex, not even ASCII: refused, no exception
        sign("sha1").replace("sha1=", "sha256="),  # the digest of another algorithm
    ],
)
def test_anything_else_fails(header: str | None) -> None:
    assert not signature_ok(SECRET, BODY, header)


def test_the_comparison_is_constant_time() -> None:
    """hmac.compare_digest, never ==: the source says so (a timing test would be flaky)."""
    import inspect

    import service.websub as websub

    source = inspect.getsource(websub.signature_ok)
    assert "hmac.compare_digest" in source and "==" not in source


@pytest.mark.parametrize(
    ("document", "hub", "self_url"),
    [
        (
            b"<rss version='2.0' xmlns:atom='http://www.w3.org/2005/Atom'><channel><title>t"
            b"</title><atom:link rel='hub' href='https://hub.example/'/><atom:link rel='self'"
            b" href='/rss.xml'/><item><link>https://x.example/a</link></item></channel></rss>",
            "https://hub.example/",
            "https://x.example/rss.xml",
        ),
        (
            b"<feed xmlns='http://www.w3.org/2005/Atom'><title>t</title><link rel='hub' "
            b"href='https://hub.example/a'/><link rel='self' href='https://x.example/atom'/>"
            b"<entry><id>1</id><link href='https://x.example/a'/></entry></feed>",
            "https://hub.example/a",
            "https://x.example/atom",
        ),
        (
            b"<rss version='2.0' xmlns:atom='http://www.w3.org/2005/Atom'><channel><title>t"
            b"</title><atom:link rel='hub' href='javascript:alert(1)'/>"
            b"<item><link>https://x.example/a</link></item></channel></rss>",
            None,
            None,
        ),
        (
            b"<rss version='2.0'><channel><title>t</title>"
            b"<item><link>https://x.example/a</link></item></channel></rss>",
            None,
            None,
        ),
    ],
)
def test_the_hub_and_self_links_are_read(
    document: bytes, hub: str | None, self_url: str | None
) -> None:
    parsed = parse_feed(document, {}, "https://x.example/feed", 100)
    assert (parsed.hub, parsed.self_url) == (hub, self_url)
    assert len(parsed.items) == 1


def test_a_live_subscription_slows_polling_within_the_bounds() -> None:
    policy = SchedulePolicy.from_settings(Settings())
    normal = success_delay(policy, 300.0, None, random.Random(1))
    slowed = success_delay(policy, 300.0, None, random.Random(1), slow_factor=4.0)
    assert slowed == pytest.approx(4 * normal)
    capped = success_delay(policy, 80000.0, None, random.Random(1), slow_factor=4.0)
    assert capped <= policy.max_interval_s * (1 + policy.jitter)


def test_the_websub_settings_are_off_by_default_and_validated() -> None:
    assert Settings().websub_callback_url is None
    good = load_settings(
        {"TRADEWIRE_WEBSUB_CALLBACK_URL": "https://ingest.example.com/websub"}, config_file=None
    )
    assert good.websub_callback_url == "https://ingest.example.com/websub"
    for env, message in [
        ({"TRADEWIRE_WEBSUB_CALLBACK_URL": "ftp://x/websub"}, "http(s) URL with a host"),
        ({"TRADEWIRE_WEBSUB_CALLBACK_URL": "https://x/websub?k=1"}, "no query"),
        ({"TRADEWIRE_WEBSUB_CALLBACK_URL": "https://u:p@x/websub"}, "credentials"),
        ({"TRADEWIRE_WEBSUB_LEASE_S": "10"}, "websub_lease_s must be at least 60"),
        ({"TRADEWIRE_WEBSUB_POLL_FACTOR": "0.5"}, "websub_poll_factor must be at least 1"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(message)):
            load_settings(env, config_file=None)


def test_a_granted_lease_is_bounded() -> None:
    assert _lease("3600", 864000) == 3600
    assert _lease("", 864000) == 864000
    assert _lease("-5", 864000) == 864000
    assert _lease("99999999999", 864000) == 366 * 24 * 3600


def test_a_subscription_round_trips_and_a_broken_record_is_none() -> None:
    sub = Subscription("https://hub/", "https://x/feed", SECRET, "active", 60, 1.5)
    assert Subscription.from_redis(sub.to_redis()) == sub
    assert Subscription.from_redis({"hub": "h"}) is None
