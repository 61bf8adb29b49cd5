"""One record produced and waited for, as the services' clients write a request or an
event: its (partition, offset) once delivered, or the caller's error naming why not."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, Producer


def produce_and_wait(
    producer: Producer,
    topic: str,
    key: bytes,
    value: bytes,
    wait_s: float,
    error: type[Exception],
    what: str,
    headers: Sequence[tuple[str, str | bytes | None]] = (),
) -> tuple[int, int]:
    """Produce one record and flush; `error(f"producing {what}: <why>")` when it was not
    delivered within `wait_s`."""
    landed: list[tuple[int, int]] = []
    failed: list[KafkaError] = []

    def delivered(failure: KafkaError | None, message: Any) -> None:
        if failure is not None:
            failed.append(failure)
        else:
            landed.append((message.partition(), message.offset()))

    producer.produce(
        topic, key=key, value=value, headers=list(headers) or None, on_delivery=delivered
    )
    producer.flush(wait_s)
    if not landed:
        reason = failed[0].str() if failed else f"not delivered within {wait_s:g} s"
        raise error(f"producing {what}: {reason}")
    return landed[0]
