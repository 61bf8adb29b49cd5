"""The copy mirror's offset map: a group's source offset becomes the target offset of the
first copied record at or after it, exactly where the map holds the records around it,
rounded down (never past an unread record) where runs were dropped, and not at all past
what was copied."""

from __future__ import annotations

from contextplane.cli.mirror_offset_map import RUNS_MAX, OffsetMap


def copied(pairs: list[tuple[int, int]]) -> OffsetMap:
    offsets = OffsetMap()
    for source, target in pairs:
        offsets.add(source, target)
    return offsets


def test_runs_follow_gaps_on_either_side() -> None:
    # Source 0-3, then 6-7 past an aborted record and a marker; the target's commit
    # marker sits at 4.
    offsets = copied([(0, 0), (1, 1), (2, 2), (3, 3), (6, 5), (7, 6)])
    assert [(r.source, r.target, r.count) for r in offsets.runs] == [(0, 0, 4), (6, 5, 2)]
    assert offsets.translate(2, copied_to=8) == 2  # inside a run: exact
    assert offsets.translate(4, copied_to=8) == 5  # a gap: the next copied record
    assert offsets.translate(5, copied_to=8) == 5
    assert offsets.translate(8, copied_to=8) == 7  # everything read: after the last
    assert offsets.translate(9, copied_to=8) is None  # not copied yet


def test_offsets_before_the_first_copied_record_and_an_empty_map() -> None:
    offsets = copied([(10, 0), (11, 1)])  # the source's log started at 10
    assert offsets.translate(0, copied_to=12) == 0
    assert OffsetMap().translate(0, copied_to=5) == 0
    assert OffsetMap().translate(6, copied_to=5) is None


def test_dropped_runs_round_down_and_the_first_run_stays() -> None:
    # Every record its own run (a marker between each on the target).
    offsets = copied([(n, 2 * n) for n in range(RUNS_MAX + 10)])
    assert len(offsets.runs) == RUNS_MAX and offsets.trimmed
    assert offsets.runs[0].source == 0
    assert offsets.translate(0, copied_to=RUNS_MAX + 10) == 0
    # Source 5's run was dropped: rounded down to just after the first run, which never
    # passes the record it should name (at 10).
    assert offsets.translate(5, copied_to=RUNS_MAX + 10) == 1
    last = RUNS_MAX + 9
    assert offsets.translate(last, copied_to=last + 1) == 2 * last  # kept: exact


def test_the_map_survives_its_json() -> None:
    offsets = copied([(n, 2 * n) for n in range(RUNS_MAX + 3)])
    again = OffsetMap.from_json(offsets.to_json(), copied_to=RUNS_MAX + 3)
    assert again == offsets
    oversized = {"runs": [[n, n, 1] for n in range(0, 4 * RUNS_MAX, 2)]}
    trimmed = OffsetMap.from_json(oversized, copied_to=4 * RUNS_MAX)
    assert len(trimmed.runs) == RUNS_MAX and trimmed.trimmed
    assert trimmed.runs[0].source == 0


def test_a_copy_grows_on_its_own() -> None:
    # A round adds to a copy and keeps it only once its transaction commits.
    offsets = copied([(0, 0), (1, 1)])
    grown = offsets.copy()
    grown.add(2, 2)
    grown.add(5, 4)
    assert [(r.source, r.count) for r in offsets.runs] == [(0, 2)]
    assert [(r.source, r.count) for r in grown.runs] == [(0, 3), (5, 1)]
