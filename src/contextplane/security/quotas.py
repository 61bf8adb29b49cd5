"""Client quotas: how long a request's client is to be throttled.

The pipeline asks before the handler runs; the handler reports the figure in its
response's `throttle_time_ms` (at least its own, e.g. storage back-pressure on produce).
With no quota configured Kafka throttles nobody, and neither does `NoQuotas`, the default.
"""

from __future__ import annotations

from typing import Protocol

from contextplane.security.principal import Principal


class Quotas(Protocol):
    def throttle_ms(self, principal: Principal, client_id: str | None, api_key: int) -> int: ...


class NoQuotas:
    def throttle_ms(self, principal: Principal, client_id: str | None, api_key: int) -> int:
        return 0
