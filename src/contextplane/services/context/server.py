"""The context service served over HTTP by the services' uvicorn server
(services/http_server.py: bounded headers and connections, a deadline on each request
head)."""

from __future__ import annotations

import asyncio
import contextlib

from contextplane.services.bound_socket import bind
from contextplane.services.context.app import build_app
from contextplane.services.context.service import ContextService
from contextplane.services.http_server import serve

READY_LINE = "contextplane context ready on {host}:{port}"


async def run_context(service: ContextService, host: str, port: int, stop: asyncio.Event) -> int:
    """Bind, restore and start applying, print the ready line, serve until `stop` or the
    apply loop stops by itself; 0, or 1 when the apply loop failed."""
    sock = bind(host, port)
    try:
        await service.start()
        print(READY_LINE.format(host=host, port=sock.getsockname()[1]), flush=True)
        serving = asyncio.create_task(
            serve(build_app(service), sock, stop, traced_as="contextplane-context")
        )
        failed = asyncio.create_task(service.stopped.wait())
        await asyncio.wait([serving, failed], return_when=asyncio.FIRST_COMPLETED)
        stop.set()
        failed.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving
        return 1 if service.failure is not None else 0
    finally:
        sock.close()
        await service.close()
