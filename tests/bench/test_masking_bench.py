"""bench/masking.py runs end to end on a tiny workload (its figures are never judged
here): every format is loaded, checked masked for copilot as the three policies say
(redact, hash, keep-last-4) and clear for alice, read by both, and summarised as masked /
unmasked ratios."""

from __future__ import annotations

from pathlib import Path

from bench import masking


def test_the_masking_benchmark_measures_every_format(tmp_path: Path) -> None:
    found = masking.run(records=500, rounds=1, where=tmp_path)
    assert set(found) == set(masking.FORMATS)
    for figures in found.values():
        assert set(figures["medians"]) == set(masking.READERS)
        for reader in figures["medians"].values():
            assert reader["records_per_s"] > 0 and reader["mb_per_s"] > 0
            # CPU time comes in 10 ms ticks: a tiny workload may cost none of them.
            assert reader["broker_cpu_us_per_record"] >= 0
        assert figures["throughput_ratio"] > 0 and figures["throughput_ratio_paired"] > 0
        assert 500 < figures["value_bytes_mean"] < 1100  # a realistic event's size
