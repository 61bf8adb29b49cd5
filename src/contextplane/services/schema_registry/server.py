"""The registry served over HTTP/1.1 (services/http_server.py)."""

from __future__ import annotations

import asyncio
import ssl

from contextplane.services.bound_socket import bind
from contextplane.services.http_server import serve
from contextplane.services.schema_registry.access import Access
from contextplane.services.schema_registry.app import build_app
from contextplane.services.schema_registry.dek_registry import DekRegistry
from contextplane.services.schema_registry.registry import SchemaRegistry
from contextplane.services.schema_registry.store import Store

READY_LINE = "contextplane schema registry ready on {host}:{port} ({scheme})"


async def run_registry(
    store: Store,
    host: str,
    port: int,
    stop: asyncio.Event,
    access: Access | None = None,
    tls: ssl.SSLContext | None = None,
    keys_store: Store | None = None,
) -> None:
    """Bind, replay the stores, print the ready line, serve until `stop`, close the
    stores; `access`: who may do what (None: anyone, anything); `tls`: HTTPS (https.py);
    `keys_store`: the DEK registry's `_dek_registry_keys` (None: no DEK registry)."""
    sock = bind(host, port)
    registry = SchemaRegistry(store)
    keys = DekRegistry(keys_store) if keys_store is not None else None
    try:
        await registry.start()
        if keys is not None:
            await keys.start()
        scheme = "https" if tls is not None else "http"
        print(READY_LINE.format(host=host, port=sock.getsockname()[1], scheme=scheme), flush=True)
        await serve(
            build_app(registry, access, keys),
            sock,
            stop,
            traced_as="contextplane-schema-registry",
            tls=tls,
        )
    finally:
        sock.close()
        await registry.close()
        if keys is not None:
            await keys.close()
