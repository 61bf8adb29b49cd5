"""Benchmark profiles: how much data and time each workload gets.

`standard` is the one the issue's targets are judged on (about 20 minutes on the 2-core
machine for all five targets); `quick` is a smoke run of every workload with small data;
`smoke` is the tiniest, used by tests/bench/test_bench_smoke.py (contextplane only, < 60 s).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

MIB = 1024 * 1024
GIB = 1024 * MIB


@dataclass(frozen=True)
class Profile:
    name: str
    # produce throughput: acks=all, lz4, 8 partitions, large batches
    throughput_runs: int
    throughput_seconds: float
    # produce / end-to-end latency at a fixed moderate rate
    latency_runs: int
    latency_seconds: float
    latency_rate: int  # messages per second (1 KiB each)
    # a run of the same load per target before the measured ones, not recorded (a cold
    # JVM's first run used 1.57 cores and answered at p50 1.7 s; 0.38 s a run later)
    latency_warmup_seconds: float
    # retained data: restart with restart_small, catch-up over catchup, restart with large
    restart_small_bytes: int
    catchup_bytes: int
    restart_large_bytes: int
    catchup_before_seconds: float  # producer-only window before the catch-up starts
    # object requests and peak RSS at several partition counts
    partition_counts: tuple[int, ...]
    partitions_bytes: int
    partitions_create_timeout: float  # give up on a partition count whose topic takes longer
    # physical limits
    limit_write_bytes: int
    limit_fsyncs: int
    limit_tcp_bytes: int
    # headline figures are repeated this many times at most (min/median/max)
    message_bytes: int = 1024
    partitions: int = 8
    # the one-partition replay reads partition 0 of a topic of this many partitions
    replay_partitions: int = 1000
    # masked fetch (bench/masking.py): records per format, read by each reader per round
    masking_records: int = 50_000
    masking_rounds: int = 3
    # schema registry lookups (bench/registry_lookups.py): schemas registered, then rounds
    # of this many seconds per lookup kind
    registry_schemas: int = 200
    registry_seconds: float = 5.0
    registry_rounds: int = 3

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


PROFILES = {
    "smoke": Profile(
        name="smoke",
        throughput_runs=1,
        throughput_seconds=1.5,
        latency_runs=1,
        latency_seconds=2.0,
        latency_rate=500,
        latency_warmup_seconds=1.0,
        restart_small_bytes=8 * MIB,
        catchup_bytes=16 * MIB,
        restart_large_bytes=24 * MIB,
        catchup_before_seconds=1.0,
        partition_counts=(8, 100),
        partitions_bytes=4 * MIB,
        partitions_create_timeout=20.0,
        limit_write_bytes=16 * MIB,
        limit_fsyncs=50,
        limit_tcp_bytes=64 * MIB,
        replay_partitions=100,
        masking_records=2_000,
        masking_rounds=1,
        registry_schemas=20,
        registry_seconds=0.5,
        registry_rounds=1,
    ),
    "quick": Profile(
        name="quick",
        throughput_runs=3,
        throughput_seconds=3.0,
        latency_runs=3,
        latency_seconds=3.0,
        latency_rate=2000,
        latency_warmup_seconds=3.0,
        restart_small_bytes=128 * MIB,
        catchup_bytes=256 * MIB,
        restart_large_bytes=512 * MIB,
        catchup_before_seconds=2.0,
        partition_counts=(8, 1000, 10000),
        partitions_bytes=64 * MIB,
        partitions_create_timeout=30.0,
        limit_write_bytes=128 * MIB,
        limit_fsyncs=300,
        limit_tcp_bytes=512 * MIB,
        masking_records=10_000,
        masking_rounds=2,
        registry_schemas=100,
        registry_seconds=2.0,
        registry_rounds=2,
    ),
    "standard": Profile(
        name="standard",
        throughput_runs=3,
        throughput_seconds=8.0,
        latency_runs=3,
        latency_seconds=8.0,
        latency_rate=2000,
        latency_warmup_seconds=8.0,
        restart_small_bytes=1 * GIB,
        catchup_bytes=2 * GIB,
        restart_large_bytes=10 * GIB,
        catchup_before_seconds=4.0,
        partition_counts=(8, 1000, 10000),
        partitions_bytes=512 * MIB,
        partitions_create_timeout=60.0,
        limit_write_bytes=512 * MIB,
        limit_fsyncs=1000,
        limit_tcp_bytes=2 * GIB,
    ),
}
