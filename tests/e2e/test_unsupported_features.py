"""Features the broker does not have yet fail fast, with an error the client reports.

Transactions: FindCoordinator for a transactional id answers
TRANSACTIONAL_ID_AUTHORIZATION_FAILED, which librdkafka and the Java client treat as fatal
(COORDINATOR_NOT_AVAILABLE is retriable: they would wait out their own timeout). The
KIP-848 consumer protocol: ConsumerGroupHeartbeat is advertised and answers
UNSUPPORTED_VERSION, as Kafka 4.4 does with the protocol disabled; both clients stop with a
fatal error naming the protocol.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer

from harness import java_client
from tests.support.inprocess import InProcessBroker

# Liveness bounds, well below the clients' own timeouts (which are what a hang would hit).
CLIENT_TIMEOUT_S = 60
PROMPT_S = 20


def test_confluent_transactional_producer_init_fails_fast(shared_broker: InProcessBroker) -> None:
    producer = Producer({"bootstrap.servers": shared_broker.bootstrap, "transactional.id": "tx-a"})
    started = time.monotonic()
    with pytest.raises(KafkaException) as info:
        producer.init_transactions(CLIENT_TIMEOUT_S)
    assert time.monotonic() - started < PROMPT_S
    error = info.value.args[0]
    assert error.code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    assert error.fatal()
    assert "not supported by this broker" in error.str()


def test_confluent_consumer_protocol_reports_a_fatal_error(shared_broker: InProcessBroker) -> None:
    consumer = Consumer(
        {
            "bootstrap.servers": shared_broker.bootstrap,
            "group.id": "kip848-c",
            "group.protocol": "consumer",
        }
    )
    consumer.subscribe(["kip848-topic"])
    deadline = time.monotonic() + PROMPT_S
    error = None
    while error is None and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error():
            error = message.error()
    consumer.close()
    assert error is not None, "no error reported: the consumer would wait for ever"
    assert error.code() == KafkaError._FATAL
    assert "ConsumerGroupHeartbeat" in error.str()


def test_java_transactional_producer_fails_fast(shared_broker: InProcessBroker) -> None:
    started = time.monotonic()
    result = java_client.run(
        [
            "produce",
            "--bootstrap",
            shared_broker.bootstrap,
            "--topic",
            "java-tx",
            "--count",
            "1",
            "--transactional-id",
            "tx-java",
            "--timeout-ms",
            str(CLIENT_TIMEOUT_S * 1000),
        ],
        CLIENT_TIMEOUT_S + 30,
    )
    assert not result.ok
    assert result.error is not None
    assert result.error["error"].endswith("TransactionalIdAuthorizationException")
    assert time.monotonic() - started < CLIENT_TIMEOUT_S


def test_java_consumer_protocol_fails_with_unsupported_version(
    shared_broker: InProcessBroker,
) -> None:
    result = java_client.run(
        [
            "consume",
            "--bootstrap",
            shared_broker.bootstrap,
            "--topic",
            "kip848-java",
            "--group",
            "kip848-j",
            "--count",
            "1",
            "--group-protocol",
            "consumer",
            "--timeout-ms",
            str(CLIENT_TIMEOUT_S * 1000),
        ],
        CLIENT_TIMEOUT_S + 30,
    )
    assert not result.ok
    assert result.error is not None
    assert result.error["error"].endswith("UnsupportedVersionException")
    assert "group protocol" in result.error["message"]
