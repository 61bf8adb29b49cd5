"""Micro-benchmark of the record walk, the hot loop of produce validation.

One batch like the produce benchmark's (1,000 records of 1 KiB, no key, no headers,
uncompressed: librdkafka sends incompressible batches so), about 1 MB, walked by the
interpreted `protocol/record_walk.py` and by its mypyc-compiled copy, and validated whole
by `validate_records` (the walk plus what surrounds it), interleaved round by round so
load from elsewhere on the machine falls on every implementation alike:

    .venv/bin/python -m bench.record_walk [--rounds 15]

Prints the median and fastest time per batch and each one's ratio to the interpreted walk.
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import time
from collections.abc import Callable
from types import ModuleType

from conformance.wire import Rec, encode_batch
from contextplane.protocol import record_validation, record_walk
from contextplane.protocol.record_validation import RecordPolicy, validate_records
from contextplane.protocol.records import BATCH_HEADER_BYTES, split_batches

RECORDS = 1_000
VALUE_BYTES = 1024
BASE_TIMESTAMP = 1_800_000_000_000
Walk = Callable[[], None]


def sample_batch(records: int = RECORDS, value_bytes: int = VALUE_BYTES) -> bytes:
    values = [base64.b64encode(os.urandom(value_bytes))[:value_bytes] for _ in range(records)]
    # A 20 ms linger: timestamp deltas of a few milliseconds.
    return encode_batch(
        [Rec(value, timestamp=BASE_TIMESTAMP + i // 50) for i, value in enumerate(values)],
        timestamp=BASE_TIMESTAMP,
    )


def walk_with(module: ModuleType, batch: bytes, records: int = RECORDS) -> Walk:
    """One walk of the whole batch by `module` (record_walk or its compiled copy)."""

    def run() -> None:
        state = module.WalkState()
        stop = module.walk(batch, BATCH_HEADER_BYTES, records, state)
        if state.error or state.index != records or stop != len(batch):
            raise AssertionError(f"walk failed: {state.error!r} at {stop}")

    return run


def validate(batch: bytes) -> Walk:
    """The whole record validation of the batch, as the produce handler calls it."""
    ((header, view),) = split_batches(batch, 1 << 30)
    policy = RecordPolicy("t-0", False, False, 2**63 - 1, 2**63 - 1, 1 << 30)

    def run() -> None:
        validate_records(header, view, policy, BASE_TIMESTAMP)

    return run


def implementations(batch: bytes) -> dict[str, Walk]:
    walks = {"interpreted": walk_with(record_walk, batch)}
    if record_validation.walker is not record_walk:
        walks["mypyc"] = walk_with(record_validation.walker, batch)
    walks[f"validate_records ({_kind()})"] = validate(batch)
    return walks


def _kind() -> str:
    return "interpreted" if record_validation.walker is record_walk else "mypyc"


def measure(walks: dict[str, Walk], rounds: int, budget_s: float = 0.2) -> dict[str, list[float]]:
    """Seconds per call of each walk, one figure per round; the walks take turns within
    a round (rotating who goes first), each repeated for about `budget_s`."""
    repeats = {name: _repeats_for(walk, budget_s) for name, walk in walks.items()}
    names = list(walks)
    figures: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(rounds):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            walk, count = walks[name], repeats[name]
            start = time.perf_counter()
            for _ in range(count):
                walk()
            figures[name].append((time.perf_counter() - start) / count)
    return figures


def _repeats_for(walk: Walk, budget_s: float) -> int:
    start = time.perf_counter()
    walk()
    once = max(time.perf_counter() - start, 1e-7)
    return max(1, int(budget_s / once))


def report(figures: dict[str, list[float]], baseline: str = "interpreted") -> str:
    base = statistics.median(figures[baseline])
    lines = [f"{'':32} {'median us':>10} {'min us':>10} {'speed-up':>9}"]
    for name, values in figures.items():
        median = statistics.median(values)
        lines.append(
            f"{name:32} {median * 1e6:10.1f} {min(values) * 1e6:10.1f} {base / median:8.1f}x"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    batch = sample_batch()
    print(f"batch: {len(batch):,} bytes, {RECORDS:,} records")
    print(report(measure(implementations(batch), args.rounds)))


if __name__ == "__main__":
    main()
