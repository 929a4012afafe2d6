"""Every credential form redis-py accepts in a URL is masked wherever text leaves the process."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from core.logs import configure_logging
from core.redact import mask_secrets, redact_url
from core.settings import Settings
from service.health import HealthState

SECRET = "pa55-Wd.secret"
FORMS = [
    f"redis://user:{SECRET}@redis.internal:6379/0",
    f"redis://:{SECRET}@redis.internal:6379/0",
    f"redis://{SECRET}@redis.internal:6379/0",
    f"redis://redis.internal:6379/0?password={SECRET}",
    f"redis://redis.internal:6379/0?username={SECRET}&password={SECRET}",
    f"redis://redis.internal:6379/0?db=1&ssl_password={SECRET}",
    f"redis://redis.internal:6379/0?pass%77ord={SECRET}",
    f"rediss://user:{SECRET}@redis.internal:6380/0?ssl_keyfile=/etc/tls/key.pem",
    f"rediss://redis.internal:6380/0?ssl_certfile=/etc/tls/c.pem&password={SECRET}",
    f"unix://:{SECRET}@/run/redis/redis.sock?db=0",
    f"unix:///run/redis/redis.sock?db=0&password={SECRET}",
    f"redis://:p@ss{SECRET}@redis.internal:6379/0",  # an unencoded @ inside the password
]


@pytest.mark.parametrize("url", FORMS)
def test_redact_url_masks_every_form(url: str) -> None:
    redacted = redact_url(url)
    assert SECRET not in redacted and "ss" + SECRET not in redacted
    assert "***" in redacted
    assert "redis.internal" in redacted or "/run/redis/redis.sock" in redacted


def test_redact_url_keeps_what_is_not_a_secret() -> None:
    url = "rediss://user:pw@h:6380/1?ssl_keyfile=/k.pem&ssl_cert_reqs=required&password=pw"
    assert redact_url(url) == (
        "rediss://user:***@h:6380/1?ssl_keyfile=/k.pem&ssl_cert_reqs=required&password=***"
    )
    assert redact_url("unix:///tmp/r.sock?db=0") == "unix:///tmp/r.sock?db=0"


@pytest.mark.parametrize("url", FORMS)
def test_mask_secrets_in_free_text(url: str) -> None:
    text = f"Redis at {url} is not reachable: boom ('{url}')"
    masked = mask_secrets(text)
    assert SECRET not in masked
    assert masked.startswith("Redis at ") and " is not reachable: boom ('" in masked


def test_settings_repr_and_redacted_mask_the_url() -> None:
    settings = Settings(redis_url=FORMS[3])
    assert SECRET not in repr(settings) and SECRET not in str(settings.redacted())


@contextlib.contextmanager
def bare_root_logger() -> Iterator[None]:
    """configure_logging installs its handler only on a bare root logger, as at process
    start; pytest's capture handlers are set aside meanwhile."""
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers.clear()
    try:
        yield
    finally:
        root.handlers[:] = saved


def test_logs_mask_every_form_in_any_value() -> None:
    out = io.StringIO()
    with bare_root_logger():
        configure_logging("INFO", "json", stream=out)
        log = structlog.get_logger("t")
        for url in FORMS:
            log.info(f"connecting to {url}", url=url, settings={"redis_url": url}, urls=[url])
        try:
            raise RuntimeError(f"cannot reach {FORMS[4]}")
        except RuntimeError:
            log.exception("failed")
        logging.getLogger("rq.worker").error("Could not connect to Redis instance: %s", FORMS[10])
    lines = out.getvalue().splitlines()
    assert len(lines) == len(FORMS) + 2
    assert all(SECRET not in line for line in lines), [ln for ln in lines if SECRET in ln]
    assert json.loads(lines[0])["settings"]["redis_url"].startswith("redis://user:***@")


def test_readyz_errors_mask_every_form() -> None:
    state = HealthState()
    for i, url in enumerate(FORMS):
        state.readiness[f"c{i}"] = lambda url=url: f"redis: cannot reach {url}"
    ok, checks = state.ready()
    assert not ok
    body = json.dumps(checks)
    assert SECRET not in body and body.count("***") >= len(FORMS)
