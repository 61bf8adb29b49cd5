"""The request pipeline: every request goes through the same ordered stages.

    route → authentication state → topic ids → authorize → quota → handle → audit

* route: the API key and version must be in the route table (else the connection is
  closed, as Kafka closes it; ApiVersions of an unknown version is answered in v0 form by
  the server before it gets here).
* authentication state: the connection must have completed what its listener requires
  (SASL) before it may call anything but the authentication APIs: the connection's
  state (`protocol/connection_state.py`) takes the request or closes the connection; a
  SASL session past its lifetime (connections.max.reauth.ms) is closed here too.
* topic ids: the ids of topics a request names by id (Fetch v13+, ...) that the topic
  table lacks are read from the store in a cluster, within bounds
  (`broker/topic_lookup.py`): a topic another broker just created is served by id here
  at once, not after the next heartbeat.
* authorize: the one place the authorizer is asked. Each route declares what its
  request needs (`broker/authorization.py`); every action is decided in one call. A
  refused gate answers the whole request here (e.g. CLUSTER_AUTHORIZATION_FAILED for
  CreateAcls); per-resource verdicts go to the handler (`ctx.denied`), which answers
  Kafka's error for that resource. Every refused need is audited (principal, operation,
  resource): one record per operation, resource type and error of the request, naming
  the first 100 resources and counting the rest, within a per-principal rate
  (`security/denial_limit.py`). With no authorizer nothing is asked. A handler that
  learns what to filter only as it runs (the topics a consumer group's regex matches)
  asks here too, through `allowed_late` (or `decide_late`, into its verdicts): one
  call, quietly.
* quota: how long the client is to be throttled for request_percentage
  (`ctx.throttle_ms`; Produce and Fetch add their byte-rate quotas with `ctx.throttle`),
  reported by the handler in throttle_time_ms together with its own (storage
  back-pressure on produce); the connection is muted that long once the response is
  sent (`broker/throttle.py`). The handler's time is then counted against the quota.
* handle: the route's handler, which returns a `Reply`.
* audit: administrative changes are recorded by their handlers through `ctx.audit`
  (only they know each resource's result), denials by the authorize stage, allowed
  reads and writes of audited topics after it (`access_audit.py`), read receipts by the
  Fetch handler; every request is logged at DEBUG here. With the audit sink full and
  `contextplane.audit.overflow.policy=fail-closed`, a request (but ApiVersions) closes
  its connection before any of this.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from contextplane.broker.access_audit import audit_allowed_access
from contextplane.broker.authorization import (
    Needs,
    NeedsOf,
    Refusal,
    nothing,
    refuse_top_level,
)
from contextplane.broker.context import ConnectionInfo, Reply, RequestContext, Services
from contextplane.broker.topic_ids import TopicIdsOf
from contextplane.clock import elapsed_ns
from contextplane.errors import ProtocolError
from contextplane.logsafe import escape
from contextplane.protocol.build import build
from contextplane.protocol.codec import (
    API_VERSIONS_KEY,
    Request,
    RequestHeader,
    response_schema,
)
from contextplane.protocol.connection_state import SASL_HANDSHAKE_KEY, State
from contextplane.protocol.error_codes import ErrorCode
from contextplane.security.acls import Operation, ResourceType, denial_error
from contextplane.security.audit import Denial
from contextplane.security.authorizer import Action

log = logging.getLogger(__name__)

# OffsetCommit, JoinGroup, SyncGroup: a read receipt names the last group the client
# joined or committed for (Fetch has no group id).
GROUP_MEMBERSHIP_KEYS = frozenset({8, 11, 14})

Handler = Callable[[RequestContext, Any], Awaitable[Reply]]


@dataclass(frozen=True, slots=True)
class Route:
    api_key: int
    min_version: int
    max_version: int
    handler: Handler
    needs: NeedsOf = nothing  # what its request needs authorized
    refuse: Refusal = refuse_top_level  # its answer when a gate is refused
    advertised: bool = True  # listed by ApiVersions (contextplane's own APIs are not)
    topic_ids: TopicIdsOf | None = None  # the topic ids its request may name


class Pipeline:
    def __init__(self, services: Services, routes: list[Route]) -> None:
        self.services = services
        self.routes = {r.api_key: r for r in routes}
        self._advertised: tuple[tuple[Route, ...], list[dict[str, int]]] | None = None

    def api_versions(self) -> list[dict[str, int]]:
        """What ApiVersions advertises: exactly the Kafka routes, nothing more (one list, the
        same object every time while the routes stay the same: its encoding is cached)."""
        routes = tuple(r for r in self.routes.values() if r.advertised)
        if self._advertised is None or self._advertised[0] != routes:
            listed = [
                {"api_key": r.api_key, "min_version": r.min_version, "max_version": r.max_version}
                for r in sorted(routes, key=lambda r: r.api_key)
            ]
            self._advertised = (routes, listed)
        return self._advertised[1]

    async def dispatch(self, request: Request, connection: ConnectionInfo) -> Reply:
        header = request.header
        route = self.routes.get(header.api_key)
        if route is None or not route.min_version <= header.api_version <= route.max_version:
            raise ProtocolError(
                f"api key {header.api_key} version {header.api_version} is not supported"
            )
        session = connection.sasl
        if session is not None and session.expires_ms is not None:
            self._check_session(session.expires_ms, header.api_key, connection)
        # Authentication state: ProtocolError (close) for a request this state refuses.
        connection.state.process_request(header.api_key)
        services = self.services
        sink = services.audit_sink
        if sink is not None and header.api_key != API_VERSIONS_KEY and sink.refusing():
            # Fail closed: nothing that would be audited happens unrecorded. Kafka has no
            # error code for it; the client reconnects and retries, as after a restart.
            raise ProtocolError(
                "the audit buffer is full (contextplane.audit.overflow.policy=fail-closed)"
            )
        ctx = RequestContext(services, header, connection)
        dropped_before = sink.dropped if sink is not None else 0
        if route.topic_ids is not None:
            # Ids of topics another broker created since the last heartbeat: read from the
            # store (bounded) before the ids are resolved to names to be authorized.
            topics = services.topics
            unknown = topics.unknown_ids(route.topic_ids(header.api_version, request.body))
            if unknown:
                await topics.find_missing_ids(unknown)
        if services.authorizer.enabled:
            refused_gate = self._authorize(ctx, route.needs(ctx, request.body))
            if refused_gate is not None:
                return route.refuse(ctx, request.body, refused_gate)
        if services.audit.audits_any_access:
            audit_allowed_access(ctx, request.body)
        if sink is not None and sink.fail_closed and sink.dropped != dropped_before:
            # This request's own records filled the buffer (one request can name
            # thousands of topics): it must not take effect with records missing.
            raise ProtocolError(
                "the audit buffer filled while recording this request "
                "(contextplane.audit.overflow.policy=fail-closed)"
            )
        quotas = services.quotas
        ctx.throttle(quotas.throttle_ms(connection.principal, header.client_id, header.api_key))
        started = elapsed_ns()
        spans = services.spans
        if spans is not None and spans.traces(header.api_key):
            reply = await spans.handle(ctx, route.handler, request.body)
        else:
            reply = await route.handler(ctx, request.body)
        quotas.handled(connection.principal, header.client_id, elapsed_ns() - started)
        if services.receipts is not None and header.api_key in GROUP_MEMBERSHIP_KEYS:
            services.receipts.saw_group(ctx, request.body.group_id)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "api key %d v%d correlation %d client %s from %s by %s",
                header.api_key,
                header.api_version,
                header.correlation_id,
                escape(header.client_id),
                connection.peer,
                connection.principal,
            )
        return reply

    def _check_session(self, expires_ms: int, api_key: int, connection: ConnectionInfo) -> None:
        """A SASL session past its lifetime (connections.max.reauth.ms, or the expiry of
        the OAUTHBEARER token it authenticated with) that has not
        re-authenticated is closed on its next request but a SaslHandshake, as Kafka's
        SocketServer closes an expired channel."""
        if api_key == SASL_HANDSHAKE_KEY or connection.state.state is not State.READY:
            return
        if self.services.clock.monotonic_ms() >= expires_ms:
            raise ProtocolError(
                f"the SASL session of {connection.principal} expired "
                "(connections.max.reauth.ms, or its OAUTHBEARER token's expiry) without "
                "re-authentication"
            )

    def _authorize(self, ctx: RequestContext, needs: Needs) -> ErrorCode | None:
        """Decide every action the request needs in one call; the gate's error if the
        whole request is refused, else None with the verdicts on `ctx`."""
        actions: dict[Action, None] = {}
        gate = needs.gate
        if gate is not None:
            actions.update(dict.fromkeys(gate.any_of))
        for need in needs.resources:
            actions[need.action] = None
            if need.unless is not None:
                actions[need.unless] = None
        actions.update(dict.fromkeys(needs.quiet))
        authorizer = self.services.authorizer
        principal = ctx.principal
        host = ctx.client_host
        asked = list(actions)
        answers = authorizer.authorize(principal, host, asked)
        ctx.verdicts = verdicts = dict(zip(asked, answers, strict=True))
        if gate is not None and not any(verdicts[a] for a in gate.any_of):
            by_type = gate.any_of_type
            if by_type is None or not authorizer.allowed_on_any(principal, host, *by_type):
                refused = gate.any_of[0]
                ctx.audit.denials(ctx, [(refused, gate.error)])
                self.services.stats.denied(refused.operation.name, refused.resource_type.name)
                return gate.error
        denied: list[Denial] = []
        for need in needs.resources:
            action = need.action
            if verdicts[action] or (need.unless is not None and verdicts[need.unless]):
                continue
            ctx.refused.add((action.resource_type, action.name))
            ctx.refused_actions.add((action.operation, action.resource_type, action.name))
            denied.append((action, denial_error(action.resource_type)))
            self.services.stats.denied(action.operation.name, action.resource_type.name)
        if denied:
            # One record per operation, resource type and error, however many names.
            ctx.audit.denials(ctx, denied)
        return None

    def unsupported_version(self, header: RequestHeader, connection: ConnectionInfo) -> Any:
        """Kafka answers an ApiVersions request of an unknown version with a v0 response
        (UNSUPPORTED_VERSION and its version list) wherever the connection's state takes
        ApiVersions, without moving that state; None for anything else: the connection
        is closed."""
        if header.api_key != API_VERSIONS_KEY or not connection.state.allows(header.api_key):
            return None
        return build(
            response_schema(API_VERSIONS_KEY, 0),
            error_code=ErrorCode.unsupported_version,
            api_keys=self.api_versions(),
        )


def allowed_late(
    ctx: RequestContext, operation: Operation, resource_type: ResourceType, names: frozenset[str]
) -> frozenset[str]:
    """The names the principal may `operation`, decided in one call and quietly (no audit
    line: Kafka's logIfDenied=false filters), for resources no route can name before its
    handler runs."""
    authorizer = ctx.services.authorizer
    if not authorizer.enabled or not names:
        return names
    ordered = list(names)
    actions = [Action(operation, resource_type, name) for name in ordered]
    answers = authorizer.authorize(ctx.principal, ctx.client_host, actions)
    return frozenset(n for n, ok in zip(ordered, answers, strict=True) if ok)


def decide_late(ctx: RequestContext, actions: list[Action]) -> None:
    """Decide `actions` quietly, in one call, into the request's verdicts (`ctx.allowed`,
    `ctx.authorized_operations`): for decisions only the handler can name, such as the
    authorized operations of the topics one page of a response lists."""
    authorizer = ctx.services.authorizer
    asked = [action for action in actions if action not in ctx.verdicts]
    if not authorizer.enabled or not asked:
        return
    answers = authorizer.authorize(ctx.principal, ctx.client_host, asked)
    ctx.verdicts.update(zip(asked, answers, strict=True))
