"""A request body read within bounds, for every service's HTTP app: refused past
`max_bytes` (by its Content-Length before anything is read, else as it arrives) and past
`read_s` however slowly it trickles. Each service raises its own errors."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.requests import Request


async def read_bounded(
    request: Request,
    max_bytes: int,
    read_s: float,
    too_large: Callable[[int], Exception],
    timed_out: Callable[[float], Exception],
) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise too_large(max_bytes)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(read_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > max_bytes:
                    raise too_large(max_bytes)
                chunks.append(chunk)
    except TimeoutError:
        raise timed_out(read_s) from None
    return b"".join(chunks)
