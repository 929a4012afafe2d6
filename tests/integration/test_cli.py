"""The command line: bad configuration stops at start with the problem named; tail; demo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from core.models import Article, TagResult
from core.settings import Settings
from tests.conftest import ROOT, free_port
from tests.integration.test_pipeline import EXPECTED
from workers.events import build_event
from workers.stream import Emitter

# The demo pages about US–China trade (service/demo_site/expected.json).
RELEVANT = sum(1 for page in EXPECTED.values() if page["us_china_trade"])


def tradewire(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT, timeout: float = 60,
              stdin: str | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
    base = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWIRE_")}
    return subprocess.run(
        [sys.executable, "-m", "service", *args], env=base | (env or {}), cwd=cwd,
        capture_output=True, text=True, timeout=timeout, input=stdin, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("env", "files", "message"),
    [
        ({"TRADEWIRE_WORKRES": "3"}, {}, "unknown environment variable TRADEWIRE_WORKRES"),
        ({"TRADEWIRE_REDIS_URL": "redis://127.0.0.1:{closed}/0"}, {}, "is not reachable"),
        ({"TRADEWIRE_REDIS_URL": "mysql://x"}, {}, "must start with redis://"),
        (
            {},
            {"feeds.yaml": "feeds:\n  - url: htp://typo.example/rss\n"},
            "'url' must be an http(s) URL",
        ),
        (
            {},
            {"feeds.yaml": "feeds:\n  - url: https://ok.example/rss\n    intervall_s: 5\n"},
            "unknown key(s) ['intervall_s']",
        ),
        ({}, {"feeds.yaml": "feeds: [\n"}, "is not valid YAML"),
        ({}, {"settings.yaml": "workers: 2\nworker: 3\n"}, "unknown setting(s) worker"),
    ],
)
def test_bad_configuration_exits_2_naming_the_problem(
    tmp_path: Path, env: dict[str, str], files: dict[str, str], message: str
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    full = {
        "TRADEWIRE_FEEDS_FILE": str(tmp_path / "feeds.yaml")
        if "feeds.yaml" in files
        else str(ROOT / "config" / "feeds.yaml"),
        "TRADEWIRE_CONFIG": str(tmp_path / "settings.yaml")
        if "settings.yaml" in files
        else str(ROOT / "config" / "settings.yaml"),
        "TRADEWIRE_TAXONOMY_FILE": str(ROOT / "config" / "taxonomy.yaml"),
        "TRADEWIRE_CORPUS_DIR": str(tmp_path / "corpus"),
        "TRADEWIRE_REDIS_EMBEDDED_DIR": str(tmp_path / "redis"),
        "TRADEWIRE_HEALTH_PORT": str(free_port()),
    }
    full |= {k: v.replace("{closed}", str(free_port())) for k, v in env.items()}
    done = tradewire("run", env=full, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr


def test_unwritable_corpus_dir_stops_the_start(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    done = tradewire("worker", env={"TRADEWIRE_CORPUS_DIR": str(blocker / "corpus"),
                                    "TRADEWIRE_REDIS_URL": "redis://127.0.0.1:1/0"}, cwd=ROOT)  # fmt: skip
    assert done.returncode == 2
    assert "corpus directory" in done.stderr and "not writable" in done.stderr


def test_poll_without_redis_url_is_refused(tmp_path: Path) -> None:
    """Only run and demo start a private Redis; a lone poller must share a real one."""
    done = tradewire("poll", cwd=ROOT)
    assert done.returncode == 2
    assert "TRADEWIRE_REDIS_URL is required" in done.stderr


def test_password_never_reaches_output(tmp_path: Path) -> None:
    done = tradewire(
        "poll", env={"TRADEWIRE_REDIS_URL": f"redis://:hunter2-secret@127.0.0.1:{free_port()}/0"}
    )
    assert done.returncode == 2
    assert "hunter2-secret" not in done.stderr + done.stdout
    assert "***" in done.stderr


def _article(article_id: str) -> Article:
    return Article(
        article_id=article_id, url=f"https://x.example/{article_id}", canonical_url=f"https://x.example/{article_id}",
        feed_url="https://x.example/rss", feed_title="X", title="T", text="T\n\nBody.", authors=(),
        published_at=None, fetched_at="2025-11-01T00:00:00Z", discovered_at="2025-11-01T00:00:00Z",
        language="en", site_name=None,
    )  # fmt: skip


def test_tail_prints_events_and_acknowledges(
    settings: Settings, text_redis: redis.Redis, redis_url: str
) -> None:
    from datetime import UTC, datetime

    emitter = Emitter(text_redis, settings)
    tags = TagResult(True, 0.9, (), (), (), "t")
    for i in range(3):
        emitter.emit(build_event(_article(f"{i:016x}"), tags, now=datetime.now(UTC)))
    done = tradewire(
        "tail",
        "--group",
        "g1",
        "--from-start",
        "--count",
        "3",
        env={"TRADEWIRE_REDIS_URL": redis_url},
    )
    assert done.returncode == 0, done.stderr
    ids = [json.loads(line)["article_id"] for line in done.stdout.splitlines()]
    assert ids == [f"{i:016x}" for i in range(3)]
    pending = text_redis.xpending(settings.stream_name, "g1")
    assert pending["pending"] == 0


def test_demo_runs_offline_and_shows_events() -> None:
    done = tradewire("demo", timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "10 new articles queued" in done.stdout
    assert f"{RELEVANT} events on stream tradewire:events" in done.stdout
    assert "10 cleaned articles" in done.stdout


def test_feeds_import_and_discover(tmp_path: Path) -> None:
    """OPML import adds new feeds and keeps the file's comments; discover finds a site's feed."""
    from pytest_httpserver import HTTPServer

    feeds = tmp_path / "feeds.yaml"
    feeds.write_text("# our list\n# keep this\nfeeds:\n  - url: https://a.example/rss\n")
    opml = tmp_path / "subs.opml"
    opml.write_text(
        "<opml version='2.0'><body><outline text='News'>"
        "<outline type='rss' text='A' xmlUrl='https://a.example/rss'/>"
        "<outline type='rss' text='B' xmlUrl='https://b.example/feed.xml'/>"
        "</outline></body></opml>"
    )
    env = {"TRADEWIRE_FEEDS_FILE": str(feeds)}
    done = tradewire("feeds", "import", str(opml), env=env)
    assert done.returncode == 0, done.stderr
    assert "1 feed(s) added" in done.stdout
    text = feeds.read_text()
    assert text.startswith("# our list\n# keep this\n") and "https://b.example/feed.xml" in text

    with HTTPServer() as server:
        server.expect_request("/").respond_with_data(
            "<html><head><link rel='alternate' type='application/rss+xml' href='/news/rss'></head></html>",
            content_type="text/html",
        )
        done = tradewire("feeds", "discover", server.url_for("/"), "--add",
                         env=env | {"TRADEWIRE_ALLOW_PRIVATE_HOSTS": "1"})  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == server.url_for("/news/rss")
    assert server.url_for("/news/rss") in feeds.read_text()


def test_failed_list_says_when_nothing_failed(redis_url: str) -> None:
    done = tradewire("failed", "list", env={"TRADEWIRE_REDIS_URL": redis_url})
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # stdout stays JSON lines for scripts
    assert "no failed jobs" in done.stderr


def test_tag_names_what_is_wrong_with_a_line() -> None:
    lines = [
        '{"id": "a", "title": "T", "text": "US tariffs on Chinese steel"}',
        "",
        '{"id": "b", "title": "no text here"}',
        '["text"]',
        "not json",
    ]
    done = tradewire("tag", stdin="\n".join(lines) + "\n")
    assert done.returncode == 1
    assert [json.loads(line)["id"] for line in done.stdout.splitlines()] == ["a"]
    errors = done.stderr.splitlines()
    assert errors[0] == 'tradewire tag: line 3: missing field "text"'
    assert errors[1].startswith("tradewire tag: line 4: expected a JSON object")
    assert errors[2].startswith("tradewire tag: line 5: not valid JSON")
    assert "KeyError" not in done.stderr


def test_operator_commands_find_the_embedded_redis_of_a_run(tmp_path: Path) -> None:
    """`tradewire run` without TRADEWIRE_REDIS_URL says how to reach its Redis, and
    `status` & co. started in the same directory find it by themselves."""
    from tests.processes import run_env, start_run, wait_until

    feeds = tmp_path / "feeds.yaml"
    feeds.write_text("feeds: []\n")
    env = run_env(tmp_path, feeds, workers="1")
    del env["TRADEWIRE_REDIS_EMBEDDED_DIR"]  # the default, var/redis under the directory
    log = tmp_path / "run.log"
    proc = start_run(env, tmp_path, log)
    url_file = tmp_path / "var" / "redis" / "redis.url"
    try:
        assert wait_until(url_file.exists, 30), log.read_text()
        done = tradewire("status", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert "extract" in done.stdout and "tag" in done.stdout
        done = tradewire("failed", "list", cwd=tmp_path)
        assert done.returncode == 0 and "no failed jobs" in done.stderr
        done = tradewire("feeds", "status", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=45)
    socket = tmp_path / "var" / "redis" / "redis.sock"
    exports = [
        line for line in log.read_text().splitlines() if "export TRADEWIRE_REDIS_URL" in line
    ]
    assert exports == [f"  export TRADEWIRE_REDIS_URL=unix://{socket}"]
    assert not url_file.exists()  # removed when the run stopped

    done = tradewire("status", cwd=tmp_path)
    assert done.returncode == 2
    assert "no Redis found" in done.stderr and str(url_file) in done.stderr


def test_a_stale_embedded_redis_file_is_ignored_with_a_message(tmp_path: Path) -> None:
    url_file = tmp_path / "var" / "redis" / "redis.url"
    url_file.parent.mkdir(parents=True)
    url_file.write_text(f"unix://{tmp_path}/var/redis/redis.sock?db=0\n")
    done = tradewire("tail", "--count", "1", cwd=tmp_path)
    assert done.returncode == 2
    assert "no Redis found" in done.stderr and "does not answer" in done.stderr
    assert "has stopped" in done.stderr
