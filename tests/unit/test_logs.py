"""Every line on stderr is structured: standard-library records (RQ, httpx) included."""

from __future__ import annotations

import io
import json
import logging

import structlog

from core.logs import configure_logging
from tests.unit.test_redaction import bare_root_logger


def test_stdlib_records_are_json_lines_with_the_same_processors() -> None:
    out = io.StringIO()
    with bare_root_logger():
        configure_logging("INFO", "json", stream=out)
        logging.getLogger("rq.worker").warning("Cold shut down")
        try:
            raise RuntimeError("cannot reach redis://:hunter2@10.0.0.1:6379/0")
        except RuntimeError:
            logging.getLogger("rq.worker").exception("job failed")
        structlog.get_logger("t").info("ours", feed="f")
    lines = out.getvalue().splitlines()
    assert len(lines) == 3, lines
    records = [json.loads(line) for line in lines]  # one JSON object per line
    warning, failure, ours = records
    assert warning["event"] == "Cold shut down"
    assert warning["level"] == "warning" and warning["logger"] == "rq.worker"
    assert "timestamp" in warning
    assert failure["level"] == "error" and failure["logger"] == "rq.worker"
    assert "Traceback" in failure["exception"] and "RuntimeError" in failure["exception"]
    assert "hunter2" not in lines[1] and "***" in failure["exception"]
    assert ours["event"] == "ours" and ours["feed"] == "f"
