"""Enforcing client quotas as Kafka's ClientQuotaManager does.

Each quota type (producer_byte_rate, consumer_byte_rate, request_percentage,
controller_mutation_rate: a token bucket, mutation_quota.py) is resolved
for a request's user (the principal's name) and client id in Kafka's order, the first
entity that sets it winning:

    /users/<user>/clients/<client-id>     /users/<default>/clients/<client-id>
    /users/<user>/clients/<default>       /users/<default>/clients/<default>
    /users/<user>                         /users/<default>
                                          /clients/<client-id>
                                          /clients/<default>

(left column first). The rate is measured per quota entity as Kafka tags its sensors:
a default stands for the actual name, so every client id under `/clients/<default>` has
its own rate while all the clients of `/users/alice` share one. A request that takes a
rate over its quota is throttled by `(rate - quota) / quota * window`, Kafka's formula;
the request quota's throttle is at most one window. Rates live in memory only: a sensor
unused for an hour is dropped, and at most `QUOTA_SENSORS_MAX` are kept.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

from contextplane import limits
from contextplane.clock import Clock
from contextplane.security.mutation_quota import STRICT_SINCE, MutationQuota, TokenBucket
from contextplane.security.principal import Principal
from contextplane.security.quota_config import (
    CLIENT_ID,
    CONSUMER_BYTE_RATE,
    CONTROLLER_MUTATION_RATE,
    PRODUCER_BYTE_RATE,
    REQUEST_PERCENTAGE,
    USER,
    Entity,
)
from contextplane.security.quota_rate import SampledRate, throttle_ms

# Not counted against request_percentage: the authentication exchange (Kafka exempts it).
_EXEMPT_API_KEYS = frozenset({17, 36})  # SaslHandshake, SaslAuthenticate
# Handler nanoseconds to percent-seconds of one thread (Kafka's NanosToPercentagePerSecond).
_NANOS_TO_PERCENT = 100.0 / 1_000_000_000
# A sweep for idle sensors runs at most once per this many recordings.
_SWEEP_EVERY = 1024

_SensorKey = tuple[str, str, str]  # quota key, user tag, client-id tag


class ClientQuotas:
    """The `Quotas` of a broker: configured values (kept current by `QuotaAdmin`) and
    the rates measured against them."""

    def __init__(
        self,
        clock: Clock,
        window_num: int = limits.QUOTA_WINDOW_NUM,
        window_size_seconds: int = limits.QUOTA_WINDOW_SIZE_SECONDS,
        configured: Mapping[Entity, Mapping[str, float]] | None = None,
        sensors_max: int = limits.QUOTA_SENSORS_MAX,
    ) -> None:
        self._clock = clock
        self._window_num = window_num
        self._window_ms = window_size_seconds * 1000
        self._window_s = window_size_seconds
        self._configured: dict[Entity, dict[str, float]] = {}
        self._sensors: OrderedDict[_SensorKey, tuple[SampledRate, list[int]]] = OrderedDict()
        # controller_mutation_rate's token buckets, by (user tag, client-id tag).
        self._buckets: OrderedDict[tuple[str, str], TokenBucket] = OrderedDict()
        self._sensors_max = sensors_max
        self._recordings = 0
        self.replace(configured or {})

    # -- configuration ------------------------------------------------------------------

    def replace(self, configured: Mapping[Entity, Mapping[str, float]]) -> None:
        """Use these values from now on (rates measured so far are kept)."""
        self._configured = {entity: dict(values) for entity, values in configured.items() if values}

    @property
    def configured(self) -> dict[Entity, dict[str, float]]:
        return self._configured

    @property
    def sensor_count(self) -> int:
        return len(self._sensors)

    def resolve(self, key: str, user: str, client_id: str) -> tuple[float, str, str] | None:
        """The quota of type `key` for this user and client id, with the user and
        client-id tags of the rate it is measured by; None when no entity sets it."""
        configured = self._configured
        for entity, user_tag, client_tag in (
            (((CLIENT_ID, client_id), (USER, user)), user, client_id),
            (((CLIENT_ID, None), (USER, user)), user, client_id),
            (((USER, user),), user, ""),
            (((CLIENT_ID, client_id), (USER, None)), user, client_id),
            (((CLIENT_ID, None), (USER, None)), user, client_id),
            (((USER, None),), user, ""),
            (((CLIENT_ID, client_id),), "", client_id),
            (((CLIENT_ID, None),), "", client_id),
        ):
            values = configured.get(entity)
            if values is not None and key in values:
                return values[key], user_tag, client_tag
        return None

    # -- the Quotas protocol ------------------------------------------------------------

    def throttle_ms(self, principal: Principal, client_id: str | None, api_key: int) -> int:
        if not self._configured or api_key in _EXEMPT_API_KEYS:
            return 0
        found = self.resolve(REQUEST_PERCENTAGE, principal.name, client_id or "")
        if found is None:
            return 0
        quota, user_tag, client_tag = found
        now = self._clock.monotonic_ms()
        rate = self._sensor((REQUEST_PERCENTAGE, user_tag, client_tag), now)
        return throttle_ms(rate, quota, now, bound_ms=self._window_ms)

    def handled(self, principal: Principal, client_id: str | None, elapsed_ns: int) -> None:
        if not self._configured:
            return
        found = self.resolve(REQUEST_PERCENTAGE, principal.name, client_id or "")
        if found is None:
            return
        _quota, user_tag, client_tag = found
        now = self._clock.monotonic_ms()
        rate = self._sensor((REQUEST_PERCENTAGE, user_tag, client_tag), now)
        rate.record(elapsed_ns * _NANOS_TO_PERCENT, now)

    def produce_throttle_ms(self, principal: Principal, client_id: str | None, size: int) -> int:
        return self._record(PRODUCER_BYTE_RATE, principal, client_id, size, keep=True)

    def fetch_throttle_ms(self, principal: Principal, client_id: str | None, size: int) -> int:
        return self._record(CONSUMER_BYTE_RATE, principal, client_id, size, keep=False)

    def fetch_bytes_max(self, principal: Principal, client_id: str | None) -> int | None:
        if not self._configured:
            return None
        found = self.resolve(CONSUMER_BYTE_RATE, principal.name, client_id or "")
        if found is None:
            return None
        return int(min(found[0] * self._window_s, 2**31 - 1))

    def mutation_quota(
        self, principal: Principal, client_id: str | None, api_key: int, api_version: int
    ) -> MutationQuota | None:
        if not self._configured:
            return None
        found = self.resolve(CONTROLLER_MUTATION_RATE, principal.name, client_id or "")
        if found is None:
            return None
        quota, user_tag, client_tag = found
        now = self._clock.monotonic_ms()
        burst = quota * self._window_num * self._window_s
        buckets = self._buckets
        bucket = buckets.get((user_tag, client_tag))
        if bucket is None:
            bucket = buckets[(user_tag, client_tag)] = TokenBucket(quota, burst, now)
            if len(buckets) > self._sensors_max:
                buckets.popitem(last=False)  # the least recently used
        else:
            bucket.reconfigure(quota, burst)
            buckets.move_to_end((user_tag, client_tag))
        strict = api_version >= STRICT_SINCE.get(api_key, 0)
        return MutationQuota(bucket, strict, self._clock.monotonic_ms)

    # -- rates --------------------------------------------------------------------------

    def _record(
        self, key: str, principal: Principal, client_id: str | None, size: int, keep: bool
    ) -> int:
        """Record `size` against quota `key`; the throttle. A throttled fetch's bytes are
        taken back (`keep=False`): Kafka sends it without data."""
        if not self._configured:
            return 0
        found = self.resolve(key, principal.name, client_id or "")
        if found is None:
            return 0
        quota, user_tag, client_tag = found
        now = self._clock.monotonic_ms()
        rate = self._sensor((key, user_tag, client_tag), now)
        rate.record(size, now)
        throttle = throttle_ms(rate, quota, now)
        if throttle and not keep:
            rate.record(-size, now)
        return throttle

    def _sensor(self, key: _SensorKey, now: int) -> SampledRate:
        sensors = self._sensors
        entry = sensors.get(key)
        if entry is None:
            entry = (SampledRate(self._window_num, self._window_ms, now), [now])
            sensors[key] = entry
            if len(sensors) > self._sensors_max:
                sensors.popitem(last=False)  # the least recently used
        else:
            entry[1][0] = now
            sensors.move_to_end(key)
        self._recordings += 1
        if self._recordings % _SWEEP_EVERY == 0:
            self._expire(now)
        return entry[0]

    def _expire(self, now: int) -> None:
        """Drop sensors unused for QUOTA_SENSOR_IDLE_MS (oldest first: they are in order
        of last use)."""
        sensors = self._sensors
        while sensors:
            key, (_rate, used) = next(iter(sensors.items()))
            if now - used[0] < limits.QUOTA_SENSOR_IDLE_MS:
                return
            del sensors[key]
