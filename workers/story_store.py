"""Where stories live: ``MemoryStories`` for ``tradewire cluster`` and tests, the same
protocol as the Redis store the service uses (``workers.story_redis``)."""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from core.errors import ConfigError
from core.yamlfile import find_config_file, read_mapping
from workers.stories import (
    Model,
    Profile,
    posting_minute,
    posting_range,
    rank_candidates,
)

# Document frequencies are counted per week and summed over the last DF_WEEKS: a rolling
# table that follows the news (last month's rare word is this month's common one).
DF_WEEKS = 4
POSTING_LIMIT = 25  # most recently published ids kept per index key: bounds each lookup


MODEL_FILE = "stories.yaml"


def week_of(day: float) -> int:
    return int(day // 7)


def day_of(when: str) -> float:
    """Days since the epoch of an RFC 3339 time or a bare date (taken as UTC)."""
    parsed = datetime.fromisoformat(when.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp() / 86400.0


def load_model(path: Path | None = None) -> Model:
    """The fitted model: ``path``, else config/stories.yaml, else the packaged copy."""
    found = path or find_config_file(MODEL_FILE)
    if found is None:
        raise ConfigError(f"no {MODEL_FILE} in config/ or the packaged defaults")
    try:
        return Model.from_mapping(read_mapping(found, "stories model"))
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"stories model {found}: {exc}") from exc


class MemoryStories:
    """Everything in dicts; nothing expires (a ``tradewire cluster`` run is short). A posting
    list is what the Redis store's sorted set holds: (minute published, article id) pairs in
    ascending order, the ``posting_limit`` most recently published kept."""

    def __init__(self, posting_limit: int = POSTING_LIMIT) -> None:
        self.df: dict[int, Counter[str]] = {}
        self.docs: Counter[int] = Counter()
        self.postings: dict[str, list[tuple[int, str]]] = {}
        self.stored: dict[str, tuple[Profile, str]] = {}
        self.posting_limit = posting_limit

    def document_frequencies(self, terms: Sequence[str], day: float) -> tuple[dict[str, int], int]:
        now = week_of(day)
        weeks = [self.df[w] for w in range(now, now - DF_WEEKS, -1) if w in self.df]
        df = {t: sum(week.get(t, 0) for week in weeks) for t in terms}
        return df, sum(self.docs.get(week_of(day) - i, 0) for i in range(DF_WEEKS))

    def candidates(
        self, index_keys: Sequence[str], me: str, limit: int, window: tuple[float, float]
    ) -> list[str]:
        """Ranked as the Redis store ranks: only ids posted within the window's minutes,
        each list read most recently published first (ties: the larger id first)."""
        low, high = posting_range(*window)
        hits = [[a for m, a in reversed(self.postings.get(k, ())) if low <= m <= high]
                for k in index_keys]  # fmt: skip
        return rank_candidates(hits, me, limit)

    def candidates_with_profiles(
        self, index_keys: Sequence[str], me: str, limit: int, window: tuple[float, float]
    ) -> list[tuple[Profile, str]]:
        day, days = window
        found = self.profiles(self.candidates(index_keys, me, limit, window))
        return [(p, s) for p, s in found if abs(day - p.day) <= days]

    def lookup(
        self, index_keys: Sequence[str], me: str, limit: int, window: tuple[float, float]
    ) -> list[tuple[Profile, str]]:
        """Profiles are at hand here: nothing to parse."""
        return self.candidates_with_profiles(index_keys, me, limit, window)

    def profiles(self, article_ids: Sequence[str]) -> list[tuple[Profile, str]]:
        return [self.stored[a] for a in article_ids if a in self.stored]

    def add(
        self, me: Profile, story_id: str, index_keys: Sequence[str], terms: Sequence[str]
    ) -> None:
        week = week_of(me.day)
        if terms:
            self.df.setdefault(week, Counter()).update(terms)
            self.docs[week] += 1
        entry = (posting_minute(me.day), me.article_id)
        again = me.article_id in self.stored  # only a stored article can be in a posting
        for key in index_keys:
            posting = self.postings.setdefault(key, [])
            if again:
                posting[:] = [e for e in posting if e[1] != me.article_id]  # a set, as in Redis
            bisect.insort(posting, entry)
            del posting[: max(0, len(posting) - self.posting_limit)]
        self.stored[me.article_id] = (me, story_id)

    def story_of(self, article_id: str) -> str | None:
        found = self.stored.get(article_id)
        return found[1] if found else None
