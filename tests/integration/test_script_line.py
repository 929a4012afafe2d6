"""core.connection.ScriptLine against a real redis-server: a script called on the kept
connection answers what redis-py's ``Script`` answers, on one connection, and every way a
call can go wrong (the script forgotten, the connection killed, the call interrupted, the
script's own error, a fork) leaves the next call a sound connection and the right reply."""

from __future__ import annotations

import gc
import os
import signal
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest
import redis

from core import keys
from core.connection import ScriptLine, connect, script_line
from core.settings import Settings
from service.embedded_redis import EmbeddedRedis
from tests.conftest import free_port
from workers.politeness import HostGate
from workers.story_redis import RedisStories

ECHO = "redis.call('INCR', KEYS[1]) return {KEYS[1], ARGV[1], redis.call('GET', KEYS[1])}"
# Busy for a fifth of a second by the server's clock: long enough to interrupt the read.
SLOW = """
local start = redis.call('TIME')
repeat
  local now = redis.call('TIME')
until (now[1] - start[1]) * 1000000 + (now[2] - start[2]) > 200000
return 'slow'
"""


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    line_client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield line_client
    line_client.close()


def connections(admin: redis.Redis) -> int:
    return len(admin.client_list(_type="normal")) - 1  # less the admin's own


def test_calls_answer_as_redis_py_does_on_one_kept_connection(
    client: redis.Redis, text_redis: redis.Redis
) -> None:
    echo = ScriptLine(client).register(ECHO)
    assert echo(keys=["n"], args=["a"]) == ["n", "a", "1"]
    before = connections(text_redis)
    answers = [echo(keys=["n"], args=[str(i)]) for i in range(50)]
    assert answers == [["n", str(i), str(i + 2)] for i in range(50)]
    assert connections(text_redis) == before
    assert client.register_script(ECHO)(keys=["n"], args=["b"]) == ["n", "b", "52"]


def test_a_server_that_forgot_the_script_is_given_it_again(
    client: redis.Redis, text_redis: redis.Redis
) -> None:
    echo = ScriptLine(client).register(ECHO)
    assert echo(keys=["n"], args=["a"])[2] == "1"
    text_redis.script_flush()
    assert echo(keys=["n"], args=["b"]) == ["n", "b", "2"]
    assert text_redis.get("n") == "2"  # run once, after the reload


def test_a_killed_connection_is_replaced_and_the_call_answers(
    client: redis.Redis, text_redis: redis.Redis
) -> None:
    echo = ScriptLine(client).register(ECHO)
    assert echo(keys=["n"], args=["a"])[2] == "1"
    assert text_redis.client_kill_filter(_type="normal", skipme=True) >= 1
    assert echo(keys=["n"], args=["b"]) == ["n", "b", "2"]
    assert echo(keys=["n"], args=["c"]) == ["n", "c", "3"]


class Interrupted(Exception):
    pass


def test_an_interrupted_call_leaves_no_reply_owed_to_the_next(client: redis.Redis) -> None:
    """A job timeout or a signal between sending and reading: the slow script's reply must
    not be read as the answer to the next call."""
    line = ScriptLine(client)
    slow, echo = line.register(SLOW), line.register(ECHO)

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise Interrupted

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.05)
    try:
        with pytest.raises(Interrupted):
            slow()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert echo(keys=["n"], args=["after"]) == ["n", "after", "1"]


def test_the_script_own_error_is_raised_and_the_connection_stays_sound(
    client: redis.Redis, text_redis: redis.Redis
) -> None:
    line = ScriptLine(client)
    failing, echo = line.register("return redis.error_reply('no such thing')"), line.register(ECHO)
    assert echo(keys=["n"], args=["a"])[2] == "1"
    with pytest.raises(redis.ResponseError, match="no such thing"):
        failing()  # the first call loads it through redis-py, on a pooled connection
    before = connections(text_redis)
    with pytest.raises(redis.ResponseError, match="no such thing"):
        failing()
    assert echo(keys=["n"], args=["b"]) == ["n", "b", "2"]
    assert connections(text_redis) == before


def test_a_forked_process_takes_its_own_connection(client: redis.Redis) -> None:
    echo = ScriptLine(client).register(ECHO)
    assert echo(keys=["n"], args=["parent"])[2] == "1"
    child = os.fork()
    if child == 0:  # the child shares the parent's socket unless it takes its own
        ok = all(echo(keys=["c"], args=[str(i)])[2] == str(i + 1) for i in range(20))
        os._exit(0 if ok else 1)
    answers = [echo(keys=["n"], args=[str(i)])[2] for i in range(20)]
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert answers == [str(i + 2) for i in range(20)]


def test_a_pipeline_queues_its_scripts(client: redis.Redis) -> None:
    pipe = client.pipeline(transaction=False)
    echo = ScriptLine(pipe).register(ECHO)
    echo(keys=["n"], args=["a"])
    echo(keys=["n"], args=["b"])
    assert client.get("n") is None  # nothing sent before execute
    assert pipe.execute() == [["n", "a", "1"], ["n", "b", "2"]]


def test_a_server_away_when_a_connection_is_needed_meets_the_client_retries(
    tmp_path: Path,
) -> None:
    """Redis restarts: the call that finds the kept connection dead fails after the
    client's retries, as any command would; the next one needs a new connection while
    the server is still away, and gets one through the retries once it is back."""
    server = EmbeddedRedis(tmp_path / "redis", port=free_port(), appendonly=False).start()
    client = connect(Settings(redis_url=server.url))  # 3 retries: 0.1 + 0.2 + 0.4 s apart
    try:
        echo = ScriptLine(client).register(ECHO)
        assert echo(keys=["n"], args=["a"]) == ["n", "a", "1"]
        server.kill()
        with pytest.raises(redis.ConnectionError):
            echo(keys=["n"], args=["b"])
        back = threading.Timer(0.15, server.start)
        back.start()
        assert echo(keys=["n"], args=["c"]) == ["n", "c", "1"]  # a new, empty server
        back.join()
    finally:
        client.close()
        server.stop()


def test_the_host_gate_and_the_story_store_share_one_kept_connection(
    client: redis.Redis, text_redis: redis.Redis
) -> None:
    """Both call scripts for every article: one kept connection per client serves both."""
    before = connections(text_redis)
    gate = HostGate(client, concurrency=1, min_delay_s=0, max_wait_s=1, lease_s=10)
    assert gate.try_acquire("share.example", "first") == 0
    assert gate.try_acquire("share.example", "second") > 0  # one slot, taken
    gate.release("share.example", "first")
    assert gate.try_acquire("share.example", "second") == 0
    store = RedisStories(client, posting_limit=25, window_s=86400)
    assert store.document_frequencies(["tariff"], 20000.0) == ({"tariff": 0}, 0)
    assert client.zcard(keys.host_slots("share.example")) == 1  # through the pool
    assert connections(text_redis) == before + 2  # the kept one and the pool's
    assert script_line(client) is script_line(client)
    assert script_line(text_redis) is not script_line(client)


def test_a_client_that_is_gone_takes_its_script_line_with_it(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    line = weakref.ref(script_line(client))
    client.close()
    del client
    gc.collect()
    assert line() is None
