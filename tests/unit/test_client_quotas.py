"""Client quotas as Kafka's ClientQuotaManager enforces them: the rate over sampled
windows, the eight levels of resolution, throttle times, fetch's taken-back bytes, the
request quota's bound, and bounded sensor memory."""

from __future__ import annotations

import pytest

from contextplane import limits
from contextplane.clock import ManualClock
from contextplane.security.client_quotas import ClientQuotas
from contextplane.security.principal import Principal
from contextplane.security.quota_config import (
    CLIENT_ID,
    CONSUMER_BYTE_RATE,
    PRODUCER_BYTE_RATE,
    REQUEST_PERCENTAGE,
    USER,
)
from contextplane.security.quota_rate import SampledRate, throttle_ms

ALICE = Principal("User", "alice")
BOB = Principal("User", "bob")
MB = 1_000_000


def test_rate_spans_at_least_all_but_one_window() -> None:
    rate = SampledRate(samples=11, window_ms=1000, now_ms=0)
    rate.record(10 * MB, 0)
    # One sample so far: Kafka measures over (samples - 1) whole windows, not 0 ms.
    assert rate.window_ms(0) == 10_000
    assert rate.measure(0) == pytest.approx(1 * MB)
    rate.record(10 * MB, 5_000)
    assert rate.measure(5_000) == pytest.approx(2 * MB)  # still over 10 s
    rate.record(10 * MB, 10_500)
    # Over ten whole windows of samples: the span is the real one.
    assert rate.window_ms(10_500) == 10_500
    assert rate.measure(10_500) == pytest.approx(30 * MB / 10.5)


def test_samples_older_than_every_window_are_forgotten() -> None:
    rate = SampledRate(samples=2, window_ms=1000, now_ms=0)
    rate.record(5 * MB, 0)
    rate.record(1 * MB, 1500)
    assert rate.measure(1500) == pytest.approx(6 * MB / 1.5)
    # At 2000 ms the first sample is two windows old: reset, only the second remains,
    # measured over at least one window from its start.
    assert rate.measure(2000) == pytest.approx(1 * MB / 1.5)


def test_throttle_is_kafkas_formula() -> None:
    rate = SampledRate(samples=11, window_ms=1000, now_ms=0)
    rate.record(15 * MB, 0)  # 1.5 MB/s over the 10 s minimum span
    assert throttle_ms(rate, 1 * MB, 0) == 5000  # (1.5 - 1) / 1 * 10 s
    assert throttle_ms(rate, 1 * MB, 0, bound_ms=1000) == 1000
    assert throttle_ms(rate, 2 * MB, 0) == 0


@pytest.mark.parametrize(
    ("entity", "user_tag", "client_tag"),
    [
        (((CLIENT_ID, "c1"), (USER, "alice")), "alice", "c1"),
        (((CLIENT_ID, None), (USER, "alice")), "alice", "c1"),
        (((USER, "alice"),), "alice", ""),
        (((CLIENT_ID, "c1"), (USER, None)), "alice", "c1"),
        (((CLIENT_ID, None), (USER, None)), "alice", "c1"),
        (((USER, None),), "alice", ""),
        (((CLIENT_ID, "c1"),), "", "c1"),
        (((CLIENT_ID, None),), "", "c1"),
    ],
)
def test_each_level_wins_over_every_later_one(
    entity: tuple[tuple[str, str | None], ...], user_tag: str, client_tag: str
) -> None:
    order = [
        ((CLIENT_ID, "c1"), (USER, "alice")),
        ((CLIENT_ID, None), (USER, "alice")),
        ((USER, "alice"),),
        ((CLIENT_ID, "c1"), (USER, None)),
        ((CLIENT_ID, None), (USER, None)),
        ((USER, None),),
        ((CLIENT_ID, "c1"),),
        ((CLIENT_ID, None),),
    ]
    level = order.index(entity)
    # This level and every later one set the quota, each to its own value.
    configured = {e: {PRODUCER_BYTE_RATE: float(100 + i)} for i, e in enumerate(order[level:])}
    quotas = ClientQuotas(ManualClock(), configured=configured)
    assert quotas.resolve(PRODUCER_BYTE_RATE, "alice", "c1") == (100.0, user_tag, client_tag)
    # Another quota type set only elsewhere does not stop the search.
    assert quotas.resolve(CONSUMER_BYTE_RATE, "alice", "c1") is None


def test_a_user_quota_is_shared_by_its_clients_a_default_client_quota_is_not() -> None:
    clock = ManualClock()
    quotas = ClientQuotas(
        clock,
        configured={
            ((USER, "alice"),): {PRODUCER_BYTE_RATE: 1.0 * MB},
            ((CLIENT_ID, None),): {PRODUCER_BYTE_RATE: 1.0 * MB},
        },
    )
    # alice's two clients share one rate: 6 MB each take it over 10 MB per 10 s.
    assert quotas.produce_throttle_ms(ALICE, "a", 6 * MB) == 0
    assert quotas.produce_throttle_ms(ALICE, "b", 6 * MB) == 2000
    # bob's clients fall to /clients/<default>: each its own rate.
    assert quotas.produce_throttle_ms(BOB, "a", 6 * MB) == 0
    assert quotas.produce_throttle_ms(BOB, "b", 6 * MB) == 0


def test_no_quota_configured_throttles_nobody_and_keeps_no_sensor() -> None:
    quotas = ClientQuotas(ManualClock())
    assert quotas.produce_throttle_ms(ALICE, "c", 10**12) == 0
    assert quotas.fetch_throttle_ms(ALICE, "c", 10**12) == 0
    assert quotas.throttle_ms(ALICE, "c", 0) == 0
    assert quotas.fetch_bytes_max(ALICE, "c") is None
    assert quotas.sensor_count == 0


def test_a_throttled_fetch_is_not_counted() -> None:
    quotas = ClientQuotas(
        ManualClock(), configured={((CLIENT_ID, "c"),): {CONSUMER_BYTE_RATE: 1.0 * MB}}
    )
    assert quotas.fetch_throttle_ms(ALICE, "c", 8 * MB) == 0
    assert quotas.fetch_throttle_ms(ALICE, "c", 4 * MB) == 2000  # sent without data
    # Only the 8 MB sent count: 2 MB more is still within 10 MB per 10 s.
    assert quotas.fetch_throttle_ms(ALICE, "c", 2 * MB) == 0
    assert quotas.fetch_bytes_max(ALICE, "c") == 1 * MB  # one window of the quota


def test_request_quota_counts_handler_time_and_throttles_at_most_one_window() -> None:
    clock = ManualClock()
    quotas = ClientQuotas(
        clock, window_num=2, configured={((CLIENT_ID, "c"),): {REQUEST_PERCENTAGE: 10.0}}
    )
    assert quotas.throttle_ms(ALICE, "c", 3) == 0
    quotas.handled(ALICE, "c", 5_000_000_000)  # 5 s of handler time in a 1 s span
    assert quotas.throttle_ms(ALICE, "c", 3) == 1000  # bounded by quota.window.size
    assert quotas.throttle_ms(ALICE, "c", 36) == 0  # SaslAuthenticate is exempt
    assert quotas.throttle_ms(ALICE, "other", 3) == 0


def test_quota_changes_apply_at_once() -> None:
    quotas = ClientQuotas(ManualClock())
    assert quotas.produce_throttle_ms(ALICE, "c", 20 * MB) == 0
    quotas.replace({((CLIENT_ID, "c"),): {PRODUCER_BYTE_RATE: 1.0 * MB}})
    assert quotas.produce_throttle_ms(ALICE, "c", 20 * MB) == 10_000


def test_sensors_are_capped_and_expire_when_idle() -> None:
    clock = ManualClock()
    quotas = ClientQuotas(
        clock, configured={((CLIENT_ID, None),): {PRODUCER_BYTE_RATE: 1.0 * MB}}, sensors_max=100
    )
    for i in range(1000):
        quotas.produce_throttle_ms(ALICE, f"client-{i}", 1)
    assert quotas.sensor_count == 100
    clock.advance(limits.QUOTA_SENSOR_IDLE_MS)
    for _ in range(2048):  # enough recordings for a sweep
        quotas.produce_throttle_ms(ALICE, "active", 1)
    assert quotas.sensor_count == 1
