"""The broker's own writes to a partition wherever it is led (RFC 0004, "Brokers' own
writes across brokers as built"): audit records and read receipts (`audit_sink.py`),
schema dead letters (`dead_letters.py`) and share groups' dead letters
(`share_dead_letters.py`).

A partition led here (or with no live leader known: the engine then answers
NOT_LEADER_OR_FOLLOWER, retried) is appended through the storage engine and waited on
until durable, as before. A partition led by another broker gets each batch as a Produce
(acks=all) sent to its leader over the inter-broker client (`peer_client.py`,
authenticated as this broker); its leader accepts the internal audit topics only from
a broker (`handlers/produce.py`). A retriable answer (the leader moved, storage busy, a
peer unreachable) is retried against the leader known then, with a backoff, until the
caller's deadline; anything else, or the deadline, raises. Batches carry no producer
id: a Produce whose answer was lost and is sent again may be written twice (at least
once, never silently lost).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from contextplane.clock import Clock
from contextplane.cluster.peer_client import PeerUnavailable
from contextplane.errors import KafkaError
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.records import parse_header
from contextplane.security.acls import CLUSTER_NAME, Operation, ResourceType
from contextplane.security.authorizer import Action

if TYPE_CHECKING:
    from contextplane.broker.context import RequestContext
    from contextplane.broker.leaders import Leaders
    from contextplane.cluster.peer_client import Peers
    from contextplane.storage.engine import StorageEngine

# What the inter-broker client sends as its client id (`Peers`): `broker-<node id>`.
_BROKER_CLIENT_ID = re.compile(r"broker-([0-9]{1,10})")
PRODUCE_KEY = 0
PRODUCE_VERSION = 11  # flexible, by topic name; every Kafka 4.x broker answers it
ACKS_ALL = -1
_BACKOFF_MIN_S = 0.05
_BACKOFF_MAX_S = 1.0

# Answers after which the same batch is sent again (to the leader known then).
RETRIABLE = frozenset(
    {
        ErrorCode.not_leader_or_follower,
        ErrorCode.leader_not_available,
        ErrorCode.not_enough_replicas,
        ErrorCode.not_enough_replicas_after_append,
        ErrorCode.request_timed_out,
        ErrorCode.kafka_storage_error,
        ErrorCode.fenced_leader_epoch,
        ErrorCode.unknown_leader_epoch,
    }
)


def from_broker(ctx: RequestContext) -> bool:
    """Was this request sent by a broker's inter-broker client (its client id)? Like
    Kafka's own gate on writes to internal topics (the client id `__admin_client`), the
    client id is what a broker says of itself; authorization (CLUSTER_ACTION) is what a
    secured cluster relies on. Unlike Kafka's Envelope (`fromPrivilegedListener`), the
    listener is not checked: brokers of different zones may call each other on their own
    zone's listener (RFC 0004 §7), so no one listener name marks a broker's calls."""
    return broker_node(ctx.header.client_id) is not None


def from_live_peer(ctx: RequestContext) -> bool:
    """A broker's call (`from_broker`). Where an authorizer is set: CLUSTER_ACTION on the
    cluster granted to the principal itself, a super user or an ALLOW ACL, never by
    `allow.everyone.if.no.acl.found` (which would let any client naming a broker stand
    in for one, its topic ACLs and DENYs bypassed). Where none is set (CLUSTER_ACTION is
    everyone's): the client id names another live registered broker, so on one broker
    no client passes and in a cluster a forged call names a broker that can be checked
    (one this broker does not list yet is refused; its caller retries)."""
    node = broker_node(ctx.header.client_id)
    if node is None:
        return False
    services = ctx.services
    if services.authorizer.enabled:
        action = Action(Operation.CLUSTER_ACTION, ResourceType.CLUSTER, CLUSTER_NAME)
        return services.authorizer.granted(ctx.principal, ctx.client_host, action)
    cluster = services.cluster
    return node != cluster.node_id and node in cluster.registry.live_ids


def broker_node(client_id: str | None) -> int | None:
    """The node id a broker's inter-broker client id names; None for any other client."""
    found = None if client_id is None else _BROKER_CLIENT_ID.fullmatch(client_id)
    return None if found is None else int(found.group(1))


class PartitionWriter:
    """Writes whole RecordBatch v2 batches to one partition, here or at its leader."""

    def __init__(
        self,
        storage: StorageEngine,
        clock: Clock,
        leaders: Leaders | None = None,
        peers: Peers | None = None,
        node_id: int = -1,
    ) -> None:
        self._storage = storage
        self._clock = clock
        self._leaders = leaders  # None: one broker, every partition is led here
        self._peers = peers
        self._node_id = node_id
        # What a test or an operator reads: batches sent to another broker, and the
        # attempts that failed and were retried.
        self.forwarded = 0
        self.retried = 0

    async def write(
        self,
        topic: str,
        index: int,
        batches: Sequence[bytes],
        timeout_s: float,
        log_append_time_ms: int | None = None,
    ) -> None:
        """Write `batches` in order and return once each is durable at the partition's
        leader; KafkaError (the last error) if one cannot be written by `timeout_s`.
        `log_append_time_ms` applies to a local append (a leader elsewhere takes its own
        time, from the topic's config)."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        for batch in batches:
            await self._write_one(topic, index, batch, deadline, log_append_time_ms)

    async def _write_one(
        self, topic: str, index: int, batch: bytes, deadline: float, append_time: int | None
    ) -> None:
        loop = asyncio.get_running_loop()
        backoff = _BACKOFF_MIN_S
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    await self._attempt(topic, index, batch, deadline, append_time)
                return
            except KafkaError as exc:
                if exc.code not in RETRIABLE:
                    raise
                error = exc
            except (PeerUnavailable, TimeoutError) as exc:
                error = KafkaError(ErrorCode.request_timed_out, f"{topic}-{index}: {exc}")
            if loop.time() + backoff >= deadline:
                raise error
            self.retried += 1
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _BACKOFF_MAX_S)

    async def _attempt(
        self, topic: str, index: int, batch: bytes, deadline: float, append_time: int | None
    ) -> None:
        node = -1
        if self._leaders is not None:
            node, _ = self._leaders.of(topic, index)
        if node in (self._node_id, -1) or self._peers is None:
            partition = self._storage.partition(topic, index)  # NotLeader: retried
            result = self._storage.append(
                partition, [(parse_header(batch), memoryview(batch))], append_time
            )
            if result.durable is not None:
                # The engine owns the future: a deadline must not cancel it.
                result.durable.add_done_callback(_retrieve)
                await asyncio.shield(result.durable)
            return
        self.forwarded += 1
        timeout_ms = max(int((deadline - asyncio.get_running_loop().time()) * 1000), 1)
        answer = await self._peers.request(
            node,
            PRODUCE_KEY,
            PRODUCE_VERSION,
            transactional_id=None,
            acks=ACKS_ALL,
            timeout=timeout_ms,
            topic_data=[{"name": topic, "partition_data": [{"index": index, "records": batch}]}],
        )
        codes = [p.error_code for t in answer.responses for p in t.partition_responses]
        code = ErrorCode(codes[0]) if len(codes) == 1 else ErrorCode.unknown_server_error
        if code != ErrorCode.none:
            raise KafkaError(code, f"node {node} answered {code.name} for {topic}-{index}")


def _retrieve(future: asyncio.Future[None]) -> None:
    """Read the outcome of a durable wait given up on, so it is not reported unread."""
    if not future.cancelled():
        future.exception()
