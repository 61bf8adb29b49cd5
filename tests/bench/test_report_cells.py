"""The results table shows a figure a selected workload measured even when other
workloads of the same target were not run (the target's `na` lists those)."""

from __future__ import annotations

from bench.report import _value_cell


def test_a_measured_figure_is_shown_beside_workloads_not_run() -> None:
    target = {
        "na": {"catchup": "not run: not among --workloads"},
        "partitions": {"1000": {"gets_per_gib": 432.0}, "10000": {"na": "create timed out"}},
    }
    assert _value_cell(target, "partitions", "1000", "gets_per_gib").value == 432.0
    assert _value_cell(target, "partitions", "10000", "gets_per_gib").na == "create timed out"
    assert _value_cell(target, "catchup", "MBps").na == "not run: not among --workloads"
