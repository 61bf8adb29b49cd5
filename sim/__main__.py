"""Run the storage simulation from the command line.

python -m sim                  # seeds 0..999
python -m sim --seeds 5000:6000
SEED=1234 python -m sim        # one seed, its trace printed
python -m sim --seed 1234 --canary ack-before-sync
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys

from contextplane.storage.memory_wal import MemoryWal
from sim.canary import AckBeforeSyncWal, SpinningWal
from sim.workload import simulate

VARIANTS = {"none": MemoryWal, "ack-before-sync": AckBeforeSyncWal, "spin": SpinningWal}


def trace_digest(trace: list[str]) -> str:
    return hashlib.sha256("\n".join(trace).encode()).hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(description="the storage engine's deterministic simulation")
    parser.add_argument("--seed", type=int, default=None, help="one seed, trace printed")
    parser.add_argument("--seeds", default="0:1000", help="a range of seeds, FIRST:END")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--canary", choices=sorted(VARIANTS), default="none")
    parser.add_argument("--digest", action="store_true", help="print the trace's digest only")
    args = parser.parse_args()
    wal = VARIANTS[args.canary]
    seed = args.seed if args.seed is not None else os.environ.get("SEED")
    if seed is not None:
        result = simulate(int(seed), args.steps, wal)
        print(trace_digest(result.trace) if args.digest else "\n".join(result.trace))
        if result.violation:
            print(f"seed {seed}: {result.violation}", file=sys.stderr)
        return 1 if result.violation else 0
    first, end = (int(x) for x in args.seeds.split(":"))
    failed = 0
    for n in range(first, end):
        result = simulate(n, args.steps, wal)
        if result.violation:
            failed += 1
            print(f"seed {n}: {result.violation} (reproduce: SEED={n} python -m sim)")
    print(f"{end - first} seeds, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
