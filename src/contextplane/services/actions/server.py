"""The executor's process: the loop on its thread, the ledger read served over HTTP by
the services' uvicorn server (services/http_server.py)."""

from __future__ import annotations

import asyncio
import contextlib
import threading

from contextplane.services.actions.app import build_app
from contextplane.services.actions.executor import Executor
from contextplane.services.bound_socket import bind
from contextplane.services.http_server import serve

READY_LINE = "contextplane executor ready on {host}:{port}"


async def run_executor(executor: Executor, host: str, port: int, stop: asyncio.Event) -> int:
    """Bind, start (topics, fencing, the index), print the ready line, run until `stop` or
    the loop ends by itself; 0, or 1 when it failed (fenced, or a fault)."""
    sock = bind(host, port)
    loop = asyncio.get_running_loop()
    ended = asyncio.Event()
    try:
        await asyncio.to_thread(executor.start)

        def run() -> None:
            try:
                executor.run()
            finally:
                loop.call_soon_threadsafe(ended.set)

        thread = threading.Thread(target=run, name="executor", daemon=True)
        thread.start()
        print(READY_LINE.format(host=host, port=sock.getsockname()[1]), flush=True)
        app = build_app(executor.index, executor.counts)
        serving = asyncio.create_task(serve(app, sock, stop, traced_as="contextplane-executor"))
        waiting = asyncio.create_task(ended.wait())
        await asyncio.wait([serving, waiting], return_when=asyncio.FIRST_COMPLETED)
        stop.set()
        executor.stop()
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving
        await asyncio.to_thread(thread.join)
        return 1 if executor.failure is not None else 0
    finally:
        sock.close()
