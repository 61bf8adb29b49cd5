"""Features the broker does not have yet fail fast, with an error the client reports.

The KIP-848 consumer protocol: ConsumerGroupHeartbeat is advertised and answers
UNSUPPORTED_VERSION, as Kafka 4.4 does with the protocol disabled; both clients stop with a
fatal error naming the protocol.
"""

from __future__ import annotations

import time

from confluent_kafka import Consumer, KafkaError

from harness import java_client
from tests.support.inprocess import InProcessBroker

# Liveness bounds, well below the clients' own timeouts (which are what a hang would hit).
CLIENT_TIMEOUT_S = 60
PROMPT_S = 20


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
