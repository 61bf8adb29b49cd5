"""The trace's translation of recorded positions through a copy mirror's offset map
(services/trace/rollback.py): exact where the kept runs hold a record, missing with why
where they do not (never another record's offset), read positions rounded down and
flagged where runs were dropped, and the state topic's records read strictly."""

from __future__ import annotations

import json
from typing import Any

from contextplane.cli.mirror_offset_map import RUNS_MAX, OffsetMap
from contextplane.services.trace import receipts, rollback


def translation(offsets: OffsetMap, copied_to: int) -> rollback.Translation:
    copied = rollback.Copied("back", copied_to, offsets)
    return rollback.Translation({("t", 0): copied})


def test_a_record_in_a_kept_run_is_where_the_mirror_put_it() -> None:
    offsets = OffsetMap()
    for source, target in [(0, 0), (1, 1), (3, 3), (4, 4), (6, 7)]:  # 2, 5: markers
        offsets.add(source, target)
    found = translation(offsets, 7)
    assert [found.record("t", 0, o) for o in (0, 1, 3, 4, 6)] == [0, 1, 3, 4, 7]
    assert "no record copied from there" in str(found.record("t", 0, 5))
    assert str(found.record("t", 0, 7)).startswith("not copied: the mirror copied t[0] below 7")
    assert found.record("u", 0, 5) == 5  # a partition no mirror copied: as recorded
    assert found.position("t", 0, 6) == (7, False)  # the next offset after source 5
    assert found.position("t", 0, 8) is None  # past what was copied
    # The decision at target offset 7 was copied; one written there after was not.
    assert found.copied("t", 0, 7) and not found.copied("t", 0, 8)


def test_a_record_in_dropped_runs_is_missing_with_its_bounds() -> None:
    offsets = OffsetMap()
    for n in range(RUNS_MAX + 10):  # every record its own run: gaps of one on the target
        offsets.add(n, 2 * n)
    assert offsets.trimmed
    found = translation(offsets, RUNS_MAX + 10)
    kept = offsets.runs[1].source
    assert found.record("t", 0, kept) == 2 * kept
    why = found.record("t", 0, 5)
    assert isinstance(why, str) and "dropped" in why
    assert f"from 1 to {2 * kept - 1}" in why  # after run 0, before run 1
    assert found.position("t", 0, 5) == (1, True)  # rounded down, flagged
    assert found.position("t", 0, kept) == (2 * kept, False)
    detail: dict[str, Any] = {}
    where = rollback.positions(found, [{"topic": "t", "partition": 0, "position": 5}], detail)
    assert where == "t[0]=1" and detail["recorded_positions"] == "t[0]=5"
    assert detail["positions_not_exact"] == ["t[0]=1: rounded down (runs of the map dropped)"]


def test_two_mirrors_of_one_partition_translate_nothing() -> None:
    found = rollback.Translation(ambiguous={("t", 0): ["a", "b"]})
    assert "more than one copy mirror (a, b)" in str(found.record("t", 0, 3))
    detail: dict[str, Any] = {}
    assert rollback.positions(found, [{"topic": "t", "partition": 0, "position": 3}], detail)
    assert detail["positions_not_exact"] == ["t[0]=3: not known here"]


def test_progress_records_are_read_strictly() -> None:
    def key(*parts: Any) -> bytes:
        return json.dumps(list(parts)).encode()

    good = json.dumps({"next": 4, "runs": [[0, 0, 4]], "trimmed": False}).encode()
    parsed = rollback._progress(key("copy", "back", "t", 0), good)
    assert parsed is not None and parsed[0] == ("t", 0) and parsed[1].copied_to == 4
    past = json.dumps({"next": 2, "runs": [[0, 0, 4]]}).encode()
    for bad_key, value in [
        (key("copy", "back", "t", 0), past),  # runs past what was copied
        (key("copy", "back", "t", -1), good),
        (key("keep", "back", "t", 0), good),
        (b'{"copy": 1, "a": 2, "b": 3, "c": 4}', good),
        (key("copy", "back", "t", 0), None),
        (key("copy", "back", "t", 0), b"[" * 100_000),
    ]:
        assert rollback._progress(bad_key, value) is None


def test_the_context_service_reader_is_named_from_its_client_id() -> None:
    member = receipts.context_member
    assert member("ctx-sources", "ctx-sources-p1@http://127.0.0.1:8080") == {
        "service": "ctx",
        "member": "p1",
    }
    assert member(None, "ctx-sources") == {
        "service": "ctx",
        "member": "single instance (assign(): joins no group)",
    }
    assert member("ctx-sources", "other") == {}
    assert member("app", "app-sources-x") == {}
    assert member(None, "-sources") == {}
    assert member(None, None) == {}
