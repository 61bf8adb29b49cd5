"""The transactions probe: a committed transaction is visible to read_committed, an
aborted one is not (and is to read_uncommitted)."""

from __future__ import annotations

from contextplane.cli.kafka_client import exception_text
from contextplane.cli.probes.base import ProbeContext, ProbeFailure
from contextplane.cli.probes.clients import read_back

# (value, committed) in the order produced: the last commit moves the last stable offset
# past the aborted transaction's marker, so read_committed reads to the end.
_TRANSACTIONS = ((b"committed-1", True), (b"aborted-1", False), (b"committed-2", True))


def transactions(ctx: ProbeContext) -> str:
    from confluent_kafka import KafkaException, Producer

    topic = ctx.create_topic()
    producer = Producer(
        ctx.client_config(
            **{
                "transactional.id": ctx.unique("txn"),
                "transaction.timeout.ms": max(1000, int(ctx.settings.timeout_s * 1000)),
            }
        )
    )
    try:
        producer.init_transactions(ctx.remaining_s())
        for value, commit in _TRANSACTIONS:
            producer.begin_transaction()
            producer.produce(topic, value=value, partition=0)
            if commit:
                producer.commit_transaction(ctx.remaining_s())
            else:
                producer.flush(ctx.remaining_s())  # written, then aborted
                producer.abort_transaction(ctx.remaining_s())
    except KafkaException as exc:
        raise ProbeFailure(f"transactional producer: {exception_text(exc)}") from None
    finally:
        producer.flush(0)
    committed = [value for value, commit in _TRANSACTIONS if commit]
    seen = [m.value() for m in read_back(ctx, topic, 2, **{"isolation.level": "read_committed"})]
    if seen != committed:
        raise ProbeFailure(f"read_committed read {seen}, expected {committed}")
    every = [value for value, _ in _TRANSACTIONS]
    uncommitted = read_back(ctx, topic, 3, **{"isolation.level": "read_uncommitted"})
    if [m.value() for m in uncommitted] != every:
        raise ProbeFailure(f"read_uncommitted read {[m.value() for m in uncommitted]}")
    return (
        "commit, abort, commit: read_committed reads only the committed records, "
        "read_uncommitted all three"
    )
