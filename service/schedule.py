"""When to poll a feed next (pure): intervals, hints, capped backoff with jitter.

Nothing here reads the clock or Redis; the poller passes ``now`` and a random source in.
"""

from __future__ import annotations

import dataclasses
import random

from core.settings import Settings


@dataclasses.dataclass(frozen=True)
class SchedulePolicy:
    default_interval_s: float
    min_interval_s: float
    max_interval_s: float
    backoff_base_s: float
    backoff_max_s: float
    jitter: float = 0.1

    @classmethod
    def from_settings(cls, settings: Settings) -> SchedulePolicy:
        return cls(
            default_interval_s=settings.poll_interval_s,
            min_interval_s=settings.poll_min_interval_s,
            max_interval_s=settings.poll_max_interval_s,
            backoff_base_s=settings.backoff_base_s,
            backoff_max_s=settings.backoff_max_s,
        )


def clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def success_delay(
    policy: SchedulePolicy,
    interval_s: float | None,
    hint_s: float | None,
    rng: random.Random,
    slow_factor: float = 1.0,
) -> float:
    """Seconds until the next poll after a 200 or 304: the feed's interval (configured, or
    learnt from its rhythm), stretched to the publisher's own hint (``<ttl>``, ``sy:``,
    Cache-Control, Expires), times ``slow_factor`` (a live WebSub subscription: polling is
    then only a safety net), clamped to the configured bounds, with +-jitter so polls
    spread out."""
    base = interval_s or policy.default_interval_s
    if hint_s:
        base = max(base, hint_s)
    base *= slow_factor
    base = clamp(base, policy.min_interval_s, policy.max_interval_s)
    return base * rng.uniform(1 - policy.jitter, 1 + policy.jitter)


def error_delay(
    policy: SchedulePolicy, consecutive_errors: int, retry_after_s: float | None, rng: random.Random
) -> float:
    """Capped exponential backoff with full jitter in its upper half; never gives up.
    A Retry-After longer than the backoff wins, within the cap."""
    exponent = min(max(consecutive_errors, 1) - 1, 30)
    backoff = min(policy.backoff_max_s, policy.backoff_base_s * 2**exponent)
    delay = backoff * rng.uniform(0.5, 1.0)
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, policy.backoff_max_s))
    return float(delay)
