"""The placement function (RFC 0004 §2): deterministic, only on the brokers given, stable
(a broker's arrival takes only what it now wins, about 1/N; a departure moves only the
departed broker's partitions) and even across racks whatever their sizes."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from contextplane.cluster.assignment_plan import Candidate, Placement, place

STREAMS = list(range(1, 2001))

racks = st.sampled_from([None, "a", "b", "c"])
brokers = st.lists(
    st.builds(Candidate, st.integers(0, 50), racks),
    min_size=1,
    max_size=8,
    unique_by=lambda c: c.node_id,
)


@given(brokers, st.lists(st.integers(0, 2**40), max_size=50))
def test_placement_is_deterministic_and_only_on_the_brokers_given(
    candidates: list[Candidate], streams: list[int]
) -> None:
    placed = place(streams, candidates)
    assert set(placed.values()) <= {c.node_id for c in candidates}
    # The same answer whatever the order the brokers are listed in, and every time.
    assert place(streams, list(reversed(candidates))) == placed
    assert place(streams, candidates) == placed


@settings(max_examples=20, deadline=None)
@given(brokers, st.integers(51, 60), racks)
def test_an_arrival_takes_only_what_it_wins_and_a_departure_moves_only_its_own(
    candidates: list[Candidate], newcomer: int, rack: str | None
) -> None:
    before = place(STREAMS, candidates)
    arrived = Candidate(newcomer, rack)
    after = place(STREAMS, [*candidates, arrived])
    moved = [s for s in STREAMS if before[s] != after[s]]
    assert all(after[s] == newcomer for s in moved)
    # Leaving again puts everything back where it was.
    assert place(STREAMS, candidates) == before
    # About 1/N: its rack's share of its rack's brokers (a new rack: 1/racks).
    same_rack = [c for c in candidates if c.rack == rack]
    rack_count = len({c.rack for c in candidates} | {rack})
    share = 1 / rack_count / (len(same_rack) + 1)
    assert abs(len(moved) / len(STREAMS) - share) < 0.05 + share / 2


def test_each_rack_gets_an_even_share_whatever_its_size() -> None:
    candidates = [Candidate(1, "a"), Candidate(2, "b"), Candidate(3, "b"), Candidate(4, "b")]
    counts = Counter(place(STREAMS, candidates).values())
    assert abs(counts[1] / len(STREAMS) - 0.5) < 0.04  # rack a, one broker: half
    for node in (2, 3, 4):  # rack b's half, evenly
        assert abs(counts[node] / len(STREAMS) - 1 / 6) < 0.04


def test_brokers_without_a_rack_share_evenly() -> None:
    counts = Counter(place(STREAMS, [Candidate(n, None) for n in (1, 2, 3)]).values())
    assert sorted(counts) == [1, 2, 3]
    assert all(abs(count / len(STREAMS) - 1 / 3) < 0.04 for count in counts.values())


def test_a_placement_needs_a_broker() -> None:
    try:
        Placement([])
    except ValueError:
        return
    raise AssertionError("a placement over no broker was made")
