"""How the long-running service commands (`context`, `executor`) start and stop: their
file and client settings read first (a problem there exits 2 naming it), then the
service served until SIGINT or SIGTERM (a failure to start or to reach the cluster
exits 1 naming it)."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from contextplane.cli.kafka_client import ConfigError, security_config
from contextplane.logsafe import log_to_stderr

Loaded = TypeVar("Loaded")
# Given what was loaded, the client security settings and the stop event: the exit status.
Serve = Callable[[Loaded, dict[str, str], asyncio.Event], Awaitable[int]]


def run_service(
    name: str,
    log_level: str,
    command_config: Path | None,
    load: Callable[[], Loaded],
    serve: Serve[Loaded],
    load_errors: tuple[type[Exception], ...],
    start_errors: tuple[type[Exception], ...],
) -> int:
    log_to_stderr(log_level)
    refused: tuple[type[Exception], ...] = (*load_errors, ConfigError, OSError)
    failed: tuple[type[Exception], ...] = (*start_errors, OSError)
    try:
        loaded = load()
        security = security_config(command_config)
    except refused as exc:
        print(f"contextplane {name}: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_until_signalled(serve, loaded, security))
    except KeyboardInterrupt:
        return 0
    except failed as exc:
        print(f"contextplane {name}: {exc}", file=sys.stderr)
        return 1


async def _until_signalled(serve: Serve[Loaded], loaded: Loaded, security: dict[str, str]) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return await serve(loaded, security, stop)
