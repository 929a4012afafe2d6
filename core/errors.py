"""The exception tree. Every error is picklable (RQ stores failures) and says what failed.

TradewireError
├── ConfigError            bad settings, feed list or taxonomy: exit non-zero at start
├── FetchError             one HTTP fetch went wrong (carries the URL)
│   ├── TransientFetchError   retry later: timeouts, resets, 429, 5xx
│   └── PermanentFetchError   do not retry: 4xx, refused address, too large, bad scheme
└── RefusedArticleError    the page is not an article (carries a short reason label)
"""

from __future__ import annotations


class TradewireError(Exception):
    """Base of every error this service raises on purpose."""


class ConfigError(TradewireError):
    """Settings, the feed list or the taxonomy are invalid; the message names the problem."""


class FetchError(TradewireError):
    """A fetch failed. ``kind`` is a short fixed label, safe to use in metrics."""

    def __init__(
        self, url: str, kind: str, detail: str = "", retry_after_s: float | None = None
    ) -> None:
        super().__init__(url, kind, detail, retry_after_s)
        self.url = url
        self.kind = kind
        self.detail = detail
        self.retry_after_s = retry_after_s

    def __str__(self) -> str:
        suffix = f": {self.detail}" if self.detail else ""
        return f"{self.kind} fetching {self.url}{suffix}"


class TransientFetchError(FetchError):
    """Worth retrying later (timeouts, connection resets, 429, 5xx)."""


class PermanentFetchError(FetchError):
    """Retrying will not help (404, refused address, body too large, not HTML)."""


class RefusedArticleError(TradewireError):
    """The page is not an article we keep; ``reason`` is a fixed label for logs and metrics."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}" if self.detail else self.reason
