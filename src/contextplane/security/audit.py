"""The security audit: one line per administrative change, refused attempt at one,
authentication, allowed read or write of an audited topic, and per request's
authorization denials of one operation, resource type and error (from the pipeline's
authorize stage: the first name, and `denied=N` when the request named more; each
principal's denial lines and records are bound per second, `denial_limit.py`).

    audit <Api> <resource>="<name>" result=<ERROR_NAME> client_id="<id>"
    peer=<host:port> principal="User:alice" [key=value ...]

Handlers record each change with the resource it named and its result; every string is
quoted and escaped (logsafe.py), numbers are not. The lines go to the `contextplane.audit`
logger, and each event is also one CloudEvents record (`audit_events.py`) offered to the
audit sink (`__contextplane_audit`, optionally a JSON-lines file), when there is one.

Entry points: `record` (administrative changes, from the handlers), `denials` (a
request's denials, from the pipeline), `authorization` (an allowed access),
`authentication` (for the SASL handlers: success or failure of one exchange),
`certificate_authentication` (for the listener: a client certificate accepted or
refused; refusals bound per client address),
`service_request` (a change or denial of a service beside the broker: the schema
registry), `report_suppressed` (from the sink's flusher), `audits_access` (is an allowed read or
write of this topic recorded: `contextplane.audit.allowed.topics`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from contextplane import limits
from contextplane.logsafe import escape
from contextplane.protocol.codec import api_name
from contextplane.protocol.error_codes import ErrorCode
from contextplane.security.audit_events import (
    AUTHENTICATION,
    AUTHORIZATION,
    CHANGE,
    SUPPRESSED,
    cloud_event,
    decided_by,
)
from contextplane.security.authorizer import Action, AllowEverything, Authorizer
from contextplane.security.denial_limit import DenialLimit
from contextplane.security.principal import Principal

if TYPE_CHECKING:
    from contextplane.broker.context import RequestContext

_log = logging.getLogger("contextplane.audit")
# Characters of one client-given string (a config value, a group id) an audit record keeps.
DETAIL_CHARS_MAX = 1024

# Denied resource names one denial record lists; the rest are counted. Each listed name
# keeps NAME_CHARS_LISTED characters (Kafka's topic names stop at 249), so a record stays
# about 30 KB whatever names a client sends.
DENIED_NAMES_LISTED = limits.AUDIT_DENIED_NAMES_LISTED
NAME_CHARS_LISTED = 256
# Characters of a client's identifiers (client id, group id, SASL user name, transactional
# id) a record or a read receipt keeps: a client id may be 32,767 characters, and a
# control character becomes a 6-byte JSON escape, so copied whole it made each record
# ~197 KB.
CLIENT_CHARS_MAX = 256

# (key, value) of one audit record -> False when it was dropped (a full buffer)
Offer = Callable[[bytes, bytes], bool]
# One denial of a request: the action and the error the request answers it with.
Denial = tuple[Action, int]


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
        denial_records_per_second: int = limits.AUDIT_DENIAL_RECORDS_PER_SECOND,
    ) -> None:
        self._offer = offer
        self._source = source
        self._wall_ms = wall_ms or (lambda: 0)
        self.authorizer: Authorizer = authorizer or AllowEverything()
        names = [n.strip() for n in allowed_topics.split(",") if n.strip()]
        self._audited_names = frozenset(n for n in names if not n.endswith("*"))
        self._audited_prefixes = tuple(n[:-1] for n in names if n.endswith("*"))
        self.audits_any_access = bool(names)
        self.denial_limit = DenialLimit(denial_records_per_second)
        # Refused client certificates, per client address: a client without a usable
        # certificate can reconnect in a loop, so these are bound as denials are.
        self.certificate_failure_limit = DenialLimit(denial_records_per_second)
        # Failed SASL authentications, per client address, bound the same way: they need
        # no credentials at all, and unbound they rotated older records out of the topic.
        self.sasl_failure_limit = DenialLimit(denial_records_per_second)
        # What a test or an operator reads: denial records not written (rate bound).
        self.suppressed_records = 0

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
        """One authorization decision: an allowed read or write of an audited topic (one
        record each, never rate-bound), or a denial (as `denials`)."""
        if not allowed:
            self.denials(ctx, [(action, error)])
            return
        data = self._decision(ctx, action, "ALLOWED")
        self._emit(AUTHORIZATION, f"{action.resource_type.name.lower()}:{action.name}", data)

    def denials(self, ctx: RequestContext, denied: Sequence[Denial]) -> None:
        """The denials of one request: one record (and one log line) per operation,
        resource type and error, naming the first DENIED_NAMES_LISTED resources and
        counting the rest, so a request naming 20,000 denied topics writes one record,
        not 20,000. Each principal's denial records are bound per second
        (`DenialLimit`); what the bound holds back is counted and summarised."""
        groups: dict[tuple[object, object, int], list[Action]] = {}
        for action, error in denied:
            key = (action.operation, action.resource_type, int(error))
            groups.setdefault(key, []).append(action)
        principal = str(ctx.principal)
        now = self._wall_ms()
        self.report_suppressed()
        for (_, _, error), actions in groups.items():
            if not self.denial_limit.admit(principal, len(actions), now):
                self.suppressed_records += 1
                continue
            self._denial(ctx, actions, error)

    def service_request(
        self,
        *,
        service: str,
        principal: str,
        peer: str,
        api: str,
        operation: str,
        resource_type: str,
        resource_name: str,
        allowed: bool,
        result: str,
        acl: str = "",
    ) -> None:
        """One request to a service beside the broker (`service`: the schema registry)
        by the principal it authenticated: a change it made, allowed with its `result`
        (FAILED unless the result is a 2xx status), or a denial (`acl` the one that
        decided), bound per principal as the broker's denials are."""
        if not allowed:
            self.report_suppressed()
            if not self.denial_limit.admit(principal, 1, self._wall_ms()):
                self.suppressed_records += 1
                return
        who = bounded_client(principal)
        name = _bounded(resource_name)
        _log.info(
            "audit %s %s=%s result=%s peer=%s principal=%s operation=%s listener=%s",
            escape(api),
            resource_type.lower(),
            escape(name, quote=True),
            escape(result),
            escape(peer),
            escape(who, quote=True),
            operation,
            escape(service),
        )
        decision = "DENIED" if not allowed else "ALLOWED" if result.startswith("2") else "FAILED"
        data: dict[str, object] = {
            "principal": who,
            "client_address": peer,
            "client_id": None,
            "listener": service,
            "api": api,
            "operation": operation,
            "resource_type": resource_type,
            "resource_name": name,
            "decision": decision,
            "result": result,
        }
        if acl:
            data["acl"] = acl
        event_type = AUTHORIZATION if not allowed else CHANGE
        self._emit(event_type, f"{resource_type.lower()}:{name}", data)

    def report_suppressed(self, force: bool = False) -> None:
        """Once a rate window has ended (or at a stop, with `force`): one record and one
        log line per principal whose denial records the bound held back, and per client
        address whose refused certificates it held back."""
        self._report_failures_suppressed(self.certificate_failure_limit, "SSL", force)
        self._report_failures_suppressed(self.sasl_failure_limit, "SASL", force)
        for lost in self.denial_limit.ended(self._wall_ms(), force):
            _log.warning(
                "audit suppressed %d denial records (%d denied resources) of %s in the "
                "last %d ms (contextplane.audit.denial.records.per.second=%d)",
                lost.records,
                lost.resources,
                escape(lost.principal, quote=True),
                lost.window_ms,
                self.denial_limit.records_per_second,
            )
            data = {
                "principal": lost.principal,
                "decision": "DENIED",
                "suppressed_records": lost.records,
                "suppressed_resources": lost.resources,
                "window_ms": lost.window_ms,
                "limit_per_second": self.denial_limit.records_per_second,
            }
            self._emit(SUPPRESSED, f"principal:{lost.principal}", data)

    def certificate_authentication(
        self,
        *,
        peer: str,
        host: str,
        listener: str,
        principal: Principal | None,
        subject: str | None,
        reason: str = "",
    ) -> None:
        """One mutual TLS authentication: a client certificate accepted (`principal`
        after ssl.principal.mapping.rules) or refused (`principal` None, `reason`).
        Refusals are bound per client address and second as denials are
        (`contextplane.audit.denial.records.per.second`); the rest are counted and
        summarised when the window ends."""
        if principal is None:
            self.report_suppressed()
            if not self.certificate_failure_limit.admit(host, 1, self._wall_ms()):
                self.suppressed_records += 1
                return
        self.authentication(
            peer=peer,
            listener=listener,
            mechanism="SSL",
            principal=principal,
            success=principal is not None,
            reason=reason,
            subject=subject,
        )

    def sasl_failure(
        self,
        *,
        peer: str,
        host: str,
        listener: str,
        mechanism: str,
        client_id: str,
        error: int,
        reason: str,
    ) -> None:
        """One failed SASL authentication. Failures are bound per client address and
        second as denials are (`contextplane.audit.denial.records.per.second`); the rest
        are counted and summarised when the window ends. Successes are never bound."""
        self.report_suppressed()
        if not self.sasl_failure_limit.admit(host, 1, self._wall_ms()):
            self.suppressed_records += 1
            return
        self.authentication(
            peer=peer,
            listener=listener,
            mechanism=mechanism,
            principal=None,
            success=False,
            client_id=client_id,
            error=error,
            reason=reason,
        )

    def _report_failures_suppressed(self, limit: DenialLimit, kind: str, force: bool) -> None:
        """`kind`: SSL (refused client certificates) or SASL (failed logins)."""
        for lost in limit.ended(self._wall_ms(), force):
            _log.warning(
                "audit suppressed %d failed %s authentication records from %s in the "
                "last %d ms (contextplane.audit.denial.records.per.second=%d)",
                lost.records,
                kind,
                escape(lost.principal),
                lost.window_ms,
                limit.records_per_second,
            )
            data = {
                "client_address": lost.principal,
                "operation": "AUTHENTICATE",
                "mechanism": kind,
                "decision": "DENIED",
                "suppressed_records": lost.records,
                "window_ms": lost.window_ms,
                "limit_per_second": limit.records_per_second,
            }
            self._emit(SUPPRESSED, f"client_address:{lost.principal}", data)

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
        subject: str | None = None,
    ) -> None:
        """One SASL or mutual TLS authentication, successful or not: the SASL
        handlers call this once per exchange (`subject`: a client certificate's)."""
        who = str(principal) if principal is not None else ""
        result = "SUCCESS" if success else _result(error) if error else "FAILURE"
        _log.info(
            "audit authentication mechanism=%s result=%s client_id=%s peer=%s principal=%s%s",
            escape(mechanism, quote=True),
            result,
            escape(bounded_client(client_id), quote=True),
            escape(peer),
            escape(bounded_client(who), quote=True),
            f" reason={escape(_bounded(reason), quote=True)}" if reason else "",
        )
        data: dict[str, object] = {
            "principal": bounded_client(who) or None,
            "client_address": peer,
            "client_id": bounded_client(client_id),
            "listener": listener,
            "operation": "AUTHENTICATE",
            "mechanism": mechanism,
            "decision": "ALLOWED" if success else "DENIED",
            "result": result,
        }
        if subject is not None:
            data["subject"] = _bounded(subject)
        if reason:
            data["reason"] = _bounded(reason)
        self._emit(AUTHENTICATION, f"principal:{bounded_client(who)}", data)

    # -- helpers ---------------------------------------------------------------------------

    def _decision(self, ctx: RequestContext, action: Action, decision: str) -> dict[str, object]:
        return self._who(ctx) | {
            "api": api_name(ctx.header.api_key),
            "operation": action.operation.name,
            "resource_type": action.resource_type.name,
            "resource_name": _bounded(action.name),
            "decision": decision,
            "acl": decided_by(self.authorizer, ctx.principal, ctx.client_host, action),
        }

    def _denial(self, ctx: RequestContext, actions: list[Action], error: int) -> None:
        """One denial record: the first action in full (with the ACL that decided), the
        first DENIED_NAMES_LISTED names, the count of the rest."""
        first = actions[0]
        resource = first.resource_type.name.lower()
        result = _result(error)
        listed = actions[:DENIED_NAMES_LISTED]
        omitted = len(actions) - len(listed)
        details: dict[str, object] = {"operation": first.operation.name}
        if len(actions) > 1:
            details["denied"] = len(actions)
        self._line(ctx, api_name(ctx.header.api_key), resource, first.name, result, details)
        data = self._decision(ctx, first, "DENIED")
        data["result"] = result
        data["resource_names"] = [_bounded(a.name, NAME_CHARS_LISTED) for a in listed]
        data["resource_count"] = len(actions)
        data["resource_names_omitted"] = omitted
        reasons = {
            _bounded(a.name, NAME_CHARS_LISTED): reason
            for a in listed[1:]
            if (reason := decided_by(self.authorizer, ctx.principal, ctx.client_host, a))
            != data["acl"]
        }
        if reasons:
            data["acl_by_name"] = reasons  # where a listed name was decided otherwise
        self._emit(AUTHORIZATION, f"{resource}:{_bounded(first.name)}", data)

    @staticmethod
    def _who(ctx: RequestContext) -> dict[str, object]:
        return {
            "principal": bounded_client(str(ctx.principal)),
            "client_address": ctx.peer,
            "client_id": bounded_client(ctx.header.client_id),
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
            f"client_id={escape(bounded_client(ctx.header.client_id), quote=True)}",
            f"peer={escape(ctx.peer)}",
            f"principal={escape(bounded_client(str(ctx.principal)), quote=True)}",
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


def _bounded(value: object, chars_max: int = DETAIL_CHARS_MAX) -> str:
    """A client-given string as an audit record keeps it: at most DETAIL_CHARS_MAX
    characters and the length of the rest (an 8.9 MB config value must not become an
    8.9 MB log line or audit record)."""
    text = str(value)
    if len(text) <= chars_max:
        return text
    return f"{text[:chars_max]}...(+{len(text) - chars_max} chars)"


def bounded_client(value: str | None) -> str | None:
    """A client's identifier (client id, group id, user name, transactional id) as a
    record keeps it: CLIENT_CHARS_MAX characters and the length of the rest."""
    return None if value is None else _bounded(value, CLIENT_CHARS_MAX)
