"""The security audit: one line per administrative change, refused attempt at one,
authorization denial (from the pipeline's authorize stage, with the operation),
authentication, and allowed read or write of an audited topic.

    audit <Api> <resource>="<name>" result=<ERROR_NAME> client_id="<id>"
    peer=<host:port> principal="User:alice" [key=value ...]

Handlers record each change with the resource it named and its result; every string is
quoted and escaped (logsafe.py), numbers are not. The lines go to the `contextplane.audit`
logger, and each event is also one CloudEvents record (`audit_events.py`) offered to the
audit sink (`__contextplane_audit`, optionally a JSON-lines file), when there is one.

Entry points: `record` (administrative changes, from the handlers), `authorization`
(a decision, from the pipeline), `authentication` (for the SASL handlers: success or
failure of one exchange), `audits_access` (is an allowed read or write of this topic
recorded: `contextplane.audit.allowed.topics`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from contextplane.logsafe import escape
from contextplane.protocol.codec import api_name
from contextplane.protocol.error_codes import ErrorCode
from contextplane.security.audit_events import (
    AUTHENTICATION,
    AUTHORIZATION,
    CHANGE,
    cloud_event,
    decided_by,
)
from contextplane.security.authorizer import Action, AllowEverything, Authorizer
from contextplane.security.principal import Principal

if TYPE_CHECKING:
    from contextplane.broker.context import RequestContext

_log = logging.getLogger("contextplane.audit")
# Characters of one client-given string (a config value, a group id) an audit record keeps.
DETAIL_CHARS_MAX = 1024

# (key, value) of one audit record -> False when it was dropped (a full buffer)
Offer = Callable[[bytes, bytes], bool]


def _result(error: int) -> str:
    try:
        return ErrorCode(error).name.upper()
    except ValueError:
        return str(int(error))


class AuditLog:
    def __init__(
        self,
        offer: Offer | None = None,
        source: str = "contextplane",
        wall_ms: Callable[[], int] | None = None,
        authorizer: Authorizer | None = None,
        allowed_topics: str = "",
    ) -> None:
        self._offer = offer
        self._source = source
        self._wall_ms = wall_ms or (lambda: 0)
        self.authorizer: Authorizer = authorizer or AllowEverything()
        names = [n.strip() for n in allowed_topics.split(",") if n.strip()]
        self._audited_names = frozenset(n for n in names if not n.endswith("*"))
        self._audited_prefixes = tuple(n[:-1] for n in names if n.endswith("*"))
        self.audits_any_access = bool(names)

    # -- which allowed accesses are recorded ------------------------------------------------

    def audits_access(self, topic: str) -> bool:
        return topic in self._audited_names or topic.startswith(self._audited_prefixes)

    # -- entry points -----------------------------------------------------------------------

    def record(
        self,
        ctx: RequestContext,
        api: str,
        resource: str,
        name: object,
        error: int = ErrorCode.none,
        details: Mapping[str, object] | None = None,
    ) -> None:
        """`api` is the Kafka API (CreateTopics, DeleteGroups, ...), `resource` what it
        changed (topic, partition, group)."""
        result = _result(error)
        self._line(ctx, api, resource, name, result, details)
        data = self._who(ctx) | {
            "api": api,
            "resource_type": resource.upper(),
            "resource_name": _bounded(name),
            "result": result,
            "decision": "ALLOWED" if error == ErrorCode.none else "FAILED",
        }
        data.update(
            {k: v if isinstance(v, int) else _bounded(v) for k, v in (details or {}).items()}
        )
        self._emit(CHANGE, f"{resource}:{_bounded(name)}", data)

    def authorization(
        self, ctx: RequestContext, action: Action, allowed: bool, error: int = ErrorCode.none
    ) -> None:
        """One authorization decision: a denial (with the request's error), or an allowed
        read or write of an audited topic."""
        api = api_name(ctx.header.api_key)
        resource = action.resource_type.name.lower()
        operation = {"operation": action.operation.name}
        if not allowed:
            self._line(ctx, api, resource, action.name, _result(error), operation)
        data = self._who(ctx) | {
            "api": api,
            "operation": action.operation.name,
            "resource_type": action.resource_type.name,
            "resource_name": action.name,
            "decision": "ALLOWED" if allowed else "DENIED",
            "acl": decided_by(self.authorizer, ctx.principal, ctx.client_host, action),
        }
        if not allowed:
            data["result"] = _result(error)
        self._emit(AUTHORIZATION, f"{resource}:{action.name}", data)

    def authentication(
        self,
        *,
        peer: str,
        listener: str,
        mechanism: str,
        principal: Principal | None,
        success: bool,
        client_id: str = "",
        error: int = ErrorCode.none,
        reason: str = "",
    ) -> None:
        """One SASL (or mutual TLS) authentication, successful or not: the SASL
        handlers call this once per exchange."""
        who = str(principal) if principal is not None else ""
        result = "SUCCESS" if success else _result(error) if error else "FAILURE"
        _log.info(
            "audit authentication mechanism=%s result=%s client_id=%s peer=%s principal=%s%s",
            escape(mechanism, quote=True),
            result,
            escape(client_id, quote=True),
            escape(peer),
            escape(who, quote=True),
            f" reason={escape(reason, quote=True)}" if reason else "",
        )
        data: dict[str, object] = {
            "principal": who or None,
            "client_address": peer,
            "client_id": client_id,
            "listener": listener,
            "operation": "AUTHENTICATE",
            "mechanism": mechanism,
            "decision": "ALLOWED" if success else "DENIED",
            "result": result,
        }
        if reason:
            data["reason"] = reason
        self._emit(AUTHENTICATION, f"principal:{who}", data)

    # -- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _who(ctx: RequestContext) -> dict[str, object]:
        return {
            "principal": str(ctx.principal),
            "client_address": ctx.peer,
            "client_id": ctx.header.client_id,
            "listener": ctx.connection.listener,
        }

    @staticmethod
    def _line(
        ctx: RequestContext,
        api: str,
        resource: str,
        name: object,
        result: str,
        details: Mapping[str, object] | None,
    ) -> None:
        fields = [
            f"audit {api} {resource}={escape(_bounded(name), quote=True)} result={result}",
            f"client_id={escape(ctx.header.client_id, quote=True)} peer={escape(ctx.peer)}",
            f"principal={escape(str(ctx.principal), quote=True)}",
        ]
        for key, value in (details or {}).items():
            text = str(value) if isinstance(value, int) else escape(_bounded(value), quote=True)
            fields.append(f"{key}={text}")
        _log.info(" ".join(fields))

    def _emit(self, event_type: str, subject: str, data: Mapping[str, object]) -> None:
        if self._offer is None:
            return
        now = self._wall_ms()
        self._offer(subject.encode(), cloud_event(self._source, event_type, subject, now, data))


def _bounded(value: object) -> str:
    """A client-given string as an audit record keeps it: at most DETAIL_CHARS_MAX
    characters and the length of the rest (an 8.9 MB config value must not become an
    8.9 MB log line or audit record)."""
    text = str(value)
    if len(text) <= DETAIL_CHARS_MAX:
        return text
    return f"{text[:DETAIL_CHARS_MAX]}...(+{len(text) - DETAIL_CHARS_MAX} chars)"
