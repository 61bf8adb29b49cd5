"""AlterPartitionReassignments at a broker that is not the controller: forwarded to the
controller, as Kafka 4's brokers forward admin writes (KIP-590), so that a client that
sends it to any broker (not only Metadata's `ControllerId`) gets it done.

Kafka wraps the request in an Envelope carrying the client's principal, and the
controller authorizes that principal. Here the receiving broker has already authorized
its client (ALTER on the cluster, with its own authorizer over the shared ACLs, audited
there: the route's gate), so it sends the request itself over the peer client,
authenticated as this broker, and the controller admits it with CLUSTER_ACTION (a
principal Kafka trusts to send any Envelope). The controller's answer is relayed and
each partition's result audited here under the client's principal.

No controller known, or one that cannot be reached within the request's timeout (at
most `PEER_REQUEST_TIMEOUT_S`), is NOT_CONTROLLER naming why: Kafka's admin client
refreshes Metadata and retries. A request that was itself forwarded is never forwarded
again (a controller that moved meanwhile answers NOT_CONTROLLER, relayed)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from contextplane import limits
from contextplane.broker.context import RequestContext
from contextplane.cluster.forwarder import from_broker
from contextplane.protocol.error_codes import ErrorCode

log = logging.getLogger(__name__)

ALTER_PARTITION_REASSIGNMENTS = 45
Result = tuple[ErrorCode, str | None]


def forwardable(ctx: RequestContext) -> int | None:
    """The controller's node to forward to (None: answer NOT_CONTROLLER here)."""
    node = ctx.cluster.registry.controller.node_id
    if ctx.cluster.peers is None or from_broker(ctx):
        return None
    return node if node not in (-1, ctx.cluster.node_id) else None


async def forwarded(ctx: RequestContext, request: Any, node: int) -> tuple[Any, str | None]:
    """The controller's answer (None and why: it could not be asked)."""
    timeout_s = min(request.timeout.total_seconds(), limits.PEER_REQUEST_TIMEOUT_S)
    fields: dict[str, Any] = {
        "timeout": int(timeout_s * 1000),
        "topics": [
            {
                "name": t.name,
                "partitions": [
                    {"partition_index": p.partition_index, "replicas": p.replicas}
                    for p in t.partitions
                ],
            }
            for t in request.topics
        ],
    }
    if ctx.api_version >= 1:
        fields["allow_replication_factor_change"] = request.allow_replication_factor_change
    try:
        async with asyncio.timeout(max(timeout_s, 0.001)):
            answer = await ctx.cluster.peers.request(  # type: ignore[union-attr]
                node, ALTER_PARTITION_REASSIGNMENTS, ctx.api_version, **fields
            )
    except (OSError, TimeoutError) as exc:
        log.info("forwarding AlterPartitionReassignments to node %d: %r", node, exc)
        return None, f"The controller, node {node}, cannot be reached: {exc}"
    return answer, None


def relayed(answer: Any) -> tuple[Result, dict[tuple[str, int], Result]]:
    """The controller's top-level result and each partition's."""
    results: dict[tuple[str, int], Result] = {}
    for topic in answer.responses:
        for p in topic.partitions:
            results[(topic.name, int(p.partition_index))] = (
                ErrorCode(p.error_code),
                p.error_message,
            )
    return (ErrorCode(answer.error_code), answer.error_message), results


def whole_answer(top: Result) -> Result | None:
    """A top-level refusal by the controller, relayed for the whole request; its
    refusal of this broker (CLUSTER_ACTION) says so, as the client was allowed here."""
    error, message = top
    if error == ErrorCode.none:
        return None
    if error == ErrorCode.cluster_authorization_failed:
        message = (
            "The controller refused the request this broker forwarded: the broker's"
            " principal needs CLUSTER_ACTION on the cluster."
        )
    return error, message


def not_answered(key: tuple[str, int]) -> Result:
    return ErrorCode.unknown_server_error, f"The controller did not answer {key[0]}-{key[1]}."


async def forward(
    ctx: RequestContext, request: Any, node: int
) -> tuple[Result | None, dict[tuple[str, int], Result]]:
    """Ask the controller: (a result for the whole request, or None and every
    partition's)."""
    answer, why = await forwarded(ctx, request, node)
    if answer is None:
        return (ErrorCode.not_controller, why), {}
    top, results = relayed(answer)
    refused = whole_answer(top)
    if refused is not None:
        return refused, {}
    for topic in request.topics:
        for p in topic.partitions:
            key = (topic.name, int(p.partition_index))
            results.setdefault(key, not_answered(key))
    return None, results
