"""The producer id and epoch the transaction coordinator holds for a transactional id
(DescribeTransactions, KIP-664), through kafka-python's admin client: librdkafka has no
call for it and does not say which epoch its own producer has. The transactor asks it
after each `init_transactions` (the epoch it then owns) and again before it replaces a
producer stuck mid transaction, which cannot prove its epoch itself (RFC 0006, "A fenced
executor after a broker restart as built")."""

from __future__ import annotations

import logging
import threading
from typing import Any, NamedTuple

from contextplane.clock import SystemClock

log = logging.getLogger("contextplane.actions")
_CLOCK = SystemClock()
RETRY_PAUSE_S = 1.0


class ProducerEpoch(NamedTuple):
    producer_id: int
    epoch: int


class EpochUnknownError(Exception):
    """The transaction coordinator did not say (unreachable, refused, or no such id)."""


def described_epoch(
    client_config: dict[str, Any], transactional_id: str, timeout_s: float
) -> ProducerEpoch:
    """The coordinator's producer id and epoch of `transactional_id`, asked on a connection
    of its own (`client_config`: librdkafka settings, bootstrap included)."""
    from kafka.errors import KafkaError

    from contextplane.cli.kafka_client import BrokerUnreachable, ConfigError
    from contextplane.cli.protocol_admin import connect_with

    try:
        admin = connect_with(client_config, timeout_s)
    except (BrokerUnreachable, ConfigError) as exc:
        raise EpochUnknownError(f"describing transactional id {transactional_id}: {exc}") from None
    try:
        found = admin.describe_transactions([transactional_id])[transactional_id]
    except (KafkaError, OSError) as exc:  # refused, or the connection lost
        raise EpochUnknownError(f"describing transactional id {transactional_id}: {exc}") from None
    finally:
        admin.close()
    return ProducerEpoch(found.producer_id, found.producer_epoch)


def described_epoch_by(
    client_config: dict[str, Any],
    transactional_id: str,
    timeout_s: float,
    deadline: float,
    stopping: threading.Event,
) -> ProducerEpoch:
    """`described_epoch`, asked again each RETRY_PAUSE_S (a coordinator loading after a
    restart answers COORDINATOR_LOAD_IN_PROGRESS) until the monotonic `deadline`."""
    while True:
        try:
            return described_epoch(client_config, transactional_id, timeout_s)
        except EpochUnknownError as exc:
            if _CLOCK.monotonic_ms() / 1000 + RETRY_PAUSE_S > deadline or stopping.is_set():
                raise
            log.warning("%s; asking again", exc)
            stopping.wait(RETRY_PAUSE_S)
