"""`--workloads`: which of the workloads (bench/README.md's table, column "name") run.

A target is re-measured without the whole run: `--workloads catch-up,object-requests`.
The workloads share phases (one broker, one load): catch-up and restart share the
retained load; object requests, peak RSS and the one-partition replay share the loads at
each partition count. What is not asked for is skipped, and its figures are n/a.
"""

from __future__ import annotations

WORKLOADS: dict[str, str] = {
    "throughput": "produce throughput",
    "latency": "produce / end-to-end latency",
    "catch-up": "catch-up read",
    "restart": "restart",
    "object-requests": "object requests",
    "peak-rss": "peak RSS",
    "replay": "one partition of 1,000 replayed",
    "limits": "limits",
    "masking": "masked fetch",
    "registry": "schema registry lookups",
}

# The result keys each workload fills (a target's result dict).
RESULT_KEYS: dict[str, tuple[str, ...]] = {
    "throughput": ("throughput",),
    "latency": ("latency",),
    "catch-up": ("catchup", "store_get", "store_get_8", "retained"),
    "restart": ("restart", "retained"),
    "object-requests": ("partitions",),
    "peak-rss": ("partitions",),
    "replay": ("replay",),
    "limits": (),
    "masking": ("masking",),
    "registry": ("registry",),
}


def parse_workloads(items: list[str]) -> frozenset[str]:
    """Names given comma or space separated; none (or `all`) means every workload."""
    names: list[str] = []
    for item in items:
        for name in item.replace(",", " ").split():
            if name == "all":
                names.extend(WORKLOADS)
            elif name not in WORKLOADS:
                raise SystemExit(f"unknown workload {name!r}; choose from {', '.join(WORKLOADS)}")
            else:
                names.append(name)
    return frozenset(names or WORKLOADS)


# The phases of bench/run.py each workload takes part in.
PHASE_OF: dict[str, str] = {
    "throughput": "produce",
    "latency": "produce",
    "catch-up": "retained",
    "restart": "retained",
    "object-requests": "partitions",
    "peak-rss": "partitions",
    "replay": "partitions",
    "limits": "limits",
    "masking": "masking",
    "registry": "registry",
}


def phases(selected: frozenset[str]) -> set[str]:
    return {PHASE_OF[name] for name in selected}


def skipped_keys(selected: frozenset[str]) -> set[str]:
    """Result keys that no selected workload fills."""
    filled = {key for name in selected for key in RESULT_KEYS[name]}
    every = {key for keys in RESULT_KEYS.values() for key in keys}
    return every - filled
