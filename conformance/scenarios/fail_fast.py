"""Features a client asks for settle on an answer it does not retry: it succeeds, or fails
at once with an error it reports, and never waits out its own timeout. Transactions and
the KIP-848 consumer protocol are served by both brokers now, so the answers themselves
must match too."""

from __future__ import annotations

import time
import uuid
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer

from conformance import wire
from conformance.scenarios import Ctx, scenario
from conformance.wire import RETRIABLE_COORDINATOR, err

CONSUMER_GROUP_HEARTBEAT = 68
# Well below a client's default timeouts (librdkafka's init_transactions: 2 x
# transaction.timeout.ms; a consumer's max.poll.interval.ms): reaching it means hanging.
SETTLE_S = 25.0


@scenario()
def transaction_coordinator(ctx: Ctx) -> None:
    """FindCoordinator for a transactional id (v4 and v3), retried while the answer is
    retriable, as a client does: the answer must settle."""
    client = ctx.raw()
    for version in (4, 3):
        started = time.monotonic()
        found = wire.find_coordinator(client, "ff-txn", key_type=1, version=version, retry_for=20)
        ctx.record(
            f"v{version}",
            {
                "settled": found.error_code not in RETRIABLE_COORDINATOR
                and time.monotonic() - started < SETTLE_S,
                "error": err(found.error_code),
            },
        )


def _heartbeat(client: Any, member_id: str, epoch: int, topics: list[str] | None) -> Any:
    return client.request(
        CONSUMER_GROUP_HEARTBEAT,
        1,
        group_id="ff-848",
        member_id=member_id,
        member_epoch=epoch,
        instance_id=None,
        rack_id=None,
        rebalance_timeout=30000,
        subscribed_topic_names=topics,
        server_assignor=None,
        topic_partitions=[] if epoch == 0 else None,
    )


@scenario()
def consumer_group_heartbeat(ctx: Ctx) -> None:
    """ConsumerGroupHeartbeat (KIP-848): advertised, and a member joining gets an answer
    that settles (a group coordinator still loading is retried, as clients do)."""
    client = ctx.raw()
    ctx.record("create", err(wire.create_topic(client, "ff-848-topic", 1).error_code))
    ctx.check(wire.wait_for_topic(client, "ff-848-topic", 1), "topic ready")
    versions = {
        k.api_key: (k.min_version, k.max_version) for k in wire.api_versions(client).api_keys
    }
    ctx.record("advertised", versions.get(CONSUMER_GROUP_HEARTBEAT))
    wire.find_coordinator(client, "ff-848")
    member = str(uuid.uuid4())
    started = time.monotonic()
    joined = wire.retry_coordinator(
        lambda: _heartbeat(client, member, 0, ["ff-848-topic"]), timeout=20
    )
    ctx.record(
        "join",
        {
            "settled": joined.error_code not in RETRIABLE_COORDINATOR
            and time.monotonic() - started < SETTLE_S,
            "error": err(joined.error_code),
        },
    )
    if joined.error_code == 0:  # leave again (epoch -1) so the group does not linger
        _heartbeat(client, member, -1, None)


def _outcome(error: Any) -> str:
    return "timed out" if error.name() == "_TIMED_OUT" else error.name()


@scenario(quick=False)
def transactional_producer_client(ctx: Ctx) -> None:
    """confluent-kafka: init_transactions() returns or raises well before its timeout."""
    producer = Producer({"bootstrap.servers": ctx.bootstrap, "transactional.id": "ff-tx-client"})
    started = time.monotonic()
    try:
        producer.init_transactions(SETTLE_S + 10)
        outcome, fatal = "ok", False
    except KafkaException as exc:
        outcome, fatal = _outcome(exc.args[0]), exc.args[0].fatal()
    ctx.record("init_transactions", {"outcome": outcome, "fatal": fatal})
    ctx.record("settled", outcome != "timed out" and time.monotonic() - started < SETTLE_S)


@scenario(quick=False)
def consumer_protocol_client(ctx: Ctx) -> None:
    """confluent-kafka with group.protocol=consumer: an assignment or a reported error,
    well within its poll loop, never silence."""
    client = ctx.raw()
    ctx.record("create", err(wire.create_topic(client, "ff-848-client", 1).error_code))
    ctx.check(wire.wait_for_topic(client, "ff-848-client", 1), "topic ready")
    consumer = Consumer(
        {
            "bootstrap.servers": ctx.bootstrap,
            "group.id": "ff-848-client",
            "group.protocol": "consumer",
        }
    )
    consumer.subscribe(["ff-848-client"])
    started = time.monotonic()
    outcome = None
    while outcome is None and time.monotonic() - started < SETTLE_S:
        message = consumer.poll(0.5)
        if message is not None and message.error():
            outcome = message.error().name()
        elif consumer.assignment():
            outcome = "assigned"
    consumer.close()
    ctx.record("outcome", outcome)
    ctx.record("settled", outcome is not None)
