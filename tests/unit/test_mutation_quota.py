"""controller_mutation_rate's token bucket and its strict and permissive behaviours, with
the numbers of Kafka's own Strict/PermissiveControllerMutationQuotaTest (quota 10 per
second, 10 one-second windows: a bucket of 100)."""

from __future__ import annotations

from contextplane.security.mutation_quota import MutationQuota, TokenBucket


class Clock:
    def __init__(self) -> None:
        self.ms = 1_000_000

    def __call__(self) -> int:
        return self.ms


def test_strict_accepts_until_exhausted_then_refuses_and_says_how_long() -> None:
    clock = Clock()
    bucket = TokenBucket(10, 100, clock.ms)
    quota = MutationQuota(bucket, strict=True, clock_ms=clock)
    assert quota.accept(90) and quota.throttle_ms() == 0  # 10 tokens left
    assert quota.accept(90) and quota.throttle_ms() == 0  # -80: accepted, not throttled
    assert not quota.accept(30)  # exhausted: refused, not recorded
    assert quota.throttle_ms() == 8000
    clock.ms += 100
    assert quota.throttle_ms() == 7900  # the time since the refusal is deducted
    clock.ms += 3900
    assert not quota.accept(1)
    assert quota.throttle_ms() == 4000  # -40 tokens: 4 s
    clock.ms += 4000
    assert quota.accept(1)  # whole again


def test_permissive_accepts_everything_and_throttles_once_exhausted() -> None:
    clock = Clock()
    bucket = TokenBucket(10, 100, clock.ms)
    quota = MutationQuota(bucket, strict=False, clock_ms=clock)
    assert quota.accept(90) and quota.throttle_ms() == 0
    assert quota.accept(90) and quota.throttle_ms() == 8000
    assert quota.accept(30) and quota.throttle_ms() == 11000


def test_the_bucket_refills_to_its_burst_only() -> None:
    clock = Clock()
    bucket = TokenBucket(10, 100, clock.ms)
    clock.ms += 60_000
    bucket.refill(clock.ms)
    assert bucket.tokens == 100
    bucket.reconfigure(1, 20)  # a lower quota caps what is left
    assert bucket.tokens == 20
