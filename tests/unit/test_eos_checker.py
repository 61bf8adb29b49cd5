"""The exactly-once checker flags what it is there to flag: each fabricated history below
breaks one invariant, and a clean history passes (a checker that cannot fail proves
nothing about the broker)."""

from __future__ import annotations

from tests.support.eos_checker import Outcome, Sent, Txn, check_transactions, check_transform


def _txn(name: str, outcome: Outcome, partitions: list[int]) -> Txn:
    return Txn(
        name, outcome, [Sent(f"{name}-{i}".encode(), p, True) for i, p in enumerate(partitions)]
    )


def _history() -> list[Txn]:
    return [
        _txn("a", Outcome.COMMITTED, [0, 1]),
        _txn("b", Outcome.ABORTED, [0, 1]),
        _txn("c", Outcome.UNKNOWN, [1, 0]),
    ]


def _uncommitted() -> dict[int, list[bytes]]:
    return {0: [b"a-0", b"b-0", b"c-1"], 1: [b"a-1", b"b-1", b"c-0"]}


def _kinds(committed: dict[int, list[bytes]], txns: list[Txn] | None = None) -> list[str]:
    uncommitted = _uncommitted() if txns is None else committed
    return sorted(a.kind for a in check_transactions(txns or _history(), committed, uncommitted))


def test_a_clean_history_passes_whichever_way_an_unknown_outcome_went() -> None:
    assert _kinds({0: [b"a-0", b"c-1"], 1: [b"a-1", b"c-0"]}) == []
    assert _kinds({0: [b"a-0"], 1: [b"a-1"]}) == []


def test_an_aborted_record_visible_read_committed_is_flagged() -> None:
    assert _kinds({0: [b"a-0", b"b-0"], 1: [b"a-1"]}) == ["aborted-visible"]


def test_an_acknowledged_commit_missing_a_partition_is_flagged() -> None:
    assert _kinds({0: [b"a-0"], 1: []}) == ["lost-commit"]


def test_an_unknown_outcome_seen_in_part_is_flagged() -> None:
    assert _kinds({0: [b"a-0", b"c-1"], 1: [b"a-1"]}) == ["partial"]


def test_a_duplicate_commit_is_flagged() -> None:
    assert _kinds({0: [b"a-0", b"a-0"], 1: [b"a-1"]}) == ["duplicate"]


def test_a_record_in_another_partition_reordered_or_never_sent_is_flagged() -> None:
    assert _kinds({0: [b"a-0", b"a-1"], 1: []}) == ["misplaced"]
    txns = [_txn("d", Outcome.COMMITTED, [0, 0])]
    assert _kinds({0: [b"d-1", b"d-0"]}, txns) == ["reordered"]
    assert _kinds({0: [b"a-0", b"zz"], 1: [b"a-1"]}) == ["phantom"]


def test_a_delivered_record_missing_read_uncommitted_is_flagged() -> None:
    txns = _history()
    anomalies = check_transactions(txns, {0: [b"a-0"], 1: [b"a-1"]}, {0: [b"a-0"], 1: [b"a-1"]})
    assert sorted({a.kind for a in anomalies}) == ["lost-write"]


def _transform_kinds(outputs: dict[int, list[bytes]], group: dict[int, int]) -> list[str]:
    inputs = {0: [b"x", b"y"], 1: [b"z"]}
    offsets = {0: [0, 2], 1: [0]}  # offset 1 of partition 0: a commit marker
    ends = {0: 4, 1: 2}
    return sorted(a.kind for a in check_transform(inputs, offsets, ends, outputs, group))


def test_a_transform_that_copied_each_record_once_passes() -> None:
    assert _transform_kinds({0: [b"x", b"y"], 1: [b"z"]}, {0: 3, 1: 1}) == []
    assert _transform_kinds({0: [b"y", b"x"], 1: [b"z"]}, {0: 4, 1: 2}) == []


def test_a_transform_duplicate_loss_or_mismatched_offsets_are_flagged() -> None:
    assert _transform_kinds({0: [b"x", b"y", b"x"], 1: [b"z"]}, {0: 3, 1: 1}) == [
        "transform-duplicate"
    ]
    # The group committed past y, which never reached the output.
    assert _transform_kinds({0: [b"x"], 1: [b"z"]}, {0: 3, 1: 1}) == ["transform-lost"]
    # y reached the output, the offset that consumed it did not commit.
    assert _transform_kinds({0: [b"x", b"y"], 1: [b"z"]}, {0: 1, 1: 1}) == [
        "transform-behind",
        "transform-extra",
    ]
    assert _transform_kinds({0: [b"x", b"y"], 1: [b"z"]}, {0: 5, 1: 1}) == ["transform-ahead"]
