"""Small statistics helpers (no numpy on purpose: the venv does not need it)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (nan when empty)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


def latency_summary(samples_ms: Sequence[float]) -> dict[str, float]:
    values = sorted(samples_ms)
    return {
        "p50_ms": percentile(values, 50),
        "p99_ms": percentile(values, 99),
        "p999_ms": percentile(values, 99.9),
        "max_ms": values[-1] if values else math.nan,
        "count": len(values),
    }


def spread(values: Sequence[float]) -> dict[str, object]:
    """min / median / max of repeated runs (the headline figures are reported this way)."""
    clean = [v for v in values if v is not None and not math.isnan(v)]
    if not clean:
        return {"min": None, "median": None, "max": None, "runs": list(values)}
    return {
        "min": min(clean),
        "median": statistics.median(clean),
        "max": max(clean),
        "runs": list(values),
    }
