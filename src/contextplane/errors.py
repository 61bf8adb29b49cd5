"""Errors the broker raises internally.

* KafkaError — an operating error with a Kafka error code; handlers put the code in the
  response. It never closes the connection.
* ProtocolError — the peer sent bytes that cannot be a Kafka request; the connection is
  closed, as Kafka closes it.
* FencedError (a KafkaError) — this broker's epoch for a partition is behind the one in
  the metadata store; another owner took over.
* CoordinatorFenced (a KafkaError) — a group coordinator's shard (its
  `__consumer_offsets` partition) is led at another epoch now; answered NOT_COORDINATOR.
* DependencyUnavailable (a KafkaError) — a service the broker relies on (the metadata
  store's server) cannot answer now; retriable, expected during an outage, and its
  message says all: background rounds log it in one line, without a traceback.
"""

from __future__ import annotations

from contextplane.protocol.error_codes import ErrorCode


class KafkaError(Exception):
    def __init__(self, code: ErrorCode, message: str = "") -> None:
        super().__init__(message or code.name)
        self.code = code
        self.message = message or code.name


class ProtocolError(Exception):
    """Malformed frame: the connection must be closed."""


class FencedError(KafkaError):
    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.fenced_leader_epoch, message)


class CoordinatorFenced(KafkaError):
    """A write fenced by a coordinator shard's leader epoch found another epoch stored."""

    def __init__(self, stream_id: int) -> None:
        super().__init__(
            ErrorCode.not_coordinator, f"the coordinator's shard (stream {stream_id}) moved"
        )
        self.stream_id = stream_id


class DependencyUnavailable(KafkaError):
    """A service the broker relies on cannot answer now (module docstring)."""
