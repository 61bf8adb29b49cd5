"""bench/produce_path.py runs end to end on a tiny workload (its figures are never judged
here): the baseline handler loaded from git answers the same requests as the current one."""

from __future__ import annotations

from bench import produce_path


def test_the_in_process_produce_bench_compares_a_git_ref_with_the_current_tree() -> None:
    summary = produce_path.main(["--baseline", "HEAD", "--rounds", "1", "--requests", "20"])
    assert set(summary) == {9, 11}
    for medians in summary.values():
        assert set(medians) == {"HEAD", "current", "ratio"}
        assert medians["HEAD"] > 0 and medians["current"] > 0
