"""Routing on the path as the client encoded it, so that `%2F` in a subject is part of the
subject, as in Confluent's registry (Jersey decodes each segment after matching; clients
URL-encode the subject). uvicorn decodes the whole path first, which turns `a%2Fb` into
two segments and the request into a 404.

`RawPathRouting` puts the raw path in `scope["path"]`; each route parameter is declared
`{name:segment}` and decoded by `SegmentConvertor` once matched.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.convertors import Convertor, register_url_convertor
from starlette.types import ASGIApp, Receive, Scope, Send


class SegmentConvertor(Convertor[str]):
    regex = "[^/]+"

    def convert(self, value: str) -> str:
        # The raw path is bytes, decoded as latin-1 so that every byte is one character.
        return unquote_to_bytes(value.encode("latin-1")).decode("utf-8", "replace")

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("segment", SegmentConvertor())


class RawPathRouting:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw: Any = scope.get("raw_path")
        if scope["type"] == "http" and isinstance(raw, bytes):
            scope = {**scope, "path": raw.decode("latin-1")}
        await self.app(scope, receive, send)
