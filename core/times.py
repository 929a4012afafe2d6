"""The one time format of events and logs."""

from __future__ import annotations

from datetime import UTC, datetime


def rfc3339(moment: datetime) -> str:
    """UTC, second precision, with a Z: the one time format of events and logs."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
