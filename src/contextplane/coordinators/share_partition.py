"""One share partition of a share group (KIP-932), as a pure state machine.

Rules of this file, as the other machines': no clock (time is the `now_ms` argument), no
I/O, no asyncio; every method runs to completion.

A share partition keeps the records between the share-partition start offset (SPSO) and
end offset (SPEO) in flight: each AVAILABLE, ACQUIRED (by one member, until a lock
deadline), ACKNOWLEDGED or ARCHIVED, with the number of times it was delivered. Records
below the SPSO are done; records at or past the SPEO were never delivered. In-flight
records are kept one entry per offset: `max_in_flight` (Kafka's
`group.share.partition.max.record.locks`) bounds them, so the entries stay bounded and a
range never has to be split. The stored form (`runs`) merges neighbours with the same
state and delivery count.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import IntEnum

from contextplane.limits import SHARE_PARTITION_RECORD_LOCKS_MAX
from contextplane.protocol.error_codes import ErrorCode


class RecordState(IntEnum):
    """Kafka's `RecordState` ids (the persisted ones are AVAILABLE, ACKNOWLEDGED and
    ARCHIVED: a lock is not stored)."""

    AVAILABLE = 0
    ACQUIRED = 1
    ACKNOWLEDGED = 2
    ARCHIVED = 4


class AckType(IntEnum):
    """ShareFetch / ShareAcknowledge's AcknowledgeTypes."""

    GAP = 0  # no record at the offset (compacted away, a control record)
    ACCEPT = 1
    RELEASE = 2
    REJECT = 3
    RENEW = 4  # ShareAcknowledge v2: extend the lock


_DONE = (RecordState.ACKNOWLEDGED, RecordState.ARCHIVED)


def batches_valid(batches: Iterable[tuple[int, int, tuple[int, ...]]], max_type: int) -> bool:
    """Whether a partition's acknowledgement batches are well formed, checked before any
    record is looked at as Kafka checks them (KafkaApis.validateAcknowledgementBatches):
    each range forward and starting at or after the previous one's last offset, with one
    type or one per offset, each type in 0..`max_type`. Else the partition is answered
    INVALID_REQUEST and none of its batches is applied."""
    previous_last = -1
    for first, last, types in batches:
        if first > last or first < previous_last or not types:
            return False
        if len(types) > 1 and last - first != len(types) - 1:
            return False
        if any(not 0 <= kind <= max_type for kind in types):
            return False
        previous_last = last
    return True


@dataclass(slots=True)
class InFlight:
    state: RecordState
    delivery_count: int
    member_id: str = ""
    deadline_ms: int = 0


@dataclass(frozen=True, slots=True)
class Run:
    """Consecutive in-flight records with one state and delivery count, as stored."""

    first_offset: int
    last_offset: int
    state: RecordState
    delivery_count: int


@dataclass(frozen=True, slots=True)
class Undeliverable:
    """A record archived as undeliverable (KIP-1191): REJECTed by its member, or released
    after its last delivery; its copy goes to the group's dead-letter topic, if any."""

    offset: int
    delivery_count: int
    rejected: bool


@dataclass(frozen=True, slots=True)
class Acquired:
    """A range handed to a member by one ShareFetch (its `acquired_records`)."""

    first_offset: int
    last_offset: int
    delivery_count: int


class SharePartition:
    def __init__(
        self,
        start_offset: int,
        delivery_limit: int,
        max_in_flight: int,
        lock_duration_ms: int,
    ) -> None:
        self.start_offset = start_offset  # SPSO
        self.end_offset = start_offset  # SPEO: one past the last record delivered
        self.delivery_limit = delivery_limit
        self.max_in_flight = max_in_flight
        self.lock_duration_ms = lock_duration_ms
        self.in_flight: dict[int, InFlight] = {}
        # Bumped by each change a store must see (acquire, acknowledge, release, expiry).
        self.state_epoch = 0
        # Archived as undeliverable since the last `take_undeliverable`: each offset once
        # (ARCHIVED is final), so at most what was in flight between two saves.
        self.undeliverable: list[Undeliverable] = []
        # What ShareFetch reads showed of the log's records, to bound the next read by
        # what it can acquire (0: not known yet, read the request's share of its bytes).
        self.read_bytes_per_record = 0.0
        self.read_batch_max = 0

    # -- loading and saving -------------------------------------------------------------

    @classmethod
    def load(
        cls,
        start_offset: int,
        runs: Iterable[Run],
        delivery_limit: int,
        max_in_flight: int,
        lock_duration_ms: int,
    ) -> SharePartition:
        """A partition as stored: locks are not, so what was ACQUIRED is AVAILABLE again
        (its delivery count kept, as Kafka's share coordinator keeps it). Every stored
        record is loaded, more than `max_in_flight` too (the bound was lowered since: it
        holds back only new acquisitions, as in Kafka; a record dropped here would be
        delivered again from count 0, acknowledged or not), up to the most any setting
        allows (a stored run is never walked past it)."""
        partition = cls(start_offset, delivery_limit, max_in_flight, lock_duration_ms)
        for run in runs:
            state = RecordState.AVAILABLE if run.state == RecordState.ACQUIRED else run.state
            for offset in range(max(run.first_offset, start_offset), run.last_offset + 1):
                if len(partition.in_flight) >= SHARE_PARTITION_RECORD_LOCKS_MAX:
                    break
                partition.in_flight[offset] = InFlight(state, run.delivery_count)
                partition.end_offset = max(partition.end_offset, offset + 1)
        partition._advance_start()
        return partition

    def runs(self) -> list[Run]:
        """The in-flight records as stored: an ACQUIRED one is stored AVAILABLE (a restart
        forgets locks) with the delivery count it was acquired with."""
        out: list[Run] = []
        for offset in sorted(self.in_flight):
            record = self.in_flight[offset]
            state = RecordState.AVAILABLE if record.state == RecordState.ACQUIRED else record.state
            last = out[-1] if out else None
            if (
                last is not None
                and last.last_offset == offset - 1
                and last.state == state
                and last.delivery_count == record.delivery_count
            ):
                out[-1] = Run(last.first_offset, offset, state, record.delivery_count)
            else:
                out.append(Run(offset, offset, state, record.delivery_count))
        return out

    # -- acquiring ----------------------------------------------------------------------

    def next_fetch_offset(self) -> int | None:
        """Where a ShareFetch reads the log from: the first AVAILABLE in-flight record,
        else the SPEO while the in-flight bound leaves room; None when nothing can be
        acquired now."""
        available = [o for o, r in self.in_flight.items() if r.state == RecordState.AVAILABLE]
        if available:
            return min(available)
        if len(self.in_flight) < self.max_in_flight:
            return self.end_offset
        return None

    def acquire(
        self,
        member_id: str,
        offsets: Iterable[int],
        max_records: int,
        now_ms: int,
        read_end: int | None = None,
    ) -> list[Acquired]:
        """Acquire for `member_id` up to `max_records` of `offsets` (the records of the
        batches a read returned, ascending): AVAILABLE in-flight records, and records at
        or past the SPEO while the bound allows. Each acquired record's delivery count
        goes up and its lock runs until now + the lock duration. `read_end`: one past the
        last offset the read covered; when every offset was considered, the SPEO moves
        there, past offsets that held no record to deliver (control records, a
        compacted tail), so they are not read again."""
        deadline = now_ms + self.lock_duration_ms
        taken: list[tuple[int, int]] = []
        complete = True
        for offset in offsets:
            if len(taken) >= max_records:
                complete = False
                break
            if offset < self.start_offset:
                continue
            record = self.in_flight.get(offset)
            if record is None:
                if offset < self.end_offset:
                    continue  # a gap already passed over
                if len(self.in_flight) >= self.max_in_flight:
                    complete = False  # no room for another lock
                    break
                # Offsets skipped between the SPEO and this one hold no record (compacted
                # or control records): nothing to deliver there.
                record = self.in_flight[offset] = InFlight(RecordState.AVAILABLE, 0)
                self.end_offset = offset + 1
            elif record.state != RecordState.AVAILABLE:
                continue
            record.state = RecordState.ACQUIRED
            record.delivery_count += 1
            record.member_id = member_id
            record.deadline_ms = deadline
            taken.append((offset, record.delivery_count))
        if complete and read_end is not None and read_end > self.end_offset:
            self.end_offset = read_end
            self.state_epoch += 1
            self._advance_start()
        elif taken:
            self.state_epoch += 1
        return _ranges(taken)

    # -- acknowledging ------------------------------------------------------------------

    def acknowledge(
        self, member_id: str, batches: Iterable[tuple[int, int, tuple[int, ...]]], now_ms: int
    ) -> ErrorCode:
        """Apply a partition's acknowledgement batches (first offset, last offset, one type
        for the range or one per offset), all or nothing: every offset named must be
        ACQUIRED by `member_id` (else INVALID_RECORD_STATE) and every type known (else
        INVALID_REQUEST, as is an offset named twice). The SPSO then moves past what is
        done. Batches spanning more offsets than can be in flight are refused before any
        is walked, so a request's work is bounded by the in-flight bound."""
        planned: list[tuple[int, AckType]] = []
        named: set[int] = set()
        span = 0
        for first, last, types in batches:
            if first > last or not types or (len(types) != 1 and len(types) != last - first + 1):
                return ErrorCode.invalid_request
            span += last - first + 1
            # More than can be held (a lowered bound still holds what was loaded).
            if span > max(self.max_in_flight, len(self.in_flight)):
                return ErrorCode.invalid_record_state
            for index, offset in enumerate(range(first, last + 1)):
                raw = types[0] if len(types) == 1 else types[index]
                try:
                    kind = AckType(raw)
                except ValueError:
                    return ErrorCode.invalid_request
                if offset in named:
                    return ErrorCode.invalid_request
                named.add(offset)
                record = self.in_flight.get(offset)
                if kind == AckType.GAP and record is None and offset < self.start_offset:
                    continue
                if (
                    record is None
                    or record.state != RecordState.ACQUIRED
                    or record.member_id != member_id
                ):
                    return ErrorCode.invalid_record_state
                planned.append((offset, kind))
        for offset, kind in planned:
            record = self.in_flight[offset]
            if kind == AckType.RENEW:
                record.deadline_ms = now_ms + self.lock_duration_ms
            elif kind == AckType.ACCEPT:
                self._settle(record, RecordState.ACKNOWLEDGED)
            elif kind == AckType.RELEASE:
                self._release(offset, record)
            else:  # REJECT, GAP
                if kind == AckType.REJECT:
                    self.undeliverable.append(Undeliverable(offset, record.delivery_count, True))
                self._settle(record, RecordState.ARCHIVED)
        if planned:
            self.state_epoch += 1
            self._advance_start()
        return ErrorCode.none

    def take_undeliverable(self) -> list[Undeliverable]:
        """The records archived as undeliverable since the last call (the caller copies
        them to the dead-letter topic before the state that archived them is stored)."""
        taken, self.undeliverable = self.undeliverable, []
        return taken

    def release_member(self, member_id: str) -> bool:
        """Release every record `member_id` holds (its share session closed or it left the
        group); True if any was."""
        released = False
        for offset, record in self.in_flight.items():
            if record.state == RecordState.ACQUIRED and record.member_id == member_id:
                self._release(offset, record)
                released = True
        if released:
            self.state_epoch += 1
            self._advance_start()
        return released

    def expire_locks(self, now_ms: int) -> bool:
        """Release records whose lock deadline has passed; True if any was."""
        expired = False
        for offset, record in self.in_flight.items():
            if record.state == RecordState.ACQUIRED and record.deadline_ms <= now_ms:
                self._release(offset, record)
                expired = True
        if expired:
            self.state_epoch += 1
            self._advance_start()
        return expired

    def next_deadline(self) -> int | None:
        deadlines = [
            r.deadline_ms for r in self.in_flight.values() if r.state == RecordState.ACQUIRED
        ]
        return min(deadlines, default=None)

    def move_start(self, log_start_offset: int) -> None:
        """The log's start moved past the SPSO (retention, deletion): those records are
        gone, whatever their state."""
        if log_start_offset <= self.start_offset:
            return
        for offset in [o for o in self.in_flight if o < log_start_offset]:
            del self.in_flight[offset]
        self.start_offset = log_start_offset
        self.end_offset = max(self.end_offset, log_start_offset)
        self.state_epoch += 1
        self._advance_start()

    def delivery_complete_count(self) -> int:
        """In-flight records already done (acknowledged or archived): Kafka's
        `deliveryCompleteCount`, which share-partition lag leaves out."""
        return sum(1 for r in self.in_flight.values() if r.state in _DONE)

    def acquired_count(self) -> int:
        return sum(1 for r in self.in_flight.values() if r.state == RecordState.ACQUIRED)

    # -- internals ----------------------------------------------------------------------

    def _release(self, offset: int, record: InFlight) -> None:
        # A record delivered as often as the limit allows is not offered again.
        if record.delivery_count >= self.delivery_limit:
            self.undeliverable.append(Undeliverable(offset, record.delivery_count, False))
            self._settle(record, RecordState.ARCHIVED)
        else:
            self._settle(record, RecordState.AVAILABLE)

    @staticmethod
    def _settle(record: InFlight, state: RecordState) -> None:
        record.state = state
        record.member_id = ""
        record.deadline_ms = 0

    def _advance_start(self) -> None:
        """The SPSO moves over the done prefix (and over offsets never in flight below the
        SPEO, which held no record)."""
        while self.start_offset < self.end_offset:
            record = self.in_flight.get(self.start_offset)
            if record is not None and record.state not in _DONE:
                break
            self.in_flight.pop(self.start_offset, None)
            self.start_offset += 1


def _ranges(taken: list[tuple[int, int]]) -> list[Acquired]:
    """Consecutive offsets with one delivery count, as `acquired_records` lists them."""
    out: list[Acquired] = []
    for offset, count in taken:
        last = out[-1] if out else None
        if last is not None and last.last_offset == offset - 1 and last.delivery_count == count:
            out[-1] = Acquired(last.first_offset, offset, count)
        else:
            out.append(Acquired(offset, offset, count))
    return out


def offsets_of(batches: Iterable[tuple[int, int]]) -> Iterator[int]:
    """Every offset of (base offset, last offset) batches."""
    for base, last in batches:
        yield from range(base, last + 1)
