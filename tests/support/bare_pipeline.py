"""A pipeline of one route over services that allow everything: for tests (and benches)
of the listener and its connections with real sockets."""

from __future__ import annotations

from types import SimpleNamespace

from contextplane.broker.pipeline import Handler, Pipeline, Route
from contextplane.broker.stats import BrokerStats
from contextplane.security.audit import AuditLog
from contextplane.security.authorizer import AllowEverything
from contextplane.security.quotas import NoQuotas


def bare_pipeline(api_key: int, handler: Handler) -> Pipeline:
    """`handler` answers `api_key` (versions 0–4); no authorizer, quota or audit sink."""
    services = SimpleNamespace(
        authorizer=AllowEverything(),
        quotas=NoQuotas(),
        audit=AuditLog(),
        audit_sink=None,
        receipts=None,
        spans=None,
        stats=BrokerStats(),
    )
    return Pipeline(services, [Route(api_key, 0, 4, handler)])  # type: ignore[arg-type]
