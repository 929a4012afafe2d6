"""Batched jobs: one extract job per feed poll's new items, which tags what it stored (or,
with ``tag_in_extract: false``, queues one tag job for it).

Real poller, real RQ workers, real Redis, a local site. What is checked: the batch shape,
that a transiently failing page leaves its batch as a single scheduled job while its
batch-mates go on, that a batch which failed as a whole is retried as single jobs, that a
job queued by version 0.1 (one article, a dict) still runs, and that articles whose tagging
failed inside the extract job go to the tag queue and are emitted from there.
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
    ``state['flaky_503s']`` is positive; while ``state['canonical_elsewhere']`` is set, the
    pages name /articles/<name> as their canonical URL, not the /news/<name> linked."""
    state = {"flaky_503s": 1_000, "canonical_elsewhere": 0}
    with HTTPServer() as server:

        def page(request: Request) -> Response:
            name = request.path.rsplit("/", 1)[-1]
            if name == FLAKY and state["flaky_503s"] > 0:
                state["flaky_503s"] -= 1
                return Response("busy", status=503)
            html = (SITE_DIR / "articles" / name).read_bytes()  # one is GB18030
            where = "/articles/" if state["canonical_elsewhere"] else "/news/"
            html = html.replace(b"{{BASE}}/articles/", server.url_for(where).encode())
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

    run_worker(settings.with_overrides(tag_in_extract=False), keys.EXTRACT_QUEUE, burst=True)
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
    assert all(text_redis.exists(keys.verdict(j.article_id)) for j in jobs)  # tagged there
    assert queues.queue(rq_redis, keys.TAG_QUEUE).count == 0


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
    run_worker(settings.with_overrides(tag_in_extract=False), keys.EXTRACT_QUEUE, burst=True)
    [tag] = queues.queue(rq_redis, keys.TAG_QUEUE).get_jobs()
    assert [a["article_id"] for a in tag.args[0]] == [job.article_id]
    assert len(list(settings.corpus_dir.glob("*.txt"))) == 1


def test_articles_whose_tagging_failed_in_the_extract_job_are_tagged_by_a_tag_job(
    site: tuple[HTTPServer, dict[str, int]],
    settings: Settings,
    text_redis: redis.Redis,
    rq_redis: redis.Redis,
) -> None:
    """The stream's key holds a string (an operator's mistake): XADD fails inside the
    extract job, whose stored articles go to the tag queue; once the key is fixed, the tag
    worker emits them, under their page's canonical URL, which differs from the feed link."""
    server, state = site
    state["flaky_503s"], state["canonical_elsewhere"] = 0, 1
    jobs = [article_job(server, name) for name in PAGES]
    # The page names as canonical a URL other than the one it was linked by.
    canonical = {
        j.article_id: article_id_for(canonicalize_url(j.url.replace("/news/", "/articles/")))
        for j in jobs
    }
    text_redis.set(settings.stream_name, "not a stream")
    enqueue_extracts(rq_redis, settings, extract_job, jobs)
    run_worker(settings, keys.EXTRACT_QUEUE, burst=True)
    assert FailedJobRegistry(queue=queues.queue(rq_redis, keys.EXTRACT_QUEUE)).count == 0
    [tag] = queues.queue(rq_redis, keys.TAG_QUEUE).get_jobs()
    deferred = {a["article_id"] for a in tag.args[0]}
    relevant = {canonical[j.article_id] for j in jobs if not j.title.startswith("japan")}
    assert relevant <= deferred  # the first relevant article failed; the rest followed it

    text_redis.delete(settings.stream_name)
    run_worker(settings, keys.TAG_QUEUE, burst=True)
    emitted = [fields["article_id"] for _, fields in text_redis.xrange(settings.stream_name)]
    assert sorted(emitted) == sorted(relevant)
    assert all(text_redis.exists(keys.verdict(c)) for c in canonical.values())
