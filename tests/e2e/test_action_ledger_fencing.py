"""The executor's fencing where Kafka cannot be asked to misbehave on cue, against a broker
in the test process with real confluent-kafka clients: the executor (or its transactor)
runs in the test, which drives it step by step to stand where a race would leave it.

A member whose place in the group was taken, and which has not heard so yet, sweeps its
expired keys: the group coordinator refuses the sweep's group offsets and no tombstone is
committed. A producer stuck mid transaction is replaced only while the transaction
coordinator still holds its epoch; once a newer executor of the same transactional id has
started, the replacement is refused and the newer one is left unfenced."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from contextplane.services.actions import ledger
from contextplane.services.actions.executor import Executor, ExecutorConfig
from contextplane.services.actions.tools import load_tools
from contextplane.services.actions.transactor import OUTAGE_S, FencedError, Transactor
from tests.support.actions import CountingEndpoint
from tests.support.inprocess import InProcessBroker
from tests.support.wait import wait_until

TIMEOUT_S = 30  # liveness bound of each wait and client call
RETENTION_MS = 1500
GROUP = "contextplane-executor"

TOOLS = """
[tools.refund]
endpoint = "{url}"
idempotent = true
policy = '''permit(principal, action, resource == Tool::"refund");'''
"""


@pytest.fixture(name="broker")
def broker_fixture(tmp_path: Path) -> Iterator[InProcessBroker]:
    settings = {"group.initial.rebalance.delay.ms": "0"}
    running = InProcessBroker(tmp_path / "broker", settings=settings).start()
    yield running
    running.stop()


def test_a_member_replaced_in_the_group_cannot_tombstone_its_old_keys(
    broker: InProcessBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint = CountingEndpoint(honours_key=True)
    tools = tmp_path / "tools.toml"
    tools.write_text(TOOLS.format(url=endpoint.url))
    config = ExecutorConfig(
        broker.bootstrap,
        transactional_id="executor-a",
        group=GROUP,
        timeout_s=TIMEOUT_S,
        key_retention_ms=RETENTION_MS,
    )
    stale = Executor(load_tools(tools), config)
    replacement: Consumer | None = None
    try:
        stale.start()
        request(broker.bootstrap, "k-1")

        def done() -> dict[str, Any] | None:
            stale._step()  # the loop, one step at a time
            entry = stale.index.get(ledger.call_key("k-1"))
            return entry if entry is not None and entry["state"] == ledger.DONE else None

        entry = wait_until(done, TIMEOUT_S, "k-1 done by the executor")
        # Its static member id is taken by another consumer: the group's member of
        # "executor-a" is now that one, and the executor, which polls no more, has not
        # heard (its assignment still names the requests partition).
        replacement = Consumer(
            {
                "bootstrap.servers": broker.bootstrap,
                "group.id": GROUP,
                "group.instance.id": config.transactional_id,
                "session.timeout.ms": 10_000,
                "enable.auto.commit": False,
            }
        )
        replacement.subscribe([ledger.REQUESTS_TOPIC])
        wait_until(lambda: joined(replacement), TIMEOUT_S, "the replacement assigned")
        wait_until(
            lambda: ledger.written_before(entry, int(time.time() * 1000) - RETENTION_MS),
            TIMEOUT_S,
            "k-1's entry past the key retention",
        )

        with caplog.at_level(logging.INFO, logger="contextplane.actions"):
            stale._expire()  # the sweep the race lets run before the revocation is seen

        assert "tombstoning 1 ledger keys" in caplog.text  # the sweep did try
        messages = [record.getMessage() for record in caplog.records]
        aborted = [message for message in messages if "transaction aborted" in message]
        assert aborted and "fenced" in aborted[0].lower(), caplog.text
        assert ledger_entries(broker.bootstrap)[("call", "k-1")]["state"] == ledger.DONE
        assert stale.index.get(ledger.call_key("k-1")) is not None
    finally:
        if replacement is not None:
            replacement.close()
        stale._close()
        endpoint.close()


def test_a_stuck_producer_is_replaced_only_while_the_coordinator_holds_its_epoch(
    broker: InProcessBroker,
) -> None:
    topic = "stuck-producer"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(TIMEOUT_S)
    common = {"bootstrap.servers": broker.bootstrap}
    consumer = Consumer({**common, "group.id": "stuck-producer-group"})
    transactor = Transactor(common, "executor-s", 60_000, TIMEOUT_S, consumer, threading.Event())
    newer: Producer | None = None
    try:
        transactor.init()
        # A transaction committed first: the epoch the coordinator holds is still the one
        # init_transactions got (librdkafka's transactions keep it for the producer's life).
        transactor.transact([(topic, "before", {"n": 0})], [])
        # A transaction left open, as a producer stuck in send_offsets_to_transaction leaves
        # it (librdkafka's hang cannot be caused on demand).
        stuck = transactor._producer
        stuck.begin_transaction()
        stuck.produce(topic, key=b"stuck", value=b"open")
        assert stuck.flush(TIMEOUT_S) == 0

        # No newer executor: the coordinator holds the stuck producer's epoch; replaced.
        transactor._replace_stuck_producer(time.monotonic() + OUTAGE_S)
        transactor.transact([(topic, "after-replacement", {"n": 1})], [])

        # A newer executor of the same transactional id starts while the next one hangs.
        newer = Producer({**common, "transactional.id": "executor-s"})
        newer.init_transactions(TIMEOUT_S)
        with pytest.raises(FencedError, match="newer executor runs"):
            transactor._replace_stuck_producer(time.monotonic() + OUTAGE_S)

        # Not fenced by the older one: its transaction commits.
        newer.begin_transaction()
        newer.produce(topic, key=b"newer", value=b"committed")
        newer.commit_transaction(TIMEOUT_S)
        assert (b"newer", b"committed") in committed_records(broker.bootstrap, topic)
    finally:
        consumer.close()
        if newer is not None:
            newer.flush(TIMEOUT_S)


def request(bootstrap: str, key: str) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    value = {"decision_id": f"d-{key}", "tool": "refund", "arguments": {"amount": 10}}
    producer.produce(ledger.REQUESTS_TOPIC, key=key.encode(), value=json.dumps(value).encode())
    assert producer.flush(TIMEOUT_S) == 0


def joined(consumer: Consumer) -> bool:
    consumer.poll(0.1)
    return bool(consumer.assignment())


def committed_records(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    """Every committed record of partition 0 of `topic`, read from its start."""
    reader = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "test-reader",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "fetch.wait.max.ms": 10,  # the end reported at once, not after a 500-ms empty fetch
        }
    )
    try:
        partition = TopicPartition(topic, 0)
        _, end = reader.get_watermark_offsets(partition, timeout=TIMEOUT_S, cached=False)
        reader.assign([TopicPartition(topic, 0, 0)])
        found: list[tuple[bytes | None, bytes | None]] = []
        at = 0
        while at < end:
            message = reader.poll(TIMEOUT_S)
            assert message is not None, f"{topic} stopped at {at} of {end}"
            offset = message.offset()
            assert offset is not None
            if message.error() is not None:
                at = max(at, offset)
                continue
            at = offset + 1
            found.append((message.key(), message.value()))
        return found
    finally:
        reader.close()


def ledger_entries(bootstrap: str) -> dict[tuple[str, ...], Any]:
    """The ledger's newest value per key (None for a tombstone)."""
    return {
        tuple(json.loads(key or b"null")): None if value is None else json.loads(value)
        for key, value in committed_records(bootstrap, ledger.LEDGER_TOPIC)
    }
