"""Reading contextplane's internal audit topics back as a consumer would: every record of
`__contextplane_audit` or `__contextplane_read_receipts`, JSON values decoded."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException

AUDIT_TOPIC = "__contextplane_audit"
RECEIPTS_TOPIC = "__contextplane_read_receipts"


def read_json_topic(
    client: dict[str, str] | str, topic: str, timeout_s: float = 30.0
) -> list[dict[str, Any]]:
    """Every record of the one-partition `topic` up to its end, read with a fresh group;
    `client` is a bootstrap address or a confluent-kafka config (e.g. with credentials)."""
    config = {"bootstrap.servers": client} if isinstance(client, str) else dict(client)
    consumer = Consumer(
        {
            **config,
            "group.id": f"reader-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
            "fetch.wait.max.ms": 10,  # the end reported at once, not after a 500-ms empty fetch
        }
    )
    events: list[dict[str, Any]] = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    break
                raise KafkaException(error)
            events.append(json.loads(message.value() or b"{}"))
    finally:
        consumer.close()
    return events
