"""/metrics' per group-partition series are bounded: past GROUP_PARTITION_SERIES_MAX the
later groups (in name order) keep their members and per-topic lag sums, and the number
left out is itself a gauge."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from contextplane.broker.stats import TopicCounters
from contextplane.console import metrics
from contextplane.console.metrics import PartitionRow, Snapshot, render


def samples(snapshot: Snapshot) -> dict[str, list[tuple[dict[str, str], float]]]:
    text = render(snapshot).decode()
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def test_group_partitions_past_the_bound_keep_only_their_lag_sums(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(metrics, "GROUP_PARTITION_SERIES_MAX", 5)
    rows = [PartitionRow("t", p, 1, 0, 100) for p in range(3)]
    snapshot = Snapshot(
        brokers=1, partitions=rows, all_topics=TopicCounters(), topics={}, requests={}
    )
    for group in ("a", "b", "c"):
        snapshot.groups[group] = (1, {("t", p): 10 * (p + 1) for p in range(3)})
    found = samples(snapshot)
    lags = {
        (labels["consumergroup"], labels["partition"])
        for labels, _ in found["kafka_consumergroup_lag"]
    }
    assert lags == {("a", "0"), ("a", "1"), ("a", "2"), ("b", "0"), ("b", "1")}
    assert len(found["kafka_consumergroup_current_offset"]) == 5
    sums = {
        labels["consumergroup"]: value for labels, value in found["kafka_consumergroup_lag_sum"]
    }
    assert sums == {"a": 240.0, "b": 240.0, "c": 240.0}  # (100-10)+(100-20)+(100-30)
    assert len(found["kafka_consumergroup_members"]) == 3
    assert found["contextplane_metrics_group_partition_series_omitted"] == [({}, 4.0)]


def test_nothing_is_left_out_below_the_bound() -> None:
    rows = [PartitionRow("t", 0, 1, 0, 7)]
    snapshot = Snapshot(
        brokers=1, partitions=rows, all_topics=TopicCounters(), topics={}, requests={}
    )
    snapshot.groups["g"] = (0, {("t", 0): 2})
    found = samples(snapshot)
    assert found["kafka_consumergroup_lag"] == [
        ({"consumergroup": "g", "topic": "t", "partition": "0"}, 5.0)
    ]
    assert found["contextplane_metrics_group_partition_series_omitted"] == [({}, 0.0)]
