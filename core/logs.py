"""Structured logging: the only ``structlog.configure`` call in the project.

JSON lines when stderr is not a terminal (containers, CI), colours on a terminal. Context
(feed, url, article_id, job_id) is bound through contextvars by the code doing the work.
A last processor masks credentials (core.redact) in every value, nested ones included, so a
Redis password never reaches a log line even when it hides inside an exception message.
Standard-library records (RQ's "Cold shut down" and job tracebacks, httpx, trafilatura,
asyncio) go through the same processors by structlog's ``ProcessorFormatter``, so every line
on stderr is one JSON object (exception text inside it) and is masked the same way.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

from core.redact import MASK, mask_secrets

_SECRET_KEYS = ("password", "passwd", "secret", "token")


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return mask_secrets(value)
    if isinstance(value, dict):
        return {key: _masked_item(key, item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(item) for item in value]
    return value


def _masked_item(key: Any, value: Any) -> Any:
    if isinstance(key, str) and any(secret in key.lower() for secret in _SECRET_KEYS):
        return MASK
    return _masked(value)


def _redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in list(event_dict.items()):
        event_dict[key] = _masked_item(key, value)
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
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    tail: list[Any] = [structlog.processors.format_exc_info, _redact, renderer]
    structlog.configure(
        processors=[*shared, *tail],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=True,
    )
    # RQ, httpx, trafilatura and asyncio log through the standard library: their records
    # take the same processors (plus the logger's name) and land on the same stream.
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail],
        )
    )
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    logging.getLogger("rq.worker").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("trafilatura").setLevel(logging.ERROR)
