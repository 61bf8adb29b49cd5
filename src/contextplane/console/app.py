"""The HTTP surface's routes: `GET /metrics` in Prometheus's text format, and the web
console's pages (console/pages.py) beside it."""

from __future__ import annotations

from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from contextplane.console.metrics import BrokerMetrics
from contextplane.console.pages import ConsolePages


def build_app(metrics: BrokerMetrics, pages: ConsolePages) -> Starlette:
    async def scrape(request: Request) -> Response:
        # The classic text format: every Prometheus (2.x too) reads it; the names written
        # here need none of 1.0.0's quoting.
        return Response(await metrics.exposition(), media_type=CONTENT_TYPE_PLAIN_0_0_4)

    return Starlette(
        routes=[Route("/metrics", scrape, methods=["GET"]), *pages.routes()],
        exception_handlers={404: pages.not_found},
    )
