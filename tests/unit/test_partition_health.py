"""Offline partitions from the partition rows (console/partition_health.py): targeted
here and not served; without a live leader, counted by the controller only; rows of
topics deleted since left out."""

from __future__ import annotations

from contextplane.console.partition_health import OfflineCounts, offline_counts
from contextplane.metadata.records import AssignmentRow

ME = 1


def row(
    stream: int, leader: int, target: int, live: bool = True, topic: str = "t"
) -> AssignmentRow:
    return AssignmentRow(stream, topic, stream, leader, 3, target, live)


ROWS = [
    row(1, ME, ME),  # served here
    row(2, -1, ME),  # targeted here, not claimed yet
    row(3, 2, ME, live=False),  # targeted here, its dead leader's (dirty) claim refused
    row(4, 2, 2),  # another live broker's
    row(5, 2, 2, live=False),  # a dead broker's, targeted at it: offline, not ours
    row(6, -1, 2),  # handed over, its target not claimed yet
    row(7, -1, ME, topic="deleted"),  # a topic deleted since
]
SERVED = {1}


def test_the_broker_counts_what_is_targeted_here_and_not_served() -> None:
    counts = offline_counts(ROWS, ME, SERVED.__contains__, {"t"}, controller=False)
    assert counts == OfflineCounts(here=2, cluster=0)


def test_the_controller_counts_partitions_without_a_live_leader() -> None:
    counts = offline_counts(ROWS, ME, SERVED.__contains__, {"t"}, controller=True)
    assert counts == OfflineCounts(here=2, cluster=4)  # streams 2, 3, 5 and 6


def test_a_broker_serving_everything_targeted_at_it_counts_none() -> None:
    served = {1, 2, 3}
    counts = offline_counts(ROWS, ME, served.__contains__, {"t"}, controller=False)
    assert counts == OfflineCounts(here=0, cluster=0)
    # The deleted topic's row would count, were the topic still known.
    counts = offline_counts(ROWS, ME, served.__contains__, {"t", "deleted"}, controller=False)
    assert counts == OfflineCounts(here=1, cluster=0)
