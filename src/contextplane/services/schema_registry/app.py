"""The registry's ASGI app: the resources' routes, and every error answered with
Confluent's `{error_code, message}` body and content type; given an `Access`, every
request authenticated and every route guarded by its need (access.py, access_rules.py)."""

from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from contextplane.services.schema_registry.access import Access, Authentication, guarded
from contextplane.services.schema_registry.access_rules import NEEDS
from contextplane.services.schema_registry.dek_registry import DekRegistry
from contextplane.services.schema_registry.errors import RegistryError
from contextplane.services.schema_registry.http_io import RegistryResponse
from contextplane.services.schema_registry.metrics import RegistryCounts, metrics
from contextplane.services.schema_registry.path_segments import RawPathRouting
from contextplane.services.schema_registry.registry import SchemaRegistry
from contextplane.services.schema_registry.routes import (
    compatibility,
    config,
    dek,
    mode,
    schemas,
    subjects,
)

log = logging.getLogger("contextplane.schema_registry")


async def _root(request: Request) -> Response:
    return RegistryResponse({})


async def _registry_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RegistryError)
    request.app.state.counts.answered(exc.error_code)
    return RegistryResponse(exc.body(), status_code=exc.status)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Unknown routes and methods, in Confluent's shape (Jersey's words)."""
    assert isinstance(exc, HTTPException)
    body = {"error_code": exc.status_code, "message": f"HTTP {exc.status_code} {exc.detail}"}
    return RegistryResponse(body, status_code=exc.status_code, headers=exc.headers)


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("request %s %s failed", request.method, request.url.path)
    return RegistryResponse({"error_code": 500, "message": "Internal Server Error"}, 500)


def _guarded(route: Route) -> Route:
    methods = sorted((route.methods or set()) - {"HEAD"})
    (method,) = methods
    # A read's audit name is its route ("GET /subjects/{subject}"), not the client's path.
    api = f"{method} {route.path.replace(':segment', '')}"
    endpoint = guarded(route.endpoint, NEEDS[(method, route.path)], api)
    return Route(route.path, endpoint, methods=methods)


def build_app(
    registry: SchemaRegistry, access: Access | None = None, keys: DekRegistry | None = None
) -> Starlette:
    """`keys`: the DEK registry, served under `/dek-registry/v1` (None: not served)."""
    routes = [
        Route("/", _root, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        *subjects.ROUTES,
        *schemas.ROUTES,
        *config.ROUTES,
        *mode.ROUTES,
        *compatibility.ROUTES,
        *(dek.ROUTES if keys is not None else []),
    ]
    middleware = [Middleware(RawPathRouting)]
    if access is not None:
        routes = [_guarded(route) for route in routes]
        middleware.append(Middleware(Authentication, access=access))
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={
            RegistryError: _registry_error,
            HTTPException: _http_error,
            Exception: _server_error,
        },
    )
    app.state.registry = registry
    app.state.access = access
    app.state.keys = keys
    app.state.counts = RegistryCounts()
    return app
