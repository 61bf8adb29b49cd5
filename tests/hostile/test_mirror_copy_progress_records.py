"""Progress records in the target's state topic that the copy mirror never writes (the
target is anyone's to write): each is read as no progress at all, never as a traceback
nor as offsets the mirror would seek to or commit for a group."""

from __future__ import annotations

import json

import pytest

from contextplane.cli.mirror_copy import state_key, stored_progress
from contextplane.limits import LONG_MAX

KEY = state_key("m", "orders", 0)
HOSTILE = [
    b'{"next": Infinity}',  # json reads it as a float: int() overflows
    b'{"next": 1e400}',
    b'{"next": 10, "runs": [[Infinity, 0, 1]]}',
    b'{"next": 10, "runs": [[0, -Infinity, 1]]}',
    json.dumps({"next": LONG_MAX + 1}).encode(),
    json.dumps({"next": 10, "runs": [[0, LONG_MAX, 2]]}).encode(),  # ends past a long
    b'{"next": 1.5}',
    b'{"next": true}',
    b'{"next": -3}',
    b'{"next": 10, "runs": {"123": 1}}',  # a string per run, unpacked as digits
    b'{"next": 10, "runs": [[0, 0, 0]]}',  # an empty run
    b'{"next": 10, "runs": [[0, 5, 4], [2, 9, 1]]}',  # overlapping sources
    b'{"next": 10, "runs": [[0, 5, 4], [6, 7, 1]]}',  # overlapping targets
    b'{"next": 10, "runs": [[0, 0, 50]]}',  # copied past its own position
    b'{"next": 10, "runs": [], "trimmed": "no"}',
    b"[" * 100_000 + b"]" * 100_000,
]


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_a_record_the_mirror_never_writes_is_no_progress(value: bytes) -> None:
    progress = stored_progress({KEY: value}, "m", "orders", 0)
    assert (progress.position, progress.offsets.runs, progress.stored) == (0, [], False)


def test_what_the_mirror_writes_is_read_back() -> None:
    value = {"next": 12, "runs": [[0, 0, 4], [6, 5, 2]], "trimmed": False}
    progress = stored_progress({KEY: json.dumps(value).encode()}, "m", "orders", 0)
    assert progress.stored and progress.position == 12
    assert progress.offsets.to_json() == {"runs": value["runs"], "trimmed": False}
