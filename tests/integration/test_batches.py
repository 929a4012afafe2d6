"""Batched jobs: one extract job per feed poll's new items, one tag job per extract job.

Real poller, real RQ workers, real Redis, a local site. What is checked: the batch shape,
that a transiently failing page leaves its batch as a single scheduled job while its
batch-mates go on, that a batch which failed as a whole is retried as single jobs, and
that a job queued by version 0.1 (one article, a dict) still runs.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
import yaml
from pytest_httpserver import HTTPServer
from rq.job import Job
from rq.registry import FailedJobRegistry, ScheduledJobRegistry
from werkzeug import Request, Response

from core import keys, queues
from core.models import ArticleJob
from core.queues import enqueue_extracts
from core.settings import Settings
from core.urls import article_id_for, canonicalize_url
from service.demo import SITE_DIR
from service.feedlist import load_feeds
from service.poller import poll_feeds_once
from workers.jobs import extract_job
from workers.runner import run_worker

PAGES = [
    "tariff-truce-extended.html",
    "soybean-purchases-stall.html",
    "japan-auto-tariffs-deal.html",
    "fentanyl-tariffs-cut.html",
]
FLAKY = "fentanyl-tariffs-cut.html"


@pytest.fixture
def site() -> Iterator[tuple[HTTPServer, dict[str, int]]]:
    """The demo articles under /news/, an RSS feed of them; FLAKY answers 503 while
    ``state['flaky_503s']`` is positive."""
    state = {"flaky_503s": 1_000}
    with HTTPServer() as server:

        def page(request: Request) -> Response:
            name = request.path.rsplit("/", 1)[-1]
            if name == FLAKY and state["flaky_503s"] > 0:
                state["flaky_503s"] -= 1
                return Response("busy", status=503)
            html = (SITE_DIR / "articles" / name).read_bytes()  # one is GB18030
            html = html.replace(b"{{BASE}}/articles/", server.url_for("/news/").encode())
            return Response(html, content_type="text/html")

        for name in PAGES:
            server.expect_request(f"/news/{name}").respond_with_handler(page)
        items = "".join(
            f"<item><title>{name}</title><link>{server.url_for('/news/' + name)}</link>"
            f"<guid>{name}</guid></item>"
            for name in PAGES
        )
        server.expect_request("/rss").respond_with_data(
            f"<rss version='2.0'><channel><title>t</title>{items}</channel></rss>",
            content_type="application/rss+xml",
        )
        yield server, state


def article_id(server: HTTPServer, name: str) -> str:
    return article_id_for(canonicalize_url(server.url_for(f"/news/{name}")))


def article_job(server: HTTPServer, name: str) -> ArticleJob:
    """What the poller would have queued for the page ``name``."""
    url = server.url_for(f"/news/{name}")
    return ArticleJob(
        article_id=article_id(server, name),
        url=url,
        canonical_url=canonicalize_url(url),
        feed_url=server.url_for("/rss"),
        feed_title="t",
        title=name,
        published_at=None,
        discovered_at="2026-11-21T00:00:00Z",
    )


def poll(settings: Settings, text_redis: redis.Redis, rq_redis: redis.Redis) -> int:
    feeds = load_feeds(settings.feeds_file)
    return poll_feeds_once(settings, text_redis, rq_redis, feeds).new_items


def test_a_transient_failure_leaves_the_batch_as_a_single_job(
    site: tuple[HTTPServer, dict[str, int]],
    settings: Settings,
    text_redis: redis.Redis,
    rq_redis: redis.Redis,
) -> None:
    server, state = site
    settings.feeds_file.write_text(yaml.safe_dump({"feeds": [{"url": server.url_for("/rss")}]}))
    assert poll(settings, text_redis, rq_redis) == 4

    extract = queues.queue(rq_redis, keys.EXTRACT_QUEUE)
    [batch] = extract.get_jobs()
    assert len(batch.args[0]) == 4 and batch.timeout == 4 * settings.job_timeout_s

    run_worker(settings, keys.EXTRACT_QUEUE, burst=True)
    assert len(list(settings.corpus_dir.glob("*.txt"))) == 3
    [tag_batch] = queues.queue(rq_redis, keys.TAG_QUEUE).get_jobs()
    assert len(tag_batch.args[0]) == 3
    flaky_id = article_id(server, FLAKY)
    assert FLAKY not in {a["url"].rsplit("/", 1)[-1] for a in tag_batch.args[0]}
    # The 503 page waits on its own, on the retry schedule, with the full retry policy.
    scheduled = ScheduledJobRegistry(queue=extract)
    assert scheduled.get_job_ids() == [keys.job_id(keys.EXTRACT_QUEUE, [flaky_id])]
    single = Job.fetch(
        keys.job_id(keys.EXTRACT_QUEUE, [flaky_id]),
        connection=rq_redis,
        serializer=queues.JSONSerializer,
    )
    assert single.retries_left == settings.job_retries
    assert FailedJobRegistry(queue=extract).count == 0

    state["flaky_503s"] = 0
    scheduled.remove(single)
    extract.enqueue_job(single)
    run_worker(settings, keys.EXTRACT_QUEUE, burst=True)
    run_worker(settings, keys.TAG_QUEUE, burst=True)
    assert len(list(settings.corpus_dir.glob("*.txt"))) == 4
    emitted = {fields["article_id"] for _, fields in text_redis.xrange(settings.stream_name)}
    assert emitted == {article_id(server, n) for n in PAGES if not n.startswith("japan")}


def test_a_batch_that_failed_is_retried_as_single_jobs(
    site: tuple[HTTPServer, dict[str, int]],
    settings: Settings,
    text_redis: redis.Redis,
    rq_redis: redis.Redis,
) -> None:
    """As RQ leaves a batch after one failed try (a killed worker, the job timeout): the
    next try only splits it, and each article then runs as a job of its own."""
    server, state = site
    state["flaky_503s"] = 0
    jobs = [article_job(server, name) for name in PAGES[:3]]
    enqueue_extracts(rq_redis, settings, extract_job, jobs)
    extract = queues.queue(rq_redis, keys.EXTRACT_QUEUE)
    [batch] = extract.get_jobs()
    batch.retries_left = settings.job_retries - 1
    batch.save()

    run_worker(settings.with_overrides(worker_max_jobs=1), keys.EXTRACT_QUEUE, burst=True)
    assert not list(settings.corpus_dir.glob("*.txt"))
    assert sorted(extract.get_job_ids()) == sorted(
        keys.job_id(keys.EXTRACT_QUEUE, [j.article_id]) for j in jobs
    )
    run_worker(settings, keys.EXTRACT_QUEUE, burst=True)
    assert len(list(settings.corpus_dir.glob("*.txt"))) == 3
    assert len(queues.queue(rq_redis, keys.TAG_QUEUE).get_jobs()) == 3


def test_a_job_queued_by_version_0_1_still_runs(
    site: tuple[HTTPServer, dict[str, int]],
    settings: Settings,
    text_redis: redis.Redis,
    rq_redis: redis.Redis,
) -> None:
    """Before batches, an extract job's argument was one article as a dict."""
    server, _ = site
    job = article_job(server, PAGES[0])
    extract = queues.queue(rq_redis, keys.EXTRACT_QUEUE)
    extract.enqueue_call(extract_job, args=(job.to_dict(),), job_id="extract-legacy")
    run_worker(settings, keys.EXTRACT_QUEUE, burst=True)
    [tag] = queues.queue(rq_redis, keys.TAG_QUEUE).get_jobs()
    assert [a["article_id"] for a in tag.args[0]] == [job.article_id]
    assert len(list(settings.corpus_dir.glob("*.txt"))) == 1
