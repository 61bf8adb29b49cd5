"""The web console's pages: server-rendered HTML (Jinja2, autoescaped), no script.

Each request copies what its page shows on the event loop (views.py), then renders the
template in a worker thread, at most `RENDERS_MAX` at once, so a large page does not hold
the loop. Topic and group names come from clients: the templates escape every value, and
links quote a name as one path segment.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from contextplane.broker.context import Services
from contextplane.console import (
    context_views,
    decision_traces,
    governance_views,
    security_events,
    views,
)
from contextplane.console.lag_chart import lag_chart_svg
from contextplane.console.object_usage import UsageReader
from contextplane.console.sampler import ConsoleSampler

RENDERS_MAX = 2
# Characters of a client-chosen name in a list's cell (a group id, a member or client id,
# an ACL's principal, resource name or host, a subject): Kafka bounds none of them below
# 32,767, and escaped and quoted for a link 500 rows of such ids made a 179 MiB page. A
# name cut here is not linked; its own page still has it whole.
NAME_SHOWN_MAX = 256
MEMBERS_SHOWN_MAX = 500  # a group's members listed on its page
CHILDREN_SHOWN_MAX = 500  # links under one node of a decision's trace tree
OVERVIEW_ROWS = 20  # topics and groups listed on the overview (the rest on their pages)


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(Path(__file__).with_name("templates")),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
    env.filters["segment"] = lambda name: quote(str(name), safe="")
    env.filters["cut"] = _cut
    env.tests["cut"] = lambda name: len(str(name)) > NAME_SHOWN_MAX
    env.globals["members_shown_max"] = MEMBERS_SHOWN_MAX
    env.filters["count"] = lambda n: "—" if n is None else f"{n:,}"
    env.filters["bytes"] = _human_bytes
    env.filters["rate"] = lambda r: f"{r:,.1f}"
    # A trace link's value as `contextplane trace` prints it: text as is, else JSON.
    env.filters["detail"] = lambda v: v if isinstance(v, str) else json.dumps(v)
    env.globals["lag_chart"] = lag_chart_svg
    return env


def _cut(name: str) -> str:
    text = str(name)
    return text if len(text) <= NAME_SHOWN_MAX else text[: NAME_SHOWN_MAX - 1] + "…"


def _human_bytes(n: float | None) -> str:
    if n is None:
        return "—"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n} B"  # unreachable


class ConsolePages:
    def __init__(self, services: Services, sampler: ConsoleSampler) -> None:
        self._services = services
        self._sampler = sampler
        self._env = _environment()
        self._renders = asyncio.Semaphore(RENDERS_MAX)
        self._usage = UsageReader(services)
        # One trace at a time: each may scan the ledger's topics for up to 10 s.
        self._traces = asyncio.Semaphore(1)

    def routes(self) -> list[Route]:
        return [
            Route("/", self.overview, methods=["GET"]),
            Route("/topics", self.topics, methods=["GET"]),
            Route("/topics/{name:path}", self.topic, methods=["GET"]),
            Route("/groups", self.groups, methods=["GET"]),
            Route("/groups/{group_id:path}", self.group, methods=["GET"]),
            Route("/schemas", self.schemas, methods=["GET"]),
            Route("/schemas/{subject:path}", self.subject, methods=["GET"]),
            Route("/acls", self.acls, methods=["GET"]),
            Route("/security", self.security, methods=["GET"]),
            Route("/storage", self.storage, methods=["GET"]),
            Route("/decisions", self.decisions, methods=["GET"]),
            Route("/decisions/{partition}/{offset}", self.decision, methods=["GET"]),
            Route("/views", self.context_views, methods=["GET"]),
        ]

    async def render(self, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        async with self._renders:
            page = self._env.get_template(template)
            text = await asyncio.to_thread(page.render, **context)
        return HTMLResponse(text, status_code=status_code)

    async def not_found(self, request: Request, exc: HTTPException) -> HTMLResponse:
        return await self.render("not_found.html", 404, what=request.url.path)

    async def overview(self, request: Request) -> HTMLResponse:
        services, sampler = self._services, self._sampler
        return await self.render(
            "overview.html",
            section="overview",
            o=views.overview(services, sampler),
            topics=views.topic_page(services, sampler, 1, OVERVIEW_ROWS).rows,
            groups=views.group_rows(services, sampler)[:OVERVIEW_ROWS],
        )

    async def topics(self, request: Request) -> HTMLResponse:
        page = views.topic_page(self._services, self._sampler, _page(request))
        return await self.render("topics.html", section="topics", page=page)

    async def topic(self, request: Request) -> HTMLResponse:
        name = request.path_params["name"]
        topic = views.topic_view(self._services, self._sampler, name)
        if topic is None:
            return await self.render("not_found.html", 404, what=f"topic {name}")
        partitions = views.paginate(topic.pop("partitions"), _page(request))
        return await self.render("topic.html", section="topics", t=topic, page=partitions)

    async def groups(self, request: Request) -> HTMLResponse:
        rows = views.group_rows(self._services, self._sampler)
        return await self.render(
            "groups.html",
            section="groups",
            page=views.paginate(rows, _page(request)),
            history=self._sampler.history,
        )

    async def group(self, request: Request) -> HTMLResponse:
        group_id = request.path_params["group_id"]
        group = await views.group_view(self._services, self._sampler, group_id, _page(request))
        if group is None:
            return await self.render("not_found.html", 404, what=f"group {group_id}")
        return await self.render(
            "group.html",
            section="groups",
            g=group,
            page=group.committed,
            history=self._sampler.history,
            interval_s=self._sampler.interval_s,
        )

    async def schemas(self, request: Request) -> HTMLResponse:
        services = self._services
        return await self.render(
            "schemas.html",
            section="schemas",
            page=await governance_views.subjects_page(services, _page(request)),
            rejections=governance_views.rejections(services),
            catalog_topic=services.schemas.topic,
        )

    async def subject(self, request: Request) -> HTMLResponse:
        subject = request.path_params["subject"]
        versions = await governance_views.subject_versions(self._services, subject, _page(request))
        if versions is None:
            return await self.render("not_found.html", 404, what=f"subject {subject}")
        return await self.render("subject.html", section="schemas", subject=subject, page=versions)

    async def acls(self, request: Request) -> HTMLResponse:
        rows = await governance_views.acl_rows(self._services)
        page = None if rows is None else views.paginate(rows, _page(request))
        return await self.render("acls.html", section="acls", page=page)

    async def security(self, request: Request) -> HTMLResponse:
        return await self.render(
            "security.html",
            section="security",
            events=await security_events.recent_events(self._services),
            shown=security_events.EVENTS_SHOWN,
            topic=security_events.AUDIT_TOPIC,
        )

    async def storage(self, request: Request) -> HTMLResponse:
        shown = await self._usage.page()
        topics = views.paginate(shown.pop("topics"), _page(request))
        return await self.render("storage.html", section="storage", page=topics, **shown)

    async def decisions(self, request: Request) -> HTMLResponse:
        return await self.render(
            "decisions.html",
            section="decisions",
            decisions=await decision_traces.recent_decisions(self._services),
            shown=decision_traces.DECISIONS_SHOWN,
            topic=decision_traces.DECISIONS_TOPIC,
        )

    async def decision(self, request: Request) -> HTMLResponse:
        partition = _number(request.path_params["partition"])
        offset = _number(request.path_params["offset"])
        what = f"decision at {request.path_params['partition']}/{request.path_params['offset']}"
        if partition is None or offset is None:
            return await self.render("not_found.html", 404, what=what)
        async with self._traces:
            tree = await decision_traces.decision_trace(self._services, partition, offset)
        if tree is None:
            return await self.render("not_found.html", 404, what=what)
        return await self.render(
            "decision.html",
            section="decisions",
            tree=tree.document(),
            where=decision_traces.where(partition, offset),
            children_max=CHILDREN_SHOWN_MAX,
        )

    async def context_views(self, request: Request) -> HTMLResponse:
        url = self._services.settings.console_context_url
        found: context_views.ServiceViews | None = None
        problem = None
        if url:
            try:
                found = await context_views.service_views(url)
            except context_views.ViewsUnavailable as exc:
                problem = str(exc)
        return await self.render(
            "views.html", section="views", url=url, found=found, problem=problem
        )


def _number(text: str) -> int | None:
    """A partition or offset in a path: ASCII digits, at most 19 of them (an int64)."""
    return int(text) if text.isascii() and text.isdigit() and len(text) < 20 else None


def _page(request: Request) -> int:
    """`?page=N`, 1 for anything else: ASCII digits only (`str.isdigit` also takes '²',
    which int() refuses), few enough that the number stays small."""
    value = request.query_params.get("page", "1")
    return int(value) if value.isascii() and value.isdigit() and len(value) < 10 else 1
