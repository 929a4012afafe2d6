"""``poller_bench.py --profile PATH``: where the steady window's wall-clock time went
(pyinstrument): self time by function and by library, inclusive time of the poller's parts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

LIBRARIES = (
    ("/httpcore/", "httpcore"), ("/httpx/", "httpx"), ("/anyio/", "anyio"), ("/h11/", "h11"),
    ("/httpx_aiohttp/", "httpx-aiohttp"), ("/aiohttp/", "aiohttp"), ("/yarl/", "aiohttp"),
    ("/multidict/", "aiohttp"), ("/redis/", "redis-py"), ("/rq/", "rq"), ("/feedparser/", "feedparser"),
    ("/structlog/", "structlog"), ("/prometheus_client/", "prometheus"), ("/asyncio/", "asyncio"),
    ("/service/", "service"), ("poller_bench", "benchmark"),
)  # fmt: skip


def library(path: str | None) -> str:
    path = path or ""
    for marker, name in LIBRARIES:
        if marker in path:
            return name
    return "stdlib/other"


def self_times(session: Any) -> tuple[Counter[str], Counter[str], float]:
    """Wall time spent in each function itself, and per library, over the raw frame tree.
    A built-in's time goes to the library that called it; epoll.poll is the idle loop."""
    by_function: Counter[str] = Counter()
    by_library: Counter[str] = Counter()
    root = session.root_frame(trim_stem=False)
    stack: list[tuple[Any, str, str]] = [(root, "<root>", "stdlib/other")]
    while stack:
        frame, caller, caller_lib = stack.pop()
        own = frame.time - sum(child.time for child in frame.children)
        if frame.is_synthetic:  # "[self]"/"[await]" leaves: time of the caller itself
            name, lib = caller, caller_lib
        elif not frame.file_path or frame.file_path.startswith("<"):
            name = f"{frame.function} (built-in, from {caller_lib})"
            lib = "idle (epoll wait)" if frame.function == "epoll.poll" else caller_lib
        else:
            name = f"{frame.function}  {frame.file_path_short}:{frame.line_no}"
            lib = library(frame.file_path)
        by_function[name] += own
        by_library[lib] += own
        stack.extend((child, name, lib) for child in frame.children)
    return by_function, by_library, root.time


# Where the poller's time goes, inclusive (a function's time with everything it calls).
COMPONENTS = (
    ("Fetcher.get (httpx over aiohttp: the HTTP request)", "get", "core/fetch.py"),
    ("  of which AsyncClient.send", "send", "httpx/_client.py"),
    ("  of which Response.aclose", "aclose", "httpx/_models.py"),
    ("AsyncFeedStore (asyncio Redis: claim, load, save, next due)",
     "claim_due|load|save_many|next_due_at", "service/state.py"),
    ("AsyncArticleClaims (asyncio Redis, 200s only)", "known_guids|claim|confirm|release",
     "core/claims.py"),
    ("enqueue_extracts_async (RQ's jobs, asyncio pipeline)", "enqueue_extracts_async",
     "core/queues.py"),
    ("FeedParsers.parse (hand-off to the parse processes)", "parse", "service/parsing.py"),
    ("structlog calls", "*", "structlog/"),
    ("heartbeat (asyncio Redis)", "heartbeat", "service/poller.py"),
)  # fmt: skip


def inclusive_times(session: Any) -> dict[str, float]:
    """Inclusive wall time of each COMPONENTS entry (outermost matching frames only)."""
    out = dict.fromkeys((label for label, _, _ in COMPONENTS), 0.0)
    root = session.root_frame(trim_stem=False)
    for label, names, path in COMPONENTS:
        wanted = set(names.split("|"))
        stack = [root]
        while stack:
            frame = stack.pop()
            if path in (frame.file_path or "") and ("*" in wanted or frame.function in wanted):
                out[label] += frame.time
                continue
            stack.extend(frame.children)
    return out


def write_profile(profiler: Any, path: Path) -> None:
    from pyinstrument.renderers import ConsoleRenderer

    session = profiler.last_session
    tree = ConsoleRenderer(unicode=True, show_all=False).render(session)
    by_function, by_library, total = self_times(session)
    flat = [f"{100 * t / total:5.1f}%  {name}" for name, t in by_function.most_common(40)]
    libs = [f"{100 * t / total:5.1f}%  {name}" for name, t in by_library.most_common()]
    parts = [f"{100 * t / total:5.1f}%  {name}" for name, t in inclusive_times(session).items()]
    path.write_text(
        tree
        + "\n\n# self time by function (wall-clock samples)\n"
        + "\n".join(flat)
        + "\n\n# self time by library\n"
        + "\n".join(libs)
        + "\n\n# inclusive time of the poller's parts\n"
        + "\n".join(parts)
        + "\n"
    )
    session.save(str(path) + ".pyisession")
    print(f"\nsteady-window profile (pyinstrument, wall-clock samples, {total:.1f} s) -> {path}")
    print("top 15 functions by self time:")
    print("\n".join(flat[:15]))
    print("self time by library:")
    print("\n".join(libs))
    print("inclusive time of the poller's parts:")
    print("\n".join(parts))
