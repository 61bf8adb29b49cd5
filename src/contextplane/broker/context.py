"""What a request handler is given: typed services, the request header, the connection.

Handlers reach the broker only through these: `ctx.log` (partitions, append, read),
`ctx.topics`, `ctx.groups`, `ctx.producer_ids`, `ctx.transactions`, `ctx.cluster` (ids
and endpoints), `ctx.clock`, `ctx.settings`, and the security components
(`ctx.authorizer`, `ctx.audit`, `ctx.services.acls`, `ctx.services.quota_admin`). The
authorize stage's verdicts on what the route declared it needs are `ctx.denied(type,
name)` (answer that resource with Kafka's error) and `ctx.allowed`; a quota throttle is
added with `ctx.throttle(ms)`. The connection says who is asking (`ctx.principal`) and
on which listener. A handler returns a `Reply`: its response now, or an awaitable of it
(the waiting part of a produce, a long-poll fetch or a group join runs while the
connection handles its next request), or no response at all (acks=0).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from contextplane.broker.loopshare import is_large
from contextplane.broker.masking_policies import MaskingPolicies
from contextplane.broker.response_facts import response_facts
from contextplane.broker.schema_catalog import SchemaCatalog
from contextplane.broker.stats import BrokerStats
from contextplane.broker.throttle import ConnectionThrottle
from contextplane.broker.zones import ZoneCell
from contextplane.clock import Clock
from contextplane.errors import KafkaError
from contextplane.protocol.build import build
from contextplane.protocol.codec import Request, RequestHeader, encode_response, response_schema
from contextplane.protocol.connection_state import ConnectionState
from contextplane.protocol.encoded import Encoded, encoded
from contextplane.security.acls import (
    SUPPORTED_OPERATIONS,
    Operation,
    ResourceType,
    denial_error,
    denial_message,
)
from contextplane.security.authorizer import Action
from contextplane.security.principal import ANONYMOUS, Principal
from contextplane.settings import Settings

if TYPE_CHECKING:
    from contextplane.broker.audit_sink import AuditSink
    from contextplane.broker.dynamic_configs import DynamicBrokerConfigs
    from contextplane.broker.leaders import Leaders
    from contextplane.broker.metadata_cache import MetadataCache
    from contextplane.broker.read_receipts import ReadReceipts
    from contextplane.broker.request_spans import RequestSpans
    from contextplane.broker.topics import TopicManager
    from contextplane.cluster.controller import Controller
    from contextplane.cluster.forwarder import PartitionWriter
    from contextplane.cluster.peer_client import Peers
    from contextplane.cluster.registry import Registry
    from contextplane.cluster.zone_router import ZoneRouter
    from contextplane.coordinators.group import GroupCoordinator
    from contextplane.coordinators.producer_ids import ProducerIds
    from contextplane.coordinators.share_coordinator import ShareCoordinator
    from contextplane.coordinators.transactions import TransactionCoordinator
    from contextplane.security.acl_admin import AclAdmin
    from contextplane.security.audit import AuditLog
    from contextplane.security.authorizer import Authorizer
    from contextplane.security.quota_admin import QuotaAdmin
    from contextplane.security.quotas import Quotas
    from contextplane.security.sasl_authenticator import SaslAuthenticator, SaslSession
    from contextplane.security.scram_credentials import ScramCredentials
    from contextplane.storage.engine import StorageEngine
    from contextplane.storage.read_replica import ReadReplicas


@dataclass(slots=True)
class ClusterView:
    """What this broker tells clients about the cluster."""

    cluster_id: str
    node_id: int
    # The host and port this broker tells a client that came in on the named listener.
    advertised: Callable[[str], tuple[str, int]]
    api_versions: Callable[[], list[dict[str, int]]]  # ApiVersions' list, from the routes
    registry: Registry  # the live brokers Metadata and DescribeCluster list
    leaders: Leaders  # each partition's leader, as Metadata and KIP-951 errors name it
    rack: str | None = None  # broker.rack
    peers: Peers | None = None  # the inter-broker client (transaction verification)
    controller: Controller | None = None  # its writes count only while this broker leads
    replicas: ReadReplicas | None = None  # partitions served here as a read replica
    topic_change_waits: int = 0  # topic changes waiting to be shown (topic_propagation.py)


@dataclass(slots=True)
class Services:
    """Everything handlers may use, assembled once by `broker/app.py`."""

    settings: Settings
    clock: Clock
    log: StorageEngine
    topics: TopicManager
    groups: GroupCoordinator
    producer_ids: ProducerIds
    transactions: TransactionCoordinator
    cluster: ClusterView
    metadata_cache: MetadataCache
    authorizer: Authorizer
    quotas: Quotas
    audit: AuditLog
    acls: AclAdmin | None = None  # CreateAcls / DescribeAcls / DeleteAcls; None: no authorizer
    quota_admin: QuotaAdmin | None = None  # AlterClientQuotas / DescribeClientQuotas
    scram: ScramCredentials | None = None  # Describe/AlterUserScramCredentials, SCRAM logins
    sasl: SaslAuthenticator | None = None  # None: no SASL listener
    audit_sink: AuditSink | None = None  # the audit topics' bounded buffer
    receipts: ReadReceipts | None = None  # None: read receipts are off
    stats: BrokerStats = field(default_factory=BrokerStats)  # what /metrics reads
    schemas: SchemaCatalog = field(default_factory=SchemaCatalog)  # schema id validation
    masking: MaskingPolicies = field(default_factory=MaskingPolicies)  # masking per consumer
    spans: RequestSpans | None = None  # None: tracing is off (`tracing.py`)
    shares: ShareCoordinator | None = None  # share groups (KIP-932)
    broker_configs: DynamicBrokerConfigs | None = None  # dynamic broker configs (KIP-226)
    # The broker's own writes to partitions led here or elsewhere (dead letters); None:
    # appended here (tests that assemble services alone).
    writer: PartitionWriter | None = None
    # The pipeline's entry, for requests a peer hands over on a client's behalf
    # (ZoneProduce); set once the pipeline exists.
    dispatch: Callable[[Request, ConnectionInfo], Awaitable[Reply]] | None = None
    # Writes for other zones' leaders through the shared store (RFC 0004 §7); None: off.
    zone_router: ZoneRouter | None = None


@dataclass(slots=True)
class ConnectionInfo:
    """Who is on the other end of a connection, where they came in, and how far the
    connection is through what its listener requires (`state`: SASL handlers report
    their verdicts to it; the pipeline asks it whether a request may be handled)."""

    peer: str  # host:port
    listener: str = "PLAINTEXT"  # the listener's name (listeners=NAME://host:port)
    security_protocol: str = "PLAINTEXT"  # PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL
    principal: Principal = ANONYMOUS
    state: ConnectionState = field(default_factory=ConnectionState)
    # The mute owed once the next response is written (quota throttles, KIP-219).
    throttle: ConnectionThrottle = field(default_factory=ConnectionThrottle)
    sasl: SaslSession | None = None  # the SASL mechanism chosen, once it is
    # Run once the connection is gone, one per key (share sessions close with it).
    on_lost: dict[object, Callable[[], None]] = field(default_factory=dict)
    # The client's zone's byte counts (zones.py), from its first Produce or Fetch.
    zone: ZoneCell | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """A handler's result: exactly one of `body` (answer now), `later` (an awaitable of
    the body, awaited while the connection handles its next request) or neither (no
    response, as for acks=0 produce)."""

    body: Any = None
    later: Awaitable[Any] | None = None

    @property
    def silent(self) -> bool:
        return self.body is None and self.later is None


NO_RESPONSE = Reply()


@dataclass(slots=True)
class RequestContext:
    services: Services
    header: RequestHeader
    connection: ConnectionInfo
    throttle_ms: int = 0  # the quota stage's throttle for this request
    # The authorize stage's verdicts: every decision made for this request, and the
    # resources a declared need was refused on (empty with no authorizer).
    verdicts: dict[Action, bool] = field(default_factory=dict)
    refused: set[tuple[ResourceType, str]] = field(default_factory=set)
    # (operation, type, name) of each refused action: plain tuples, since a handler asks
    # `denied` once per resource and a request may name 20,000 refused topics.
    refused_actions: set[tuple[Operation, ResourceType, str]] = field(default_factory=set)
    # The request's OpenTelemetry span while it is traced (`request_spans.py`), else None.
    span: Any = None

    # -- the services, by name ----------------------------------------------------------

    @property
    def settings(self) -> Settings:
        return self.services.settings

    @property
    def clock(self) -> Clock:
        return self.services.clock

    @property
    def log(self) -> StorageEngine:
        return self.services.log

    @property
    def topics(self) -> TopicManager:
        return self.services.topics

    @property
    def groups(self) -> GroupCoordinator:
        return self.services.groups

    @property
    def producer_ids(self) -> ProducerIds:
        return self.services.producer_ids

    @property
    def transactions(self) -> TransactionCoordinator:
        return self.services.transactions

    @property
    def cluster(self) -> ClusterView:
        return self.services.cluster

    @property
    def authorizer(self) -> Authorizer:
        return self.services.authorizer

    @property
    def audit(self) -> AuditLog:
        return self.services.audit

    # -- the request and its connection -------------------------------------------------

    @property
    def api_version(self) -> int:
        return self.header.api_version

    @property
    def peer(self) -> str:
        return self.connection.peer

    @property
    def principal(self) -> Principal:
        return self.connection.principal

    def advertised(self) -> tuple[str, int]:
        """This broker's endpoint as the client knows it: the advertised endpoint of the
        listener the request came in on."""
        return self.services.cluster.advertised(self.connection.listener)

    @property
    def client_host(self) -> str:
        """The client's address without its port (what an ACL's host names)."""
        return self.connection.peer.rsplit(":", 1)[0]

    # -- the authorize stage's verdicts -------------------------------------------------

    def denied(
        self, resource_type: ResourceType, name: str, operation: Operation | None = None
    ) -> bool:
        """Was a need the route declared on this resource (for `operation`, if given)
        refused? The handler answers it with Kafka's error for its type."""
        if (resource_type, name) not in self.refused:
            return False
        if operation is None:
            return True
        return (operation, resource_type, name) in self.refused_actions

    def require(
        self, resource_type: ResourceType, name: str, operation: Operation | None = None
    ) -> None:
        """Raise Kafka's authorization error for this resource if `denied`."""
        if self.denied(resource_type, name, operation):
            raise KafkaError(denial_error(resource_type), denial_message(resource_type))

    def allowed(self, operation: Operation, resource_type: ResourceType, name: str) -> bool:
        """A decision the route asked for quietly (for filtering); True with no authorizer."""
        return self.verdicts.get(Action(operation, resource_type, name), True)

    def authorized_operations(self, resource_type: ResourceType, name: str) -> int:
        """Kafka's bit set of the operations the principal may perform on a resource
        (implied ones included), from decisions the route asked for quietly (every
        operation of SUPPORTED_OPERATIONS on it); all of them with no authorizer."""
        return sum(
            1 << op
            for op in SUPPORTED_OPERATIONS[resource_type]
            if self.allowed(op, resource_type, name)
        )

    def now_ms(self) -> int:
        return self.services.clock.wall_ms()

    def throttle(self, ms: int) -> int:
        """Throttle this request for a quota (at least `ms`): its response reports it and
        the connection is muted that long once the response is sent. The request's
        throttle so far."""
        if ms > self.throttle_ms:
            self.throttle_ms = ms
            self.connection.throttle.owe(ms)
        return self.throttle_ms

    def response(self, values: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        """This request's response entity, built from plain values for its version."""
        schema = response_schema(self.header.api_key, self.header.api_version)
        return build(schema, values, **kwargs)

    def reply(self, values: dict[str, Any] | None = None, **kwargs: Any) -> Reply:
        """The response, now."""
        return Reply(body=self.response(values, **kwargs))

    async def large_reply(self, items: int, **kwargs: Any) -> Reply:
        """The response to a request of `items` entries: built in a worker thread when
        there are many, so the event loop serves the other connections meanwhile."""
        if not is_large(items):
            return Reply(body=self.response(None, **kwargs))
        return Reply(body=await asyncio.to_thread(self.response, None, **kwargs))

    async def large_encoded_reply(self, items: int, **kwargs: Any) -> Reply:
        """`large_reply`, also encoded in the worker thread: for a response far larger
        than its request (DeleteAcls: a few filters, hundreds of thousands of entries),
        which the connection would otherwise encode on the loop."""
        if not is_large(items):
            return Reply(body=self.response(None, **kwargs))
        header = self.header

        def build_and_encode() -> Encoded:
            body = self.response(None, **kwargs)
            frame = encode_response(header.api_key, header.api_version, header.correlation_id, body)
            return encoded([frame], *response_facts(header.api_key, body))

        return Reply(body=await asyncio.to_thread(build_and_encode))


def later(awaitable: Awaitable[Any]) -> Reply:
    """The response, once `awaitable` gives it."""
    return Reply(later=awaitable)
