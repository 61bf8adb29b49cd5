"""HTTP/1.1 for the services (the schema registry, the broker's /metrics): uvicorn on the
caller's own event loop, on a socket the caller bound (so port 0 works and the port is
known before the ready line), without uvicorn's signal handlers, each request head under
a deadline, and each stall of an answer's writing (request_deadline.py)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn
from starlette.applications import Starlette

from contextplane import tracing
from contextplane.services.request_deadline import with_request_head_deadline

# uvicorn's h11 parser refuses a request line plus headers larger than this (h11's own
# default is 16 KiB, node.js's 80 KiB): a subject name is part of the request line.
HEADERS_BYTES_MAX = 64 * 1024
# Connections served at once; past it uvicorn answers 503 at once instead of queueing.
CONNECTIONS_MAX = 1000
KEEP_ALIVE_S = 30
# A connection's request line and headers arrive within this of its accept or its last
# answer, however slowly they trickle (Jetty's idle timeout in Confluent's is 30 s too).
REQUEST_HEAD_S = 30.0
# An answer's writing may stall (the client reads nothing) this long before the
# connection is dropped with what it held (request_deadline.py).
WRITE_STALL_S = 30.0
GRACEFUL_SHUTDOWN_S = 5


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handlers: the command that runs the registry owns
    SIGINT and SIGTERM, and closes the store after the server."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _given_context(
    tls: ssl.SSLContext,
) -> Callable[[uvicorn.Config, Callable[[], ssl.SSLContext]], ssl.SSLContext]:
    """uvicorn's `ssl_context_factory` for a context the caller built (security/tls.py)."""
    return lambda _config, _default: tls


async def serve(
    app: Starlette,
    sock: socket.socket,
    stop: asyncio.Event,
    *,
    request_head_s: float = REQUEST_HEAD_S,
    write_stall_s: float = WRITE_STALL_S,
    traced_as: str | None = None,
    tls: ssl.SSLContext | None = None,
) -> None:
    """Serve `app` on `sock` until `stop` is set, then finish requests under way (at
    most GRACEFUL_SHUTDOWN_S). `traced_as`: the service's name, for a span per request
    when traces are configured (`tracing.py`); `tls`: serve HTTPS with this context."""
    served: Any = app
    tracer = tracing.started_tracer(traced_as) if traced_as is not None else None
    if tracer is not None:
        from contextplane.services.http_spans import TracedApp  # only when traced

        served = TracedApp(app, tracer)
    config = uvicorn.Config(
        served,
        http=with_request_head_deadline(request_head_s, write_stall_s),
        lifespan="off",
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_keep_alive=KEEP_ALIVE_S,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        limit_concurrency=CONNECTIONS_MAX,
        h11_max_incomplete_event_size=HEADERS_BYTES_MAX,
        ssl_context_factory=None if tls is None else _given_context(tls),
    )
    server = _EmbeddedServer(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait([serving, stopping], return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    server.should_exit = True
    await serving
