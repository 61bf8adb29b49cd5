"""Progress records in the target's `__contextplane_mirror` topic that `contextplane
mirror` (offsets mode) never writes: the topic is anyone's to write. A position or
partition that is infinite, past a Kafka offset's range, or a key nested past Python's
recursion limit is read as no progress for that key, as any other record the command
did not write, never as a traceback: under another key the mirror runs and catches up;
replacing the partition's own progress, the mirror has lost where it was and says so,
naming the partition (as for a target topic it did not fill), and appends nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import confluent_kafka as ck
import pytest

from contextplane.cli import mirror_state
from contextplane.cli.kafka_client import CommandError
from contextplane.cli.mirror_state import RECORD_BYTES_MAX, STATE_TOPIC
from contextplane.limits import LONG_MAX
from tests.support.cli import Run, one_error_line
from tests.support.inprocess import InProcessBroker
from tests.support.mirror import create, mirror_once, produce, two_brokers

TOPIC = "orders"
KEY = b'["orders", 0]'
# The partition's own progress replaced by what no Fetch can start at.
REPLACING = [
    b'{"next": Infinity}',  # json reads a float: int() overflows
    b'{"next": 1e400}',
    b'{"next": %d}' % (LONG_MAX + 1),
    b"[" * 100_000,  # json's recursion ends in RecursionError
    # A valid position in a record larger than any this command writes.
    b'{"next": 5, "pad": "%s"}' % (b"x" * RECORD_BYTES_MAX),
]
# Keys of no partition.
BESIDE = [b'["orders", 1e400]', b"[" * 100_000, b'["orders", -1]']


@pytest.fixture
def brokers(tmp_path: Path) -> Iterator[tuple[InProcessBroker, InProcessBroker]]:
    with two_brokers(tmp_path) as (source, target):
        create(source.bootstrap, TOPIC, 1)
        produce(source.bootstrap, TOPIC, 0, 5)
        first = _mirror(source, target)  # the state topic and the progress exist from here
        assert first.rows()[1] == [TOPIC, "0", "5", "5", "0"], first.err
        yield source, target


@pytest.mark.parametrize("value", REPLACING, ids=range(len(REPLACING)))
def test_progress_replaced_by_no_position_is_named(
    brokers: tuple[InProcessBroker, InProcessBroker], value: bytes
) -> None:
    source, target = brokers
    _write_state(target, KEY, value)
    error = one_error_line(_mirror(source, target))
    assert "orders-0 holds 5 offsets on the target that this mirror did not write" in error


@pytest.mark.parametrize("key", BESIDE, ids=range(len(BESIDE)))
def test_a_hostile_key_beside_the_progress_is_ignored(
    brokers: tuple[InProcessBroker, InProcessBroker], key: bytes
) -> None:
    source, target = brokers
    produce(source.bootstrap, TOPIC, 0, 3, start=5)
    _write_state(target, key, b'{"next": 1}')
    run = _mirror(source, target)
    assert run.rows()[1] == [TOPIC, "0", "8", "8", "0"], run.err


def test_what_is_kept_at_start_is_bounded_in_all(
    brokers: tuple[InProcessBroker, InProcessBroker], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records each within the size a progress record may have, under many keys, fill
    the bound on what a start keeps: the read stops, naming it, instead of growing."""
    _, target = brokers
    value = b'{"next": 1, "pad": "%s"}' % (b"x" * (RECORD_BYTES_MAX // 2))
    for key in range(8):
        _write_state(target, b'["filler", %d]' % key, value)
    monkeypatch.setattr(mirror_state, "KEPT_BYTES_MAX", 4 * RECORD_BYTES_MAX // 2)
    with pytest.raises(CommandError, match="its latest records hold more than 131,072 bytes"):
        mirror_state.read_latest({"bootstrap.servers": target.bootstrap})
    monkeypatch.setattr(mirror_state, "KEPT_BYTES_MAX", 16 * RECORD_BYTES_MAX)
    kept = mirror_state.read_latest({"bootstrap.servers": target.bootstrap})
    assert len(kept) == 9  # the mirror's own progress and the fillers


def _write_state(target: InProcessBroker, key: bytes, value: bytes) -> None:
    producer = ck.Producer({"bootstrap.servers": target.bootstrap})
    producer.produce(STATE_TOPIC, key=key, value=value)
    assert producer.flush(30) == 0


def _mirror(source: InProcessBroker, target: InProcessBroker) -> Run:
    return mirror_once(source.bootstrap, target.bootstrap, TOPIC)
