"""Allowed writes of the topics `contextplane.audit.allowed.topics` names: one audit
record per topic of a Produce (WRITE) that the authorize stage let through. Allowed reads
are recorded by the Fetch handler (`audit_allowed_read`) only for topics whose records it
returns, so an idle consumer's long polls write nothing. Denials are recorded by the
authorize stage itself."""

from __future__ import annotations

from typing import Any

from contextplane.broker.context import RequestContext
from contextplane.security.acls import Operation, ResourceType
from contextplane.security.authorizer import Action

PRODUCE_KEY = 0


def audit_allowed_access(ctx: RequestContext, body: Any) -> None:
    """The pipeline's call, after the authorize stage, for every request."""
    if ctx.header.api_key != PRODUCE_KEY:
        return
    audit = ctx.audit
    for name in dict.fromkeys(topic.name for topic in body.topic_data):
        if audit.audits_access(name) and not ctx.denied(ResourceType.TOPIC, name):
            audit.authorization(ctx, Action(Operation.WRITE, ResourceType.TOPIC, name), True)


def audit_allowed_read(ctx: RequestContext, topics: set[str]) -> None:
    """The Fetch handler's call with the topics whose records it returns."""
    audit = ctx.audit
    for name in sorted(topics):
        if audit.audits_access(name):
            audit.authorization(ctx, Action(Operation.READ, ResourceType.TOPIC, name), True)
