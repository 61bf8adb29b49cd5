"""The statements of the transaction coordinator's tables (migration 0006), and
the engine and store methods over them (mixed into `SqlEngine` and
`SqlMetadataStore`).

Each coordinator transition is one call, so one store transaction: the row, its
partitions and groups are replaced together; completing a commit moves the
transaction's pending offsets into `group_offsets` in the same transaction. Every write
takes the coordinator shard's (stream, leader epoch) and checks it in that transaction
(RFC 0004 §3), so a deposed coordinator changes nothing.
"""

from __future__ import annotations

from typing import Any

from contextplane.coordinators.txn_state import producer_fenced, producer_id_not_assigned
from contextplane.errors import KafkaError
from contextplane.metadata.records import OffsetRow, TransactionRecord
from contextplane.metadata.sql_db import Db
from contextplane.metadata.sql_offsets import upsert_group_offsets
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.offsets_records import OFFSETS_TOPIC

# A coordinator shard's (stream id, leader epoch); None: not fenced (a lone coordinator).
Fence = tuple[int, int] | None

_COLUMNS = (
    "transactional_id, producer_id, previous_producer_id, epoch, timeout_ms, state,"
    " client_transaction_version, start_ms, update_ms"
)


def load(db: Db) -> list[TransactionRecord]:
    records: dict[str, TransactionRecord] = {}
    for row in db.execute(f"SELECT {_COLUMNS} FROM transactions ORDER BY transactional_id"):
        records[row[0]] = TransactionRecord(
            transactional_id=row[0],
            producer_id=row[1],
            previous_producer_id=row[2],
            epoch=row[3],
            timeout_ms=row[4],
            state=row[5],
            client_transaction_version=row[6],
            start_ms=row[7],
            update_ms=row[8],
        )
    for tid, topic, partition, written in db.execute(
        "SELECT transactional_id, topic, partition, marker_written FROM transaction_partitions"
    ):
        records[tid].partitions[(topic, partition)] = bool(written)
    for tid, group_id in db.execute("SELECT transactional_id, group_id FROM transaction_groups"):
        records[tid].groups.add(group_id)
    return list(records.values())


def save(db: Db, record: TransactionRecord, previous: TransactionRecord | None = None) -> None:
    """Store `record`; with `previous` (what is stored now), only the partitions and
    groups that changed are written, so adding partitions one request at a time costs
    each request its own, not the whole transaction's."""
    tid = record.transactional_id
    db.execute(
        f"INSERT INTO transactions ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (transactional_id) DO UPDATE SET producer_id=excluded.producer_id,"
        " previous_producer_id=excluded.previous_producer_id, epoch=excluded.epoch,"
        " timeout_ms=excluded.timeout_ms, state=excluded.state,"
        " client_transaction_version=excluded.client_transaction_version,"
        " start_ms=excluded.start_ms, update_ms=excluded.update_ms",
        (
            tid,
            record.producer_id,
            record.previous_producer_id,
            record.epoch,
            record.timeout_ms,
            record.state,
            record.client_transaction_version,
            record.start_ms,
            record.update_ms,
        ),
    )
    if previous is None or previous.transactional_id != tid:
        db.execute("DELETE FROM transaction_partitions WHERE transactional_id=?", (tid,))
        db.execute("DELETE FROM transaction_groups WHERE transactional_id=?", (tid,))
        old_partitions: dict[tuple[str, int], bool] = {}
        old_groups: set[str] = set()
    else:
        old_partitions, old_groups = previous.partitions, previous.groups
    db.executemany(
        "DELETE FROM transaction_partitions WHERE transactional_id=? AND topic=? AND partition=?",
        [(tid, t, p) for (t, p) in old_partitions.keys() - record.partitions.keys()],
    )
    db.executemany(
        "INSERT INTO transaction_partitions VALUES (?, ?, ?, ?) ON CONFLICT (transactional_id,"
        " topic, partition) DO UPDATE SET marker_written=excluded.marker_written",
        [
            (tid, t, p, int(w))
            for (t, p), w in record.partitions.items()
            if old_partitions.get((t, p)) is not w
        ],
    )
    db.executemany(
        "DELETE FROM transaction_groups WHERE transactional_id=? AND group_id=?",
        [(tid, g) for g in old_groups - record.groups],
    )
    db.executemany(
        "INSERT INTO transaction_groups VALUES (?, ?)",
        [(tid, g) for g in record.groups - old_groups],
    )


def add_offsets(db: Db, tid: str, group_id: str, rows: list[OffsetRow]) -> None:
    db.executemany(
        "INSERT INTO pending_txn_offsets VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT"
        " (transactional_id, group_id, topic, partition) DO UPDATE SET"
        " committed_offset=excluded.committed_offset, leader_epoch=excluded.leader_epoch,"
        " metadata=excluded.metadata",
        [(tid, group_id, r.topic, r.partition, r.offset, r.leader_epoch, r.metadata) for r in rows],
    )


def check_ongoing(
    db: Db, lock: str, tid: str, group_id: str, producer: tuple[int, int], shard: int = -1
) -> None:
    """TxnOffsetCommit at a group coordinator on another broker than the transaction's:
    the stored transaction (its row locked, so its coordinator's completion waits) must
    be the producer's, Ongoing, with the group added (AddOffsetsToTxn) or its
    `__consumer_offsets` partition `shard` (AddPartitionsToTxn from the group
    coordinator's broker, transactions v2); else the coordinator's error."""
    row = db.execute(
        "SELECT producer_id, epoch, state FROM transactions WHERE transactional_id=?" + lock,
        (tid,),
    ).fetchone()
    if row is None or row[0] != producer[0]:
        raise producer_id_not_assigned()
    if row[1] != producer[1]:
        raise producer_fenced()
    added = db.execute(
        "SELECT 1 FROM transaction_groups WHERE transactional_id=? AND group_id=?"
        " UNION ALL SELECT 1 FROM transaction_partitions WHERE transactional_id=?"
        " AND topic=? AND partition=?",
        (tid, group_id, tid, OFFSETS_TOPIC, shard),
    ).fetchone()
    if row[2] != "Ongoing" or added is None:
        raise KafkaError(
            ErrorCode.invalid_txn_state,
            f"group {group_id!r} is not part of the ongoing transaction",
        )


def complete(
    db: Db, record: TransactionRecord, committed: bool, now_ms: int, lock: str = ""
) -> dict[str, list[OffsetRow]]:
    """Save `record` (its Complete state) and settle its pending offsets: into the
    groups' committed offsets on a commit, dropped on an abort. Returns those moved.
    The transaction's row is locked first, so offsets another broker's group
    coordinator is adding (`check_ongoing`) are settled with it, or refused after."""
    tid = record.transactional_id
    db.execute("SELECT state FROM transactions WHERE transactional_id=?" + lock, (tid,))
    moved: dict[str, list[OffsetRow]] = {}
    if committed:
        for group_id, topic, partition, offset, epoch, metadata in db.execute(
            "SELECT group_id, topic, partition, committed_offset, leader_epoch, metadata"
            " FROM pending_txn_offsets WHERE transactional_id=?",
            (tid,),
        ).fetchall():
            moved.setdefault(group_id, []).append(
                OffsetRow(topic, partition, offset, epoch, metadata)
            )
        for group_id, rows in moved.items():
            upsert_group_offsets(db, group_id, rows, now_ms)
    db.execute("DELETE FROM pending_txn_offsets WHERE transactional_id=?", (tid,))
    save(db, record)
    return moved


def pending_offsets(db: Db) -> list[tuple[str, str, str, int]]:
    """(transactional id, group, topic, partition) of every pending offset."""
    rows = db.execute(
        "SELECT transactional_id, group_id, topic, partition FROM pending_txn_offsets"
    ).fetchall()
    return [(r[0], r[1], r[2], r[3]) for r in rows]


def remove(db: Db, tid: str) -> None:
    for table in ("pending_txn_offsets", "transaction_groups", "transaction_partitions"):
        db.execute(f"DELETE FROM {table} WHERE transactional_id=?", (tid,))
    db.execute("DELETE FROM transactions WHERE transactional_id=?", (tid,))


class TransactionRows:
    """`SqlEngine`'s transaction methods (over its connection and transactions)."""

    _db: Db

    def transactions(self) -> list[TransactionRecord]:
        return load(self._db)

    def save_transaction(
        self,
        record: TransactionRecord,
        previous: TransactionRecord | None = None,
        fence: Fence = None,
    ) -> None:
        engine: Any = self  # a SqlEngine: its transactions
        with engine._transaction():
            engine._check_shard(fence)
            save(self._db, record, previous)

    def add_txn_offsets(
        self, tid: str, group_id: str, rows: list[OffsetRow], fence: Fence = None
    ) -> None:
        engine: Any = self
        with engine._transaction():
            engine._check_shard(fence)
            add_offsets(self._db, tid, group_id, rows)

    def add_txn_offsets_checked(
        self,
        tid: str,
        group_id: str,
        producer: tuple[int, int],
        rows: list[OffsetRow],
        group_shard: int = -1,
    ) -> None:
        engine: Any = self
        with engine._transaction():
            check_ongoing(self._db, engine._lock, tid, group_id, producer, group_shard)
            add_offsets(self._db, tid, group_id, rows)

    def complete_transaction(
        self, record: TransactionRecord, committed: bool, now_ms: int, fence: Fence = None
    ) -> dict[str, list[OffsetRow]]:
        engine: Any = self
        with engine._transaction():
            engine._check_shard(fence)
            return complete(self._db, record, committed, now_ms, engine._lock)

    def pending_txn_offsets(self) -> list[tuple[str, str, str, int]]:
        return pending_offsets(self._db)

    def remove_transaction(self, tid: str, fence: Fence = None) -> None:
        engine: Any = self
        with engine._transaction():
            engine._check_shard(fence)
            remove(self._db, tid)


class TransactionCalls:
    """`SqlMetadataStore`'s transaction methods, run on its worker thread."""

    async def transactions(self) -> list[TransactionRecord]:
        store: Any = self  # a SqlMetadataStore
        result: list[TransactionRecord] = await store._call(store.engine.transactions)
        return result

    async def save_transaction(
        self,
        record: TransactionRecord,
        previous: TransactionRecord | None = None,
        fence: Fence = None,
    ) -> None:
        store: Any = self
        await store._call(store.engine.save_transaction, record, previous, fence)

    async def add_txn_offsets(
        self, tid: str, group_id: str, rows: list[OffsetRow], fence: Fence = None
    ) -> None:
        store: Any = self
        await store._call(store.engine.add_txn_offsets, tid, group_id, rows, fence)

    async def add_txn_offsets_checked(
        self,
        tid: str,
        group_id: str,
        producer: tuple[int, int],
        rows: list[OffsetRow],
        group_shard: int = -1,
    ) -> None:
        store: Any = self
        await store._call(
            store.engine.add_txn_offsets_checked, tid, group_id, producer, rows, group_shard
        )

    async def complete_transaction(
        self, record: TransactionRecord, committed: bool, now_ms: int, fence: Fence = None
    ) -> dict[str, list[OffsetRow]]:
        store: Any = self
        result: dict[str, list[OffsetRow]] = await store._call(
            store.engine.complete_transaction, record, committed, now_ms, fence
        )
        return result

    async def pending_txn_offsets(self) -> list[tuple[str, str, str, int]]:
        store: Any = self
        result: list[tuple[str, str, str, int]] = await store._call(
            store.engine.pending_txn_offsets
        )
        return result

    async def remove_transaction(self, tid: str, fence: Fence = None) -> None:
        store: Any = self
        await store._call(store.engine.remove_transaction, tid, fence)
