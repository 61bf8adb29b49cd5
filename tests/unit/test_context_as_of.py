"""Point-in-time reads without a broker: folding from a snapshot's state up to a vector V
gives the state the apply loop's fold reached at V (randomised records, random batch
boundaries, every snapshot point ≤ V), the same answer every time; and the snapshots on
disk: named by their positions, the newest kept, found again after a restart, never
deleted under a read."""

from __future__ import annotations

import json
import random
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from contextplane.services.context.app import offset_vector
from contextplane.services.context.as_of import Ordered, fold_in_order, folds_of
from contextplane.services.context.errors import ContextError
from contextplane.services.context.freshness import Position
from contextplane.services.context.merge import Entity, Fold, Origin, fold_bounded
from contextplane.services.context.snapshots import Snapshots
from contextplane.services.context.store import LocalStore
from contextplane.services.context.views import Source, View

PARTITIONS = 3
VIEW = View(
    "account",
    (
        Source("crm.accounts", None, "profile", "latest", 1, "delete-entity"),
        Source("crm.accounts", None, "history", "list", 4, "ignore"),
    ),
)
ENTITIES = [f"a{n}" for n in range(6)]


@dataclass(frozen=True)
class Record:
    """A source record as the consumer hands it over (key and value bytes)."""

    origin: Origin
    raw_key: bytes
    raw_value: bytes | None

    def key(self) -> bytes:
        return self.raw_key

    def value(self) -> bytes | None:
        return self.raw_value


def random_log(rng: random.Random, length: int) -> dict[int, list[Record]]:
    """Keyed records: an entity lives in one partition, as Kafka's partitioner puts it."""
    log: dict[int, list[Record]] = {p: [] for p in range(PARTITIONS)}
    clock = 1_700_000_000_000
    for _ in range(length):
        entity = rng.choice(ENTITIES)
        partition = ENTITIES.index(entity) % PARTITIONS
        clock += rng.randrange(0, 3)  # ties happen
        value = None if rng.random() < 0.1 else json.dumps({"n": rng.randrange(100)}).encode()
        origin = Origin("crm.accounts", partition, len(log[partition]), clock)
        log[partition].append(Record(origin, entity.encode(), value))
    return log


def applied(log: dict[int, list[Record]], upto: dict[int, int], rng: random.Random) -> dict:
    """What the apply loop holds at positions `upto`: partitions consumed in a random
    interleaving, in batches of random size, each entity folded once per batch."""
    states: dict[str, Entity | None] = {}
    heads = dict.fromkeys(range(PARTITIONS), 0)
    while any(heads[p] < upto[p] for p in heads):
        batch: dict[str, list[Fold]] = {}
        for _ in range(rng.randrange(1, 8)):
            open_partitions = [p for p in heads if heads[p] < upto[p]]
            if not open_partitions:
                break
            p = rng.choice(open_partitions)
            record = log[p][heads[p]]
            heads[p] += 1
            for entity in ENTITIES:
                batch.setdefault(entity, []).extend(folds_of(VIEW, entity, record, record.origin))
        for entity, folds in batch.items():
            states[entity], _ = fold_bounded(states.get(entity), folds)
    return states


def past(
    log: dict[int, list[Record]],
    entity: str,
    start: dict[int, int],
    upto: dict[int, int],
    current: Entity | None,
) -> Entity | None:
    partitions: dict[tuple[str, int], list[Ordered]] = {}
    for p in range(PARTITIONS):
        found: list[Ordered] = []
        for record in log[p][start[p] : upto[p]]:
            for fold in folds_of(VIEW, entity, record, record.origin):
                found.append(((record.origin.timestamp_ms, "crm.accounts", p), fold))
        partitions[("crm.accounts", p)] = found
    return fold_in_order(current, partitions)


@pytest.mark.parametrize("seed", range(20))
def test_folding_from_any_snapshot_to_v_gives_the_applied_state(seed: int) -> None:
    rng = random.Random(seed)
    log = random_log(rng, 120)
    for _ in range(4):
        upto = {p: rng.randrange(0, len(log[p]) + 1) for p in range(PARTITIONS)}
        at_v = applied(log, upto, rng)
        for _ in range(3):
            start = {p: rng.randrange(0, upto[p] + 1) for p in range(PARTITIONS)}
            snapshot = applied(log, start, rng)
            for entity in ENTITIES:
                answer = past(log, entity, start, upto, snapshot.get(entity))
                assert answer == at_v.get(entity), (seed, upto, start, entity)
                # Asked again: the same answer.
                assert past(log, entity, start, upto, snapshot.get(entity)) == answer


def test_partitions_merge_by_timestamp_then_topic_and_partition() -> None:
    source = VIEW.sources[0]
    late = Origin("crm.accounts", 0, 0, 20)
    early = Origin("crm.accounts", 1, 0, 10)
    tie = Origin("crm.accounts", 2, 0, 20)
    partitions: dict[tuple[str, int], list[Ordered]] = {
        ("crm.accounts", 0): [((20, "crm.accounts", 0), (source, {"from": 0}, late))],
        ("crm.accounts", 1): [((10, "crm.accounts", 1), (source, {"from": 1}, early))],
        ("crm.accounts", 2): [((20, "crm.accounts", 2), (source, {"from": 2}, tie))],
    }
    entity = fold_in_order(None, partitions)
    assert entity is not None and entity.state == {"profile": {"from": 2}}
    assert entity.changed_by == tie
    # A partition's own order is kept even when its timestamps go back.
    backwards: dict[tuple[str, int], list[Ordered]] = {
        ("crm.accounts", 0): [
            ((30, "crm.accounts", 0), (source, {"n": 1}, Origin("crm.accounts", 0, 0, 30))),
            ((5, "crm.accounts", 0), (source, {"n": 2}, Origin("crm.accounts", 0, 1, 5))),
        ]
    }
    entity = fold_in_order(None, backwards)
    assert entity is not None and entity.state == {"profile": {"n": 2}}


def test_snapshots_are_named_by_positions_and_the_newest_kept(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "context.db")
    snapshots = Snapshots(tmp_path / "snapshots", kept=2)
    taken = []
    for n in range(1, 5):
        store.commit(
            {("account", "a1"): json.dumps({"n": n}).encode()},
            {("crm.accounts", 0): Position(10 * n, n), ("crm.accounts", 1): Position(n, n)},
            None,
        )
        taken.append(snapshots.take(store))
    assert [s.path.name for s in snapshots.all()] == [
        f"snapshot-{33:020d}.db",
        f"snapshot-{44:020d}.db",
    ]
    assert sorted(p.name for p in (tmp_path / "snapshots").iterdir()) == [
        s.path.name for s in snapshots.all()
    ]
    # A read chooses the newest usable snapshot still on disk: the deleted ones are skipped.
    found = snapshots.read("account", "a1", taken[:3])
    assert found is not None
    snapshot, held = found
    assert snapshot == taken[2]
    assert held.raw == b'{"n": 3}'
    assert held.positions[("crm.accounts", 0)] == Position(30, 3)
    assert snapshots.read("account", "a1", taken[:2]) is None
    assert snapshots.read("account", "nobody", taken)[1].raw is None  # type: ignore[index]

    # A restart finds them again; a copy a crash left half-written is removed.
    (tmp_path / "snapshots" / "snapshot.partial").write_bytes(b"half")
    again = Snapshots(tmp_path / "snapshots", kept=2)
    assert [s.path for s in again.all()] == [s.path for s in snapshots.all()]
    assert [s.positions for s in again.all()] == [s.positions for s in snapshots.all()]
    assert not (tmp_path / "snapshots" / "snapshot.partial").exists()
    store.close()


def test_a_snapshot_is_consistent_while_the_store_is_written(tmp_path: Path) -> None:
    """Entities and positions in a copy come from one moment, whatever the writer does."""
    writer = LocalStore(tmp_path / "context.db")
    reader = LocalStore(tmp_path / "context.db")
    snapshots = Snapshots(tmp_path / "snapshots", kept=1)
    done = threading.Event()

    def write() -> None:
        n = 0
        while not done.is_set():
            n += 1
            writer.commit(
                {("account", "a1"): json.dumps({"n": n}).encode()},
                {("crm.accounts", 0): Position(n, n)},
                None,
            )

    thread = threading.Thread(target=write)
    thread.start()
    try:
        seen = set()
        for _ in range(30):
            snapshot = snapshots.take(reader)
            found = snapshots.read("account", "a1", [snapshot])
            assert found is not None
            if found[1].raw is None:
                continue
            n_held = json.loads(found[1].raw)["n"]
            assert found[1].positions[("crm.accounts", 0)].position == n_held
            seen.add(n_held)
        assert len(seen) > 1  # the copies were taken while the writer ran
    finally:
        done.set()
        thread.join()
        writer.close()
        reader.close()


@pytest.mark.parametrize("partition", ["²", "١", "0²", "-1", "", " 1", "9999999999"])
def test_an_offset_vector_takes_ascii_partition_numbers_only(partition: str) -> None:
    """A partition key is a string of ASCII digits: "²" passes str.isdigit() but not
    int(), and "١" (an Arabic-Indic one) would alias partition 1."""
    for name in ("as_of", "min_offsets"):
        with pytest.raises(ContextError) as refused:
            offset_vector({"crm.accounts": {partition: 1}}, name)
        assert (refused.value.status, refused.value.body()["type"]) == (
            400,
            "/problems/bad-request",
        )
    assert offset_vector({"crm.accounts": {"7": 2**63}}, "as_of") == {("crm.accounts", 7): 2**63}
