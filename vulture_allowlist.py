"""Names vulture cannot see being used (`make lint` runs vulture with this file).

Each is called by a framework, read through ``dataclasses.asdict``, or is a parameter a
protocol dictates; nothing here is dead.
"""

# http.server / socketserver / html.parser / prometheus_client call these.
_.do_GET  # type: ignore[name-defined]  # noqa: F821
_.do_POST  # type: ignore[name-defined]  # noqa: F821
_.log_message  # type: ignore[name-defined]  # noqa: F821
_.daemon_threads  # type: ignore[name-defined]  # noqa: F821
_.handle_starttag  # type: ignore[name-defined]  # noqa: F821
_.collect  # type: ignore[name-defined]  # noqa: F821
# Fields printed through dataclasses.asdict (status, feeds status, replay reports).
_.scheduled_retries  # type: ignore[name-defined]  # noqa: F821
_.last_error  # type: ignore[name-defined]  # noqa: F821
_.last_polled_at  # type: ignore[name-defined]  # noqa: F821
_.updated  # type: ignore[name-defined]  # noqa: F821
_.unchanged  # type: ignore[name-defined]  # noqa: F821
# Parameters fixed by the protocols they implement (signal handlers, __exit__,
# BaseHTTPRequestHandler.log_message, getaddrinfo results, yaml Dumper.increase_indent).
family  # type: ignore[name-defined]  # noqa: F821
frame  # type: ignore[name-defined]  # noqa: F821
signum  # type: ignore[name-defined]  # noqa: F821
exc_type  # type: ignore[name-defined]  # noqa: F821
tb  # type: ignore[name-defined]  # noqa: F821
format  # noqa: B018
indentless  # type: ignore[name-defined]  # noqa: F821
# The refit scripts in benchmarks/ (outside vulture's paths) read the features with these.
_.topic_values  # type: ignore[name-defined]  # noqa: F821
# Read by RQ's Queue instead of asking the server (core.queues.enqueue_extracts_async).
_.redis_server_version  # type: ignore[name-defined]  # noqa: F821
