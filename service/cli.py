"""The ``tradewire`` command: the edge where settings are loaded and logging configured."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import json
import os
import shlex
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from core import keys
from core.errors import ConfigError, RefusedArticleError
from core.logs import configure_logging
from core.settings import Settings, settings_from_environment

log = structlog.get_logger("tradewire.cli")

EXIT_CONFIG = 2
EXIT_NOT_ARTICLE = 3


DESCRIPTION = """\
Streaming ingestion of news about US-China trade: poll RSS/Atom feeds, clean each new
article into plain text, tag it, and append one JSON event per relevant article to a
Redis stream that other teams read."""

EPILOG = """\
Run `tradewire COMMAND --help` for a command's options. Without TRADEWIRE_REDIS_URL,
`tradewire run` starts its own Redis under var/redis/ (setting redis_embedded_dir), and the
other commands started from the same directory find it. Settings: config/settings.yaml and
TRADEWIRE_<SETTING> environment variables."""


def _version() -> str:
    try:
        return importlib.metadata.version("tradewire")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout never installed
        return "unknown"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tradewire",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_service_commands(sub)
    _add_tool_commands(sub)
    _add_stream_commands(sub)
    _add_operator_commands(sub)
    _describe_from_help(sub)
    return parser


def _add_service_commands(sub: Any) -> None:
    run = sub.add_parser(
        "run",
        help="poller, workers and health server in one process tree",
        description="Run the poller, extract and tag workers and the health "
        "server until Ctrl-C or SIGTERM. Without TRADEWIRE_REDIS_URL it starts "
        "a private Redis under var/redis/ and prints the URL to reach it.",
    )
    run.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="extract worker processes (default: the workers setting)",
    )

    sub.add_parser(
        "poll",
        help="run the poller only (needs TRADEWIRE_REDIS_URL)",
        description="Poll the feed list and queue new articles, without workers; "
        "several pollers can share one Redis (TRADEWIRE_REDIS_URL).",
    )

    worker = sub.add_parser(
        "worker",
        help="run supervised workers (needs TRADEWIRE_REDIS_URL)",
        description="Run supervised extract and/or tag workers against the "
        "Redis named by TRADEWIRE_REDIS_URL.",
    )
    worker.add_argument(
        "--queue",
        choices=keys.QUEUES,
        action="append",
        help="queue to work; repeat for both (default: both)",
    )
    worker.add_argument(
        "--processes",
        type=int,
        default=None,
        metavar="N",
        help="processes per queue (default: the workers setting)",
    )

    # Started by the supervisor, not by users: no help= keeps it out of the command list.
    one = sub.add_parser("work-one", description="One worker process (the supervisor's).")
    one.add_argument("--queue", choices=keys.QUEUES, required=True, help="queue to work")
    one.add_argument("--burst", action="store_true", help="stop when the queue is empty")
    one.add_argument("--name", default=None, help="the RQ worker name (unique per process)")


def _add_tool_commands(sub: Any) -> None:
    extract = sub.add_parser(
        "extract",
        help="print a saved page's article in the seed format",
        description="Print the article of a saved HTML page as tradewire "
        "would store it; exit 3 if the page holds no article.",
    )
    extract.add_argument("page", type=Path, help="the saved HTML file")
    extract.add_argument(
        "--url",
        default="https://example.invalid/article",
        help="the address the page came from (resolves its relative links)",
    )

    sub.add_parser(
        "tag",
        help='JSON lines {"id","title","text"} on stdin → verdicts on stdout',
        description="Tag texts with the current taxonomy: one JSON object per line "
        'on stdin with "text" (and optional "id", "title"), one verdict per line '
        "on stdout; exit 1 if a line was rejected.",
    )


def _describe_from_help(sub: Any) -> None:
    """A command given only a one-line help shows that line as its description too."""
    for choice in sub._choices_actions:
        command = sub.choices[choice.dest]
        if command.description is None:
            command.description = choice.help[:1].upper() + choice.help[1:] + "."
        for action in command._actions:
            if isinstance(action, argparse._SubParsersAction):
                _describe_from_help(action)


def _add_stream_commands(sub: Any) -> None:
    tail = sub.add_parser(
        "tail",
        help="read the event stream through a consumer group",
        description="Print the stream's events (one JSON per line) through a "
        "consumer group, acknowledging each; survives Redis restarts.",
    )
    tail.add_argument(
        "--group",
        default="tradewire-tail",
        help="consumer group; a new name starts a new reader (default: %(default)s)",
    )
    tail.add_argument(
        "--consumer",
        default="tail-1",
        help="this reader's name within the group (default: %(default)s)",
    )
    tail.add_argument(
        "--from-start", action="store_true", help="a new group starts at the beginning"
    )
    tail.add_argument("--count", type=int, default=0, help="stop after N events (0: run forever)")
    tail.add_argument(
        "--claim-idle-ms", type=int, default=60_000,
        help="claim entries a dead consumer left unacknowledged this long",
    )  # fmt: skip
    tail.add_argument("--stream", default=None, help="default: the configured stream_name")

    replay = sub.add_parser("replay", help="re-emit stored articles to a stream of your choice")
    replay.add_argument("--since", required=True, type=_date, help="YYYY-MM-DD or RFC 3339")
    replay.add_argument(
        "--stream", required=True, help="target stream (e.g. tradewire:replay:team)"
    )

    sub.add_parser("retag", help="re-tag the corpus; emit events for changed verdicts")
    _add_story_commands(sub)


def _add_story_commands(sub: Any) -> None:
    stories = sub.add_parser("stories", help="top stories by distinct sources, with articles")
    stories.add_argument("--since", default="24h", help="active within (24h, 7d, 90m)")
    stories.add_argument("--limit", type=int, default=20, help="at most this many stories")
    sub.add_parser("cluster", help="story ids for JSON lines on stdin (offline, no Redis)",
                   description='Read {"id","title","text","published_at","source"} JSON '
                   'lines in time order; write {"id","story_id"} lines, with the service\'s '
                   "clustering code on a private in-memory store.")  # fmt: skip
    recluster = sub.add_parser(
        "recluster", help="rebuild story ids; story.updated where membership changed"
    )
    recluster.add_argument("--since", default="30d", help="stored articles fetched within")

    backfill = sub.add_parser(
        "backfill", help="queue what a sitemap source published since a date (resumable)"
    )
    backfill.add_argument("source", help="a sitemap (index) URL, or a feed-list entry's URL/title")
    backfill.add_argument("--since", required=True, type=_date, help="YYYY-MM-DD or RFC 3339")
    backfill.add_argument(
        "--archive", default=None,
        help="date-archive sitemaps too: a URL with strftime codes, e.g. https://x.com/sitemap/%%Y-%%m-%%d.xml",
    )  # fmt: skip


def _add_operator_commands(sub: Any) -> None:
    sub.add_parser("status", help="queues, workers, feeds in backoff, last events",
                   description="Show queues, workers, feeds in backoff and the last events. "
                   "This and the other commands that read Redis use TRADEWIRE_REDIS_URL, else "
                   "the Redis of a `tradewire run` started in this directory.")  # fmt: skip
    _add_watch_options(sub.choices["status"])
    failed = sub.add_parser("failed", help="inspect and requeue failed jobs")
    failed_sub = failed.add_subparsers(dest="failed_command", required=True, metavar="COMMAND")
    failed_sub.add_parser("list", help="failed jobs with their last error line")
    retry = failed_sub.add_parser("retry", help="requeue failed jobs")
    retry.add_argument("job_ids", nargs="*", metavar="JOB_ID", help="default: all failed jobs")

    demo = sub.add_parser(
        "demo", help="the whole pipeline offline against a bundled local news site"
    )
    demo.add_argument(
        "--keep", nargs="?", const="", default=None, metavar="DIR",
        help="keep the corpus and the Redis data (in DIR, default a new temporary folder) "
        "and say how to tail them",
    )  # fmt: skip

    feeds = sub.add_parser("feeds", help="feed list tools")
    feeds_sub = feeds.add_subparsers(dest="feeds_command", required=True, metavar="COMMAND")
    feeds_sub.add_parser("status", help="each feed's polling state")
    feeds_import = feeds_sub.add_parser("import", help="add the feeds of an OPML file to the list")
    feeds_import.add_argument("opml", type=Path, help="an OPML export of a feed reader")
    feeds_discover = feeds_sub.add_parser(
        "discover", help="find a site's feeds, and its (news) sitemaps from robots.txt"
    )
    feeds_discover.add_argument("site", help="the site's address, e.g. https://example.com/")
    feeds_discover.add_argument("--add", action="store_true", help="add them to the feed list")


def _add_watch_options(status: argparse.ArgumentParser) -> None:
    status.add_argument(
        "--watch",
        action="store_true",
        help="the dashboard's key figures, live (a table refreshed each second)",
    )
    status.add_argument(
        "--interval",
        type=float,
        default=1.0,
        metavar="S",
        help="with --watch: seconds between refreshes (default 1)",
    )
    status.add_argument(
        "--count",
        type=int,
        default=None,
        metavar="N",
        help="with --watch: stop after N refreshes (default: until Ctrl-C)",
    )
    status.add_argument(
        "--metrics-url",
        default=None,
        metavar="URL",
        help="with --watch: the /metrics to read polls, articles, events, "
        "latency and restarts from (default: this host's health port)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = settings_from_environment()
    except ConfigError as exc:
        print(f"tradewire: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(settings.log_level, settings.log_format)
    # A stop request while still starting up unwinds like Ctrl-C, so what was started (the
    # embedded Redis) is stopped too; the running service installs its own handlers.
    signal.signal(signal.SIGTERM, _stop_during_startup)
    metrics_dir: str | None = None
    if args.command in ("run", "poll", "worker"):
        # Every process of this command (children inherit the variable) writes its metrics
        # here, and /metrics sums them; it must be set before prometheus-client is imported.
        metrics_dir = tempfile.mkdtemp(prefix="tradewire-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        return _dispatch(args, settings, Path(metrics_dir) if metrics_dir else None)
    except ConfigError as exc:
        log.error("startup.failed", error=str(exc))
        print(f"tradewire: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130
    except _StopRequestedError:
        return 0
    finally:
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)


class _StopRequestedError(Exception):
    """SIGTERM arrived before the service was up."""


def _stop_during_startup(signum: int, frame: object) -> None:
    raise _StopRequestedError


def _dispatch(args: argparse.Namespace, settings: Settings, metrics_dir: Path | None) -> int:
    from service import app

    command = args.command
    if command in ("run", "poll", "worker"):
        return _serve(args, settings, metrics_dir)
    if command == "work-one":
        from workers.runner import run_worker

        app.validate_for_start(settings, feeds=False, workers=True)
        with app.redis_for(settings, embedded_allowed=False) as live:
            run_worker(live, args.queue, burst=args.burst, name=args.name)
        return 0
    if command == "extract":
        return _extract(args, settings)
    if command == "tag":
        return _tag(settings)
    if command == "tail":
        with app.redis_for(settings, embedded_allowed=False, discover=True) as live:
            return _tail(args, live)
    if command in ("replay", "retag"):
        with app.redis_for(settings, embedded_allowed=False, discover=True) as live:
            return _replay(args, live, retag=command == "retag")
    if command == "backfill":
        from service.backfill import BackfillRequest, backfill_command

        with app.redis_for(settings, embedded_allowed=False, discover=True) as live:
            return backfill_command(live, BackfillRequest(args.source, args.since, args.archive))
    if command in ("status", "failed"):
        with app.redis_for(settings, embedded_allowed=False, discover=True) as live:
            return _operate(args, live)
    if command in ("stories", "cluster", "recluster"):
        return _stories(args, settings)
    if command == "demo":
        return _demo(args, settings)
    if command == "feeds" and args.feeds_command == "status":
        with app.redis_for(settings, embedded_allowed=False, discover=True) as live:
            return _feeds_status(live)
    if command == "feeds":
        return _feeds_edit(args, settings)
    raise AssertionError(command)  # pragma: no cover - argparse restricts the choices


def _serve(args: argparse.Namespace, settings: Settings, metrics_dir: Path | None) -> int:
    from service import app

    if args.command == "run":
        embedded = settings.uses_embedded_redis
        settings = settings.with_overrides(workers=args.workers or settings.workers)
        app.validate_for_start(settings, feeds=True, workers=True)
        with app.redis_for(settings, embedded_allowed=True) as live:
            if embedded:
                _announce_embedded(str(live.redis_url))
            return app.serve(
                live, metrics_dir, poll=True, extract_workers=live.workers, tag_workers=1
            )
    if args.command == "poll":
        app.validate_for_start(settings, feeds=True, workers=False)
        with app.redis_for(settings, embedded_allowed=False) as live:
            return app.serve(live, metrics_dir, poll=True, extract_workers=0, tag_workers=0)
    app.validate_for_start(settings, feeds=False, workers=True)
    queues = args.queue or list(keys.QUEUES)
    count = args.processes or settings.workers
    with app.redis_for(settings, embedded_allowed=False) as live:
        return app.serve(
            live,
            metrics_dir,
            poll=False,
            extract_workers=count if keys.EXTRACT_QUEUE in queues else 0,
            tag_workers=count if keys.TAG_QUEUE in queues else 0,
        )


def _announce_embedded(url: str) -> None:
    """Once, in plain words among the JSON lines: commands started elsewhere need the URL."""
    plain = url.removesuffix("?db=0")
    message = (
        f"tradewire: Redis for this run: {plain} (stopped with it; `tradewire status` and "
        "the other commands run from this directory find it). From elsewhere:\n"
        f"  export TRADEWIRE_REDIS_URL={shlex.quote(plain)}"
    )
    print(message, file=sys.stderr, flush=True)


def _extract(args: argparse.Namespace, settings: Settings) -> int:
    from workers.pipeline import page_to_extraction

    try:
        body = args.page.read_bytes()
    except OSError as exc:
        print(f"tradewire: cannot read {args.page}: {exc.strerror}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        extraction = page_to_extraction(body, "", args.url, settings.min_article_words, "")
    except RefusedArticleError as exc:
        print(f"not an article: {exc}", file=sys.stderr)
        return EXIT_NOT_ARTICLE
    sys.stdout.write(extraction.text)
    return 0


def _tag(settings: Settings) -> int:
    from workers.pipeline import tag_document
    from workers.tagging import load_taxonomy

    taxonomy = load_taxonomy(settings.taxonomy_file)
    status = 0
    for number, line in enumerate(sys.stdin, start=1):
        if not line.strip():
            continue
        try:
            item = _tag_input(line)
        except ValueError as exc:
            print(f"tradewire tag: line {number}: {exc}", file=sys.stderr)
            status = 1
            continue
        result = tag_document(taxonomy, item["text"], str(item.get("title") or ""))
        out: dict[str, Any] = {"id": item.get("id"), **result.to_dict()}
        out.pop("taxonomy_version")
        out["taxonomy_version"] = result.taxonomy_version
        sys.stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
    return status


def _tag_input(line: str) -> dict[str, Any]:
    """One input line, or ValueError saying what is wrong with it in the user's terms."""
    try:
        item = json.loads(line)
    except ValueError as exc:
        raise ValueError(f"not valid JSON ({exc})") from None
    if not isinstance(item, dict):
        raise ValueError(f'expected a JSON object with "text", got {type(item).__name__}')
    if "text" not in item:
        raise ValueError('missing field "text"')
    if not isinstance(item["text"], str):
        raise ValueError(f'field "text" must be a string, got {type(item["text"]).__name__}')
    return item


def _date(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date: {text!r}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _tail(args: argparse.Namespace, settings: Settings) -> int:
    from core.connection import MAX_BLOCK_S, connect
    from service.consumer import consume, wait_for_group

    client = connect(settings, decode=True)
    stream = args.stream or settings.stream_name
    wait_for_group(client, stream, args.group, args.from_start)

    def show(entry: tuple[str, dict[str, str]]) -> None:
        sys.stdout.write(entry[1]["data"] + "\n")
        sys.stdout.flush()

    consume(client, stream, args.group, args.consumer, show, claim_idle_ms=args.claim_idle_ms,
            block_ms=MAX_BLOCK_S * 1000, limit=args.count)  # fmt: skip
    return 0


def _replay(args: argparse.Namespace, settings: Settings, retag: bool) -> int:
    from core.connection import connect
    from workers import replay
    from workers.tagging import load_taxonomy

    client = connect(settings, decode=True)
    taxonomy = load_taxonomy(settings.taxonomy_file)
    now = datetime.now(UTC)
    if retag:
        report = replay.retag(settings, client, taxonomy, now=now)
    else:
        report = replay.replay(
            settings, client, taxonomy, since=args.since, stream=args.stream, now=now
        )
    print(json.dumps(dataclasses.asdict(report)))
    return 0


def _operate(args: argparse.Namespace, settings: Settings) -> int:
    from core import queues
    from core.connection import connect
    from service import status

    if args.command == "status" and args.watch:
        from service.watch import watch_command

        return watch_command(settings, args.metrics_url, args.interval, args.count)
    text_redis = connect(settings, decode=True)
    rq_redis = connect(settings, decode=False)
    if args.command == "status":
        report = status.status_report(
            text_redis, rq_redis, settings.stream_name, time.time(),
            settings.feeds_degraded_after_s,
        )  # fmt: skip
        print(status.render_status(report))
    elif args.failed_command == "list":
        jobs = queues.failed_jobs(rq_redis)
        for job in jobs:
            print(json.dumps(job, ensure_ascii=False))
        if not jobs:  # on stderr: stdout stays JSON lines for scripts
            print("no failed jobs", file=sys.stderr)
    else:
        from workers.runner import JOB_FUNCTIONS

        count = queues.retry_failed(rq_redis, args.job_ids or None, JOB_FUNCTIONS)
        print(f"requeued {count} failed job(s)")
    return 0


def _stories(args: argparse.Namespace, settings: Settings) -> int:
    from service import app, stories

    if args.command == "cluster":
        return stories.cluster_command(settings, sys.stdin, sys.stdout)
    try:
        since_s = stories.duration_s(args.since)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    with app.redis_for(settings, embedded_allowed=False, discover=True) as live:
        if args.command == "stories":
            return stories.stories_command(live, since_s, args.limit, sys.stdout)
        return stories.recluster_command(live, since_s, sys.stdout)


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from service.demo import demo_command

    return demo_command(settings, args.keep, sys.stdout, sys.stderr)


def _feeds_edit(args: argparse.Namespace, settings: Settings) -> int:
    """``feeds import`` and ``feeds discover``: edit the feed list file (comments at its
    top are kept; pollers pick the change up when they restart)."""
    import asyncio

    from core.fetch import Fetcher
    from core.models import Feed
    from service.discover import discover_sources
    from service.feedlist import load_feeds
    from service.opml import dump_feed_list, merge_feed_list, parse_opml
    from workers.corpus import write_atomically

    if args.feeds_command == "import":
        try:
            new = parse_opml(args.opml.read_bytes())
        except OSError as exc:
            raise ConfigError(f"cannot read {args.opml}: {exc.strerror or exc}") from exc
    else:

        async def find() -> list[Feed]:
            fetcher = Fetcher(settings)
            try:
                return await discover_sources(fetcher, args.site, settings.max_page_bytes)
            finally:
                await fetcher.aclose()

        new = asyncio.run(find())
        for feed in new:
            print(feed.url if feed.kind == "feed" else f"{feed.url}  (kind: {feed.kind})")
        if not new:
            print(f"no feed found at {args.site}", file=sys.stderr)
            return 1
        if not args.add:
            return 0
    source = settings.feeds_file
    existing = load_feeds(source) if source.exists() else []
    merged = merge_feed_list(existing, new)
    old_text = source.read_text(encoding="utf-8") if source.exists() else ""
    path = _writable_feed_list(source)
    comments = [line for line in old_text.splitlines() if line.startswith("#")]
    header = "\n".join(comments) if comments and old_text.startswith("#") else None
    text = dump_feed_list(merged, header) if header else dump_feed_list(merged)
    write_atomically(path, text.encode("utf-8"))
    print(f"{len(merged) - len(existing)} feed(s) added to {path} ({len(merged)} in all)")
    return 0


def _writable_feed_list(path: Path) -> Path:
    """Where a grown feed list is written: the list itself, except the starter list shipped
    inside an installed package, which is copied to ./config/ instead of edited in place."""
    from core.yamlfile import packaged_config_dir

    shipped = packaged_config_dir()
    if shipped.name == "defaults" and path.resolve().is_relative_to(shipped.resolve()):
        local = Path("config") / path.name
        local.parent.mkdir(parents=True, exist_ok=True)
        return local
    return path


def _feeds_status(settings: Settings) -> int:
    from core.connection import connect
    from service.state import FeedStore

    now = time.time()
    rows = FeedStore(connect(settings, decode=True)).all_states()
    print(f"{'status':<14}{'errors':>7}  {'next poll':>10}  url")
    for feed, state in rows:
        due = f"{state.next_poll_at - now:+.0f}s" if state.next_poll_at else "now"
        status = state.last_status or "never"
        print(f"{status:<14}{state.consecutive_errors:>7}  {due:>10}  {feed.url}")
    return 0
