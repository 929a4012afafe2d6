"""Redis clients, built in one place with timeouts above every blocking call we make: for
one server (``redis_url``) or for the primary a Sentinel deployment names."""

from __future__ import annotations

import dataclasses
import inspect
import os
import threading
from collections.abc import Sequence
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.connection
from redis.asyncio.retry import Retry as AsyncRetry
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.asyncio.sentinel import SentinelManagedConnection as AsyncSentinelConnection
from redis.asyncio.sentinel import SentinelManagedSSLConnection as AsyncSentinelSSLConnection
from redis.backoff import ExponentialBackoff
from redis.commands.core import Script
from redis.connection import SSLConnection, parse_url
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool, SentinelManagedConnection

from core.redact import redact_url
from core.settings import Settings, sentinel_addresses

# The longest blocking read we issue (tail's XREADGROUP BLOCK, RQ's dequeue) must stay
# under the socket timeout, or redis-py reports a TimeoutError instead of an empty read.
MAX_BLOCK_S = 5
# Sentinels answer from memory: a second is long, and a dead one is skipped for the next.
SENTINEL_TIMEOUT_S = 1.0
# How long an emitter waits for a replica to acknowledge an event (WAIT) before going on.
REPLICA_ACK_TIMEOUT_MS = 2000


def connect(settings: Settings, *, decode: bool = True, probe: bool = False) -> redis.Redis:
    """A client for ``settings.redis_url``, or for the primary the Sentinels name. RQ needs
    ``decode=False``; our own keys use str.

    ``probe`` is for health checks: one-second timeouts and no retries, so /readyz answers
    at once that Redis is gone instead of after the retries a worker's client makes.

    With Sentinels, every new connection asks them for the primary's address, and a
    connection to a primary that was demoted (READONLY) or lost is dropped: the retries
    below reconnect to whichever server the Sentinels promoted, so a failover costs the
    callers errors only while it lasts, in every process (RQ's forked scheduler included:
    RQ rebuilds its client from this pool's class and arguments, which keep the Sentinels).
    """
    options: dict[str, Any] = {
        "decode_responses": decode,
        "socket_timeout": 1.0 if probe else settings.redis_socket_timeout_s,
        "socket_connect_timeout": 1.0 if probe else 5.0,
        "health_check_interval": 0 if probe else 30,
        "retry": Retry(ExponentialBackoff(cap=2.0, base=0.1), retries=0 if probe else 3),
        "protocol": 2,
    }
    if settings.redis_sentinels is not None:
        return _sentinel_client(settings, options)
    if settings.redis_url is None:
        raise ValueError("redis_url is not set: start the embedded Redis first")
    return redis.Redis.from_url(settings.redis_url, **options)


def _sentinel_client(settings: Settings, options: dict[str, Any]) -> redis.Redis:
    assert settings.redis_sentinels is not None and settings.redis_sentinel_master is not None
    # Only the database and the credentials (and TLS) of redis_url apply: the host is
    # whatever the Sentinels say it is at the time of each connection.
    from_url: dict[str, Any] = {}
    if settings.redis_url:
        from_url = parse_url(settings.redis_url)  # type: ignore[no-untyped-call]
    for name in ("host", "port", "path"):
        from_url.pop(name, None)
    tls = from_url.pop("connection_class", None) is not None
    from_url["connection_class"] = _SentinelSSLConnection if tls else _SentinelConnection
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        sentinel_addresses(settings.redis_sentinels),
        sentinel_kwargs={
            "password": settings.redis_sentinel_password,
            "socket_timeout": SENTINEL_TIMEOUT_S,
            "socket_connect_timeout": SENTINEL_TIMEOUT_S,
            "protocol": 2,
        },
    )
    client: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
        settings.redis_sentinel_master, **{**from_url, **options}
    )
    return client


class _SentinelConnection(SentinelManagedConnection):
    """redis-py's Sentinel connection, closed when a read is interrupted, as a plain
    connection is. redis-py's keeps it (``disconnect_on_error`` defaults to False there):
    SIGTERM stopping RQ's blocking dequeue then left the BLPOP's reply owed on the socket,
    and the worker's next command, its farewell to Redis, waited behind it until the
    supervisor killed it 30 s later."""

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("disconnect_on_error", True)
        return super().read_response(*args, **kwargs)


class _SentinelSSLConnection(_SentinelConnection, SSLConnection):
    pass


def describe(settings: Settings) -> str:
    """Where the service's Redis is, for logs and errors, with credentials masked."""
    if settings.redis_sentinels is not None:
        return (
            f"the primary of {settings.redis_sentinel_master!r} named by the Sentinels at "
            f"{settings.redis_sentinels}"
        )
    return redact_url(settings.redis_url) if settings.redis_url else "the embedded Redis"


def replicas_to_wait(settings: Settings) -> int:
    """Replicas that must hold a write before it is trusted beyond Redis (the corpus's
    memory that an event was announced): one under Sentinel, none for a lone server."""
    return 1 if settings.redis_sentinels is not None else 0


def eviction_policy(client: redis.Redis) -> str | None:
    """Redis's ``maxmemory-policy`` (``client`` decodes responses), or None where CONFIG is
    refused (managed services rename it or deny it to application users)."""
    try:
        reply = client.config_get("maxmemory-policy")
    except redis.ResponseError:  # unknown command, NOPERM
        return None
    return reply.get("maxmemory-policy")


class ScriptLine:
    """A connection of ``client``'s pool kept for the Lua scripts that one worker runs
    several times per article (story clustering's three). Each call is written and read
    on it directly.

    redis-py's own path for each command costs about 50 µs of client CPU on redis-py 8:
    a pool checkout that polls the socket, retry closures, event dispatch and
    observability hooks. That is a tenth of what placing an article in its story costs
    (``benchmarks/story_cost.py``).

    A call can fail to get a reply: the connection is lost or interrupted, or a Sentinel
    primary was demoted. Or the server may not know the script (restarted or promoted).
    Either way the connection goes back to the pool and the call runs once more as
    ``Script.__call__``, with the client's retries, script reload and Sentinel
    rediscovery. The next call takes a connection from the pool again, and so does a
    forked process. The scripts run here must be safe to run twice, as with any client
    that retries."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._connection: Any = None
        self._pid = 0
        self._lock = threading.Lock()

    def register(self, source: str) -> LineScript | Script:
        script = self.client.register_script(source)
        if isinstance(self.client, redis.client.Pipeline):
            return script  # a pipeline queues its commands: its scripts go through it
        return LineScript(self, script)

    def run(self, script: Script, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        with self._lock:
            try:
                return self._call(script, keys, args)
            except redis.exceptions.NoScriptError:
                pass  # the connection is sound: the script is loaded below
            except redis.exceptions.ResponseError:
                raise  # the script's own error, as Script.__call__ raises it
            except BaseException as exc:
                self._drop()
                if not isinstance(exc, (redis.ConnectionError, redis.TimeoutError, OSError)):
                    raise
        return script(keys=keys, args=args)

    def _call(self, script: Script, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        if self._connection is None or self._pid != os.getpid():
            # Checked out inside ``run``'s handling: a checkout that fails (a server away
            # beyond the connection's own connect retries) falls back like a failed call.
            self._connection = self.client.connection_pool.get_connection()
            self._pid = os.getpid()
        self._connection.send_command("EVALSHA", script.sha, len(keys), *keys, *args)
        return self._connection.read_response()

    def _drop(self) -> None:
        """No whole reply was read: one may still be owed on the kept connection."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.disconnect()
            self.client.connection_pool.release(connection)


_LINE_ATTRIBUTE = "_tradewire_script_line"
_LINES_LOCK = threading.Lock()


def script_line(client: redis.Redis) -> ScriptLine:
    """``client``'s one ``ScriptLine``: the stores of a process that call scripts for
    every article (the story store, the host gate) share one kept connection. It lives on
    the client, so it goes with it (a registry keyed by the client would keep both alive:
    the line refers to its client)."""
    with _LINES_LOCK:
        line: ScriptLine | None = getattr(client, _LINE_ATTRIBUTE, None)
        if line is None:
            line = ScriptLine(client)
            setattr(client, _LINE_ATTRIBUTE, line)
        return line


@dataclasses.dataclass(frozen=True)
class LineScript:
    """A script registered on a ``ScriptLine``: called as redis-py's ``Script`` is."""

    line: ScriptLine
    script: Script

    @property
    def sha(self) -> str:
        return self.script.sha

    def __call__(self, keys: Sequence[Any] = (), args: Sequence[Any] = ()) -> Any:
        return self.line.run(self.script, keys, args)


# -- asyncio twins of the clients above ----------------------------------------------------

# Connections of one asyncio client, and how long a command waits for one of them.
ASYNC_MAX_CONNECTIONS = 64
ASYNC_POOL_WAIT_S = 30.0

_ASYNC_CLASSES: dict[type, type] = {
    redis.connection.Connection: redis.asyncio.connection.Connection,
    redis.connection.SSLConnection: redis.asyncio.connection.SSLConnection,
    redis.connection.UnixDomainSocketConnection: (
        redis.asyncio.connection.UnixDomainSocketConnection
    ),
}


def _async_options(kwargs: dict[str, Any], connection_class: type) -> dict[str, Any]:
    """The sync pool's connection arguments an asyncio connection also takes; the retry
    policy is rebuilt as its asyncio twin (a sync ``Retry`` cannot await)."""
    accepted: set[str] = set()
    for klass in connection_class.__mro__:
        if "__init__" in vars(klass):
            accepted |= set(inspect.signature(vars(klass)["__init__"]).parameters)
    options = {k: v for k, v in kwargs.items() if k in accepted and k != "retry"}
    retry = kwargs.get("retry")
    if isinstance(retry, Retry):
        options["retry"] = AsyncRetry(retry._backoff, retry._retries)
    return options


def async_twin(client: redis.Redis) -> redis.asyncio.Redis:
    """An asyncio client to the server (or Sentinel-managed primary) ``client`` talks to,
    with its database, credentials, decoding, timeouts and retries: for code running on an
    event loop, where one blocking round trip stalls every task. Bound to the loop it is
    first used on; close it (``aclose``) on that loop."""
    pool = client.connection_pool
    if isinstance(pool, SentinelConnectionPool):
        sentinels = [
            (
                s.connection_pool.connection_kwargs["host"],
                s.connection_pool.connection_kwargs["port"],
            )
            for s in pool.sentinel_manager.sentinels
        ]
        first = pool.sentinel_manager.sentinels[0].connection_pool.connection_kwargs
        manager = AsyncSentinel(  # type: ignore[no-untyped-call]
            sentinels,
            sentinel_kwargs={k: first.get(k) for k in
                             ("password", "socket_timeout", "socket_connect_timeout", "protocol")},
        )  # fmt: skip
        kwargs = dict(pool.connection_kwargs)
        ssl = issubclass(pool.connection_class, SSLConnection)
        klass = AsyncSentinelSSLConnection if ssl else AsyncSentinelConnection
        options = _async_options(kwargs, klass)
        # The Sentinel pool cannot wait for a free connection: it may open one per task.
        aclient: redis.asyncio.Redis = manager.master_for(
            pool.service_name, connection_class=klass, max_connections=1024, **options
        )
        return aclient
    connection_class = _ASYNC_CLASSES.get(pool.connection_class)
    if connection_class is None:
        connection_class = next(
            v for k, v in _ASYNC_CLASSES.items() if issubclass(pool.connection_class, k)
        )
    options = _async_options(dict(pool.connection_kwargs), connection_class)
    # Hundreds of tasks share the client: one past the pool's size waits for a connection
    # (redis-py's default pool fails it instead, at 100).
    apool = redis.asyncio.BlockingConnectionPool(
        connection_class=connection_class,
        max_connections=ASYNC_MAX_CONNECTIONS,
        timeout=ASYNC_POOL_WAIT_S,
        **options,
    )
    return redis.asyncio.Redis(connection_pool=apool)
