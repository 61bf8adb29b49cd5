"""The executor's reader of `copilot.ledger`: committed records only (read_committed),
folded into its `LedgerIndex`. Read to the last stable offset at start, on each
assignment and before each sweep or approval; a little between requests."""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition

from contextplane.clock import SystemClock
from contextplane.services.actions import ledger
from contextplane.services.actions.ledger import LedgerIndex

log = logging.getLogger("contextplane.actions")
_CLOCK = SystemClock()

# How long one read of the ledger waits for records while catching up to its end.
READ_WAIT_S = 0.2
# Ledger records taken per read of the ledger.
LEDGER_READ_MAX = 1000


class LedgerReader:
    def __init__(
        self,
        common: dict[str, Any],
        group: str,
        index: LedgerIndex,
        timeout_s: float,
        error: type[Exception],
    ) -> None:
        """`error`: raised when the ledger cannot be read to its end within `timeout_s`."""
        self._consumer = Consumer(
            {
                **common,
                "group.id": f"{group}-ledger",  # assigned, never subscribed
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
            }
        )
        self._index = index
        self._timeout_s = timeout_s
        self._error = error
        self._at = 0  # the next ledger offset to read

    def start(self) -> None:
        self._consumer.assign([TopicPartition(ledger.LEDGER_TOPIC, 0, 0)])

    def close(self) -> None:
        self._consumer.close()

    def read_to_end(self) -> None:
        """Read the ledger (committed records) up to its last stable offset, as asked now:
        every entry a previous owner of a partition committed is in the index after."""
        tp = TopicPartition(ledger.LEDGER_TOPIC, 0)
        deadline = _CLOCK.monotonic_ms() / 1000 + self._timeout_s
        _, end = self._consumer.get_watermark_offsets(tp, timeout=self._timeout_s, cached=False)
        while self._at < end:
            if _CLOCK.monotonic_ms() / 1000 > deadline:
                raise self._error(f"reading {ledger.LEDGER_TOPIC} stopped at {self._at}")
            self.read(READ_WAIT_S)

    def read(self, wait_s: float) -> None:
        for message in self._consumer.consume(LEDGER_READ_MAX, timeout=wait_s):
            error = message.error()
            offset = message.offset()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF and offset is not None:
                    self._at = max(self._at, offset)
                else:
                    log.warning("reading %s: %s", ledger.LEDGER_TOPIC, error.str())
                continue
            assert offset is not None, "a record has an offset"
            self._at = max(self._at, offset + 1)
            key = ledger.decode_key(message.key())
            if key is not None:
                self._index.apply(key, message.value(), offset)
