"""The HTTP surface served beside a broker by `contextplane up` (`http.port`).

The socket is bound before the broker starts, so a port in use is found first: an error
when `http.port` was given, a warning (and no HTTP surface) when it is the default 8080,
which something else on a developer's machine often holds. It serves /metrics and the web
console's pages, whose sampler (lag over time, rates) runs as a task beside the server.
The server's modules (uvicorn, Starlette, prometheus_client, Jinja2) are imported in a
worker thread once the broker serves, so they add nothing to the time to serving.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import socket
from dataclasses import dataclass

from contextplane.services.bound_socket import bind
from contextplane.settings import Settings

log = logging.getLogger("contextplane")

OFF = -1


class HttpPortTaken(OSError):
    """`http.port` was given and cannot be bound (the message names it)."""


def bind_http(settings: Settings) -> socket.socket | None:
    """The HTTP surface's socket, None when it is off or its default port is taken."""
    if settings.http_port == OFF:
        return None
    try:
        return bind(settings.host, settings.http_port)
    except OSError as exc:
        where = f"{settings.host}:{settings.http_port}"
        if "http.port" in settings.given:
            raise HttpPortTaken(f"http.port {where}: {exc.strerror or exc}") from exc
        log.warning(
            "no HTTP surface (/metrics): %s is taken (%s); set http.port to another port, "
            "or -1 to turn it off",
            where,
            exc.strerror or exc,
        )
        return None


@dataclass
class HttpBeside:
    task: asyncio.Task[None]
    stop_event: asyncio.Event

    async def stop(self) -> None:
        self.stop_event.set()
        await asyncio.gather(self.task, return_exceptions=True)


def start_beside(sock: socket.socket, services: object, settings: Settings) -> HttpBeside:
    stop = asyncio.Event()
    head_s = settings.http_request_head_timeout_ms / 1000
    task = asyncio.create_task(_serve(sock, services, stop, head_s), name="http-surface")
    task.add_done_callback(_report)
    return HttpBeside(task, stop)


async def _serve(
    sock: socket.socket, services: object, stop: asyncio.Event, request_head_s: float
) -> None:
    try:
        (
            app_module,
            metrics_module,
            pages_module,
            sampler_module,
            server_module,
        ) = await asyncio.to_thread(
            lambda: [
                importlib.import_module(f"contextplane.{name}")
                for name in (
                    "console.app",
                    "console.metrics",
                    "console.pages",
                    "console.sampler",
                    "services.http_server",
                )
            ]
        )
        sampler = sampler_module.ConsoleSampler(services)
        pages = pages_module.ConsolePages(services, sampler)
        app = app_module.build_app(metrics_module.BrokerMetrics(services), pages)
        sampling = asyncio.create_task(sampler.run(stop), name="console-sampler")
        host, port = sock.getsockname()[:2]
        where = f"{host}:{port}"
        log.info("console at http://%s/, metrics at http://%s/metrics", where, where)
        try:
            await server_module.serve(app, sock, stop, request_head_s=request_head_s)
        finally:
            stop.set()
            await asyncio.gather(sampling, return_exceptions=True)
    finally:
        sock.close()


def _report(task: asyncio.Task[None]) -> None:
    """A failed HTTP surface does not stop the broker: logged."""
    if not task.cancelled() and task.exception() is not None:
        log.error("the HTTP surface stopped: %s", task.exception())
