"""Regex subscriptions of the consumer group protocol with confluent-kafka
(`group.protocol=consumer`, `subscribe(["^orders-.*"])`): the broker evaluates the
pattern (RE2), a topic created after the member joined is picked up, non-matching
topics are not (internal ones match, as in Kafka), and a pattern RE2 refuses is
reported to the client (INVALID_REGULAR_EXPRESSION)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from harness import java_client
from tests.e2e.test_consumer_protocol import HEARTBEAT_SETTINGS
from tests.support.inprocess import InProcessBroker

# Liveness bound, well above the protocol's pace (heartbeats every second, HEARTBEAT_SETTINGS;
# a new target at the next heartbeat after the topic table changes).
SETTLE_S = 60


def _create(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(30)


def _consumer(bootstrap: str, group: str, pattern: str) -> Consumer:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "group.protocol": "consumer",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([pattern])
    return consumer


def _poll_until(consumer: Consumer, done: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < deadline:
        consumer.poll(0.2)
        if done():
            return
    raise AssertionError(f"{what}: assignment {consumer.assignment()}")


def test_a_regex_subscription_picks_up_a_topic_created_later(tmp_path: Path) -> None:
    broker = InProcessBroker(tmp_path / "broker", settings=HEARTBEAT_SETTINGS).start()
    try:
        _create(broker.bootstrap, "orders-eu", 2)
        _create(broker.bootstrap, "payments", 2)
        consumer = _consumer(broker.bootstrap, "regex-group", "^orders-.*")
        try:

            def topics() -> set[str]:
                return {tp.topic for tp in consumer.assignment()}

            _poll_until(consumer, lambda: len(consumer.assignment()) == 2, "first assignment")
            assert topics() == {"orders-eu"}
            _create(broker.bootstrap, "orders-us", 3)
            producer = Producer({"bootstrap.servers": broker.bootstrap})
            producer.produce("orders-us", value=b"late", partition=1)
            assert producer.flush(30) == 0
            seen: list[tuple[str, bytes]] = []

            def consumed_late_topic() -> bool:
                return ("orders-us", b"late") in seen

            deadline = time.monotonic() + SETTLE_S
            while time.monotonic() < deadline and not consumed_late_topic():
                message = consumer.poll(0.2)
                if message is not None and message.error() is None:
                    seen.append((message.topic(), message.value()))
            assert consumed_late_topic(), consumer.assignment()
            assert topics() == {"orders-eu", "orders-us"}
            assert len(consumer.assignment()) == 5
            assert broker.broker is not None
            group = broker.broker.groups.consumer.group("regex-group")
            assert group is not None
            (member,) = group.members.values()
            assert member.subscribed_regex is not None and "orders-" in member.subscribed_regex
            # Every topic Metadata lists, internal ones too, as Kafka's TopicRegexResolver.
            listed = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=30)
            every = {name: len(t.partitions) for name, t in listed.topics.items()}
            assert {"__consumer_offsets", "orders-eu", "orders-us", "payments"} <= set(every)
            everything = _consumer(broker.bootstrap, "regex-everything", "^.*")
            try:
                _poll_until(
                    everything,
                    lambda: len(everything.assignment()) == sum(every.values()),
                    "all topics",
                )
                assert {tp.topic for tp in everything.assignment()} == set(every)
            finally:
                everything.close()
        finally:
            consumer.close()
    finally:
        broker.stop()


def test_a_bad_regex_is_reported_to_the_consumer(tmp_path: Path) -> None:
    broker = InProcessBroker(tmp_path / "broker", settings=HEARTBEAT_SETTINGS).start()
    try:
        # librdkafka checks a pattern with its own engine first: a back-reference passes
        # there and is refused by RE2 on the broker, as RE2/J refuses it in Kafka.
        consumer = _consumer(broker.bootstrap, "bad-regex-group", r"^orders-(a)\1")
        try:
            found: list[object] = []
            deadline = time.monotonic() + SETTLE_S
            while time.monotonic() < deadline and not found:
                message = consumer.poll(0.2)
                if message is not None and message.error() is not None:
                    found.append(message.error())
            assert found, "no error reported"
            error = found[0]
            assert isinstance(error, KafkaError)
            # librdkafka makes INVALID_REGULAR_EXPRESSION (128) a fatal error of the
            # consumer and names it by its description.
            assert error.code() == KafkaError._FATAL, error
            assert "Broker: The regular expression is not valid" in error.str(), error
            assert consumer.assignment() == []
        finally:
            consumer.close()
    finally:
        broker.stop()


def test_a_java_consumer_subscribes_with_a_subscription_pattern(tmp_path: Path) -> None:
    """The Java 4.x consumer's SubscriptionPattern (KIP-848's broker-side regex): it
    consumes a matching topic created after it joined, and never the others."""
    broker = InProcessBroker(tmp_path / "broker", settings=HEARTBEAT_SETTINGS).start()
    try:
        _create(broker.bootstrap, "orders-a", 2)
        _create(broker.bootstrap, "payments", 1)
        producer = Producer({"bootstrap.servers": broker.bootstrap})
        for i in range(5):
            producer.produce("orders-a", value=f"a-{i}".encode())
            producer.produce("payments", value=f"p-{i}".encode())
        assert producer.flush(30) == 0
        java_client.build()
        java: dict[str, java_client.ClientResult] = {}

        def run_java() -> None:
            java["result"] = java_client.run(
                [
                    "consume", "--bootstrap", broker.bootstrap, "--topic", "orders-a",
                    "--topic-regex", "orders-.*", "--group", "java-regex",
                    "--group-protocol", "consumer", "--count", "10",
                    "--timeout-ms", str(SETTLE_S * 1000),
                ],
                SETTLE_S + 30,
            )  # fmt: skip

        thread = threading.Thread(target=run_java, daemon=True)
        thread.start()
        assert broker.broker is not None
        coordinator = broker.broker.groups
        deadline = time.monotonic() + SETTLE_S
        while True:
            group = coordinator.consumer.group("java-regex")
            if group is not None and any(m.assigned for m in group.members.values()):
                break
            assert time.monotonic() < deadline, "the Java member never joined"
            time.sleep(0.2)
        (member,) = group.members.values()
        assert member.subscribed_regex == "orders-.*"
        _create(broker.bootstrap, "orders-b", 1)
        for i in range(5):
            producer.produce("orders-b", value=f"b-{i}".encode())
        assert producer.flush(30) == 0
        thread.join(SETTLE_S + 30)
        result = java["result"]
        assert result.ok, result.error
        values = sorted(r[3] for r in result.records)
        assert values == sorted([f"a-{i}" for i in range(5)] + [f"b-{i}" for i in range(5)])
    finally:
        broker.stop()
