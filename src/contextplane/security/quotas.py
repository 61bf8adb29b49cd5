"""Client quotas: how long a request's client is to be throttled.

The pipeline asks before the handler runs (`throttle_ms`: request_percentage, from the
handler time counted so far) and tells how long the handler took (`handled`); Produce
asks with its records' bytes (`produce_throttle_ms`), Fetch with its response's
(`fetch_throttle_ms`), CreateTopics, DeleteTopics and CreatePartitions with the
partitions they create or delete (`mutation_quota`). A handler
reports the throttle in its response's `throttle_time_ms` (at least its own, e.g.
storage back-pressure on produce), and the connection is muted for that long once the
response is sent (KIP-219). With no quota configured Kafka throttles nobody, and
neither does `NoQuotas`; `ClientQuotas` (client_quotas.py) enforces configured ones.
"""

from __future__ import annotations

from typing import Protocol

from contextplane.security.mutation_quota import MutationQuota
from contextplane.security.principal import Principal


class Quotas(Protocol):
    def throttle_ms(self, principal: Principal, client_id: str | None, api_key: int) -> int:
        """The request quota's throttle of a request about to be handled."""
        ...

    def handled(self, principal: Principal, client_id: str | None, elapsed_ns: int) -> None:
        """Count a request's handler time against request_percentage."""
        ...

    def produce_throttle_ms(self, principal: Principal, client_id: str | None, size: int) -> int:
        """Record a Produce request's `size` bytes; its throttle."""
        ...

    def fetch_throttle_ms(self, principal: Principal, client_id: str | None, size: int) -> int:
        """Record a Fetch response of `size` bytes; its throttle (when throttled, the
        response carries no data and its bytes are not counted, as in Kafka)."""
        ...

    def fetch_bytes_max(self, principal: Principal, client_id: str | None) -> int | None:
        """The most one Fetch may return: the consumer_byte_rate of one quota window."""
        ...

    def mutation_quota(
        self, principal: Principal, client_id: str | None, api_key: int, api_version: int
    ) -> MutationQuota | None:
        """controller_mutation_rate for one CreateTopics, DeleteTopics or
        CreatePartitions (mutation_quota.py); None when no quota applies."""
        ...


class NoQuotas:
    def throttle_ms(self, principal: Principal, client_id: str | None, api_key: int) -> int:
        return 0

    def handled(self, principal: Principal, client_id: str | None, elapsed_ns: int) -> None:
        return None

    def produce_throttle_ms(self, principal: Principal, client_id: str | None, size: int) -> int:
        return 0

    def fetch_throttle_ms(self, principal: Principal, client_id: str | None, size: int) -> int:
        return 0

    def fetch_bytes_max(self, principal: Principal, client_id: str | None) -> int | None:
        return None

    def mutation_quota(
        self, principal: Principal, client_id: str | None, api_key: int, api_version: int
    ) -> MutationQuota | None:
        return None
