"""Structured logging: the only ``structlog.configure`` call in the project.

JSON lines when stderr is not a terminal (containers, CI), colours on a terminal. Context
(feed, url, article_id, job_id) is bound through contextvars by the code doing the work.
A last processor masks credentials, so a Redis password never reaches a log line even when
it hides inside an exception message.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<auth>[^/@\s]+)@", re.I)
_SECRET_KEYS = ("password", "passwd", "secret", "token")


def mask_secrets(text: str) -> str:
    """Replace the userinfo of every URL in ``text`` with ``***``."""
    return _URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}***@", text)


def _redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in list(event_dict.items()):
        if any(secret in key.lower() for secret in _SECRET_KEYS):
            event_dict[key] = "***"
        elif isinstance(value, str) and "@" in value:
            event_dict[key] = mask_secrets(value)
    return event_dict


def configure_logging(level: str = "INFO", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Configure structlog once per process; ``fmt`` is auto, json or console."""
    out = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any
    if use_json:
        tail: list[Any] = [
            structlog.processors.format_exc_info,
            _redact,
            structlog.processors.JSONRenderer(),
        ]
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=out.isatty())
        tail = [structlog.processors.format_exc_info, _redact, renderer]
    structlog.configure(
        processors=[*shared, *tail],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=True,
    )
    # RQ and httpx log through the standard library: keep them quiet and on the same stream.
    logging.basicConfig(
        level=logging.WARNING, stream=out, format="%(name)s %(levelname)s %(message)s"
    )
    logging.getLogger("rq.worker").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("trafilatura").setLevel(logging.ERROR)
