"""What the operators' admin APIs need authorized (Kafka 4.4's KafkaApis): each a
cluster operation for the whole request, refused with CLUSTER_AUTHORIZATION_FAILED.
DescribeLogDirs, DescribeQuorum and ListPartitionReassignments DESCRIBE; ElectLeaders
and AlterPartitionReassignments ALTER (or CLUSTER_ACTION, forwarded by a broker);
ListConfigResources DESCRIBE_CONFIGS; ZoneProduce (a broker's) CLUSTER_ACTION."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from contextplane.broker.authorization import CLUSTER, Gate, Needs, Op
from contextplane.cluster.forwarder import from_broker
from contextplane.protocol.error_codes import ErrorCode
from contextplane.security.acls import CLUSTER_NAME, Operation
from contextplane.security.authorizer import Action

if TYPE_CHECKING:
    from contextplane.broker.context import Reply, RequestContext


def _on_cluster(operation: Operation) -> Needs:
    action = Action(operation, CLUSTER, CLUSTER_NAME)
    return Needs(gate=Gate((action,), ErrorCode.cluster_authorization_failed))


def describe_log_dirs(ctx: RequestContext, request: Any) -> Needs:
    return _on_cluster(Op.DESCRIBE)


def describe_quorum(ctx: RequestContext, request: Any) -> Needs:
    return _on_cluster(Op.DESCRIBE)


def elect_leaders(ctx: RequestContext, request: Any) -> Needs:
    return _on_cluster(Op.ALTER)


def alter_partition_reassignments(ctx: RequestContext, request: Any) -> Needs:
    if from_broker(ctx):
        # Forwarded by a broker that authorized its client's ALTER there
        # (handlers/reassignments_forward.py): CLUSTER_ACTION grants it, as Kafka's
        # controller takes a broker's Envelope.
        actions = (Op.ALTER, Op.CLUSTER_ACTION)
        return Needs(
            gate=Gate(
                tuple(Action(op, CLUSTER, CLUSTER_NAME) for op in actions),
                ErrorCode.cluster_authorization_failed,
            )
        )
    return _on_cluster(Op.ALTER)


def list_partition_reassignments(ctx: RequestContext, request: Any) -> Needs:
    return _on_cluster(Op.DESCRIBE)


def list_config_resources(ctx: RequestContext, request: Any) -> Needs:
    return _on_cluster(Op.DESCRIBE_CONFIGS)


def zone_produce(ctx: RequestContext, request: Any) -> Needs:
    """A peer's hand-over of its clients' Produce requests (handlers/zone_produce.py):
    CLUSTER_ACTION on the cluster, as Kafka's controller asks of a broker's Envelope; the
    frames are then authorized as the client's own requests."""
    return _on_cluster(Op.CLUSTER_ACTION)


def refuse_zone_produce(ctx: RequestContext, request: Any, error: ErrorCode) -> Reply:
    return ctx.reply(throttle_time=ctx.throttle_ms, error_code=error, frames=[])
