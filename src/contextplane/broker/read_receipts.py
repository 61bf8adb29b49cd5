"""Read receipts: which principal received which offsets of which partition, when, and
through which group.

For every Fetch that returns records, the fetch handler reports per partition the offset
it was asked for and the batches it returned; the offsets actually returned run from
that offset (or the first batch's base offset, if later) to the last batch's last
offset. Reads by one connection of one partition are aggregated over a window of
`contextplane.audit.read.receipts.window.ms`: contiguous reads are one range, a seek adds
another, and past `limits.AUDIT_RECEIPT_RANGES_MAX` ranges the closest are merged and the
receipt is marked `coarse` (it may then name offsets in a merged gap that were not sent:
over-reporting, never under-reporting; `receipt_ranges.py`). Each window becomes one
CloudEvents record (`io.contextplane.read.receipt`) in
`__contextplane_read_receipts`, through the audit sink (bounded, durable, kept across
restarts as any topic is).

Fetch carries no group id, and clients fetch on a different connection from the one they
use for their group coordinator, so the group of a receipt is the last group a
connection of the same principal, client id and client address joined or committed
offsets for (`saw_group`); null when there is none. Reads of the receipts topic itself
get no receipt (a consumer tailing it would otherwise be sent a new record about each
of its own reads); reads of `__contextplane_audit` do.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from contextplane import limits
from contextplane.broker.context import RequestContext
from contextplane.broker.internal_topics import READ_RECEIPTS_TOPIC
from contextplane.broker.receipt_ranges import Range, add_range, coarsen
from contextplane.clock import Clock
from contextplane.security.audit import bounded_client
from contextplane.security.audit_events import READ_RECEIPT, cloud_event, rfc3339
from contextplane.tasks import cancel_and_wait, repeat_every

log = logging.getLogger(__name__)

_BASE_AND_LENGTH = struct.Struct(">qi")
_LAST_OFFSET_DELTA = struct.Struct(">i")
_LAST_OFFSET_DELTA_AT = 23  # base offset, length, leader epoch, magic, crc, attributes


def returned_range(fetch_offset: int, data: bytes | memoryview) -> tuple[int, int] | None:
    """(first, last) offsets a consumer asking from `fetch_offset` receives in `data`
    (whole RecordBatch v2 batches), or None when it holds no whole batch."""
    position = 0
    size = len(data)
    first = last = -1
    while position + 27 <= size:
        base, length = _BASE_AND_LENGTH.unpack_from(data, position)
        end = position + 12 + length
        if length < 15 or end > size:
            break
        (delta,) = _LAST_OFFSET_DELTA.unpack_from(data, position + _LAST_OFFSET_DELTA_AT)
        if first < 0:
            first = base
        last = base + delta
        position = end
    if first < 0 or last < fetch_offset:
        return None
    return max(first, fetch_offset), last


def returned_range_of(
    fetch_offset: int, chunks: bytes | Sequence[bytes | memoryview]
) -> tuple[int, int] | None:
    """`returned_range` of a response's record chunks (whole batches each, in offset
    order): the first chunk gives the first offset and the last chunk the last, so a
    large response is not walked batch by batch; anything else is read joined."""
    if isinstance(chunks, bytes | bytearray | memoryview):
        return returned_range(fetch_offset, chunks)
    if not chunks:
        return None
    head = returned_range(fetch_offset, chunks[0])
    tail = head if len(chunks) == 1 else returned_range(fetch_offset, chunks[-1])
    if head is None or tail is None:
        return returned_range(fetch_offset, b"".join(chunks))
    return head[0], tail[1]


@dataclass(slots=True)
class _Window:
    principal: str
    client_id: str
    group: str | None
    client_address: str
    listener: str
    topic: str
    partition: int
    ranges: list[Range]
    opened_ms: int
    last_ms: int
    fetches: int = 1
    coarse: bool = False


class ReadReceipts:
    def __init__(
        self, offer: Callable[[str, bytes, bytes], bool], source: str, window_ms: int, clock: Clock
    ) -> None:
        self._offer = offer
        self._source = source
        self._window_ms = window_ms
        self._wall_ms = clock.wall_ms
        self._windows: dict[tuple[int, str, int], _Window] = {}
        self._ranges_held = 0  # in all open windows
        # (principal, client id, client host) -> the last group it joined or committed for
        self._groups: OrderedDict[tuple[str, str, str], str] = OrderedDict()
        self._task: asyncio.Task[None] | None = None

    def saw_group(self, ctx: RequestContext, group_id: str) -> None:
        key = (str(ctx.principal), ctx.header.client_id or "", ctx.client_host)
        groups = self._groups
        groups[key] = group_id
        groups.move_to_end(key)
        if len(groups) > limits.AUDIT_GROUPS_REMEMBERED:
            groups.popitem(last=False)

    def fetched(
        self,
        ctx: RequestContext,
        topic: str,
        partition: int,
        offset: int,
        data: bytes | Sequence[bytes | memoryview],
    ) -> None:
        """One partition of a Fetch response that carries records (bytes, or chunks of
        whole batches)."""
        if topic == READ_RECEIPTS_TOPIC:
            return  # a reader tailing the receipts would otherwise feed itself forever
        returned = returned_range_of(offset, data)
        if returned is None:
            return
        first, last = returned
        now = self._wall_ms()
        key = (id(ctx.connection), topic, partition)
        window = self._windows.get(key)
        if window is not None:
            window.last_ms = now
            window.fetches += 1
            ranges = window.ranges
            tail_first, tail_last = ranges[-1]
            if tail_first <= first <= tail_last + 1:  # reading on: the common case
                if last > tail_last:
                    ranges[-1] = (tail_first, last)
            else:
                self._seeked(window, first, last)
            return
        if len(self._windows) >= limits.AUDIT_RECEIPT_WINDOWS_MAX:
            self.close_windows(force=True)
        self._ranges_held += 1
        client_id = ctx.header.client_id or ""
        principal = str(ctx.principal)
        self._windows[key] = _Window(
            principal=principal,
            client_id=client_id,
            group=self._groups.get((principal, client_id, ctx.client_host)),
            client_address=ctx.peer,
            listener=ctx.connection.listener,
            topic=topic,
            partition=partition,
            ranges=[(first, last)],
            opened_ms=now,
            last_ms=now,
        )

    def _seeked(self, window: _Window, first: int, last: int) -> None:
        """A read that does not continue the last range: another range, or a merge."""
        ranges = window.ranges
        held = len(ranges)
        add_range(ranges, first, last)
        if coarsen(ranges, limits.AUDIT_RECEIPT_RANGES_MAX):
            window.coarse = True
        self._ranges_held += len(ranges) - held
        if self._ranges_held > limits.AUDIT_RECEIPT_RANGES_HELD_MAX:
            self.close_windows(force=True)

    def close_windows(self, force: bool = False) -> None:
        """Emit every window open for at least the window length (all of them: `force`)."""
        cutoff = self._wall_ms() - self._window_ms
        windows = self._windows
        done = [k for k, w in windows.items() if force or w.opened_ms <= cutoff]
        for key in done:
            self._emit(windows.pop(key))

    def _emit(self, window: _Window) -> None:
        self._ranges_held -= len(window.ranges)
        data = {
            "principal": bounded_client(window.principal),
            "client_id": bounded_client(window.client_id),
            "group": bounded_client(window.group),
            "client_address": window.client_address,
            "listener": window.listener,
            "operation": "READ",
            "resource_type": "TOPIC",
            "resource_name": window.topic,
            "topic": window.topic,
            "partition": window.partition,
            "first_offset": window.ranges[0][0],
            "last_offset": window.ranges[-1][1],
            "ranges": [list(r) for r in window.ranges],
            "coarse": window.coarse,
            "fetches": window.fetches,
            "first_fetch_time": rfc3339(window.opened_ms),
            "last_fetch_time": rfc3339(window.last_ms),
        }
        subject = f"{window.topic}-{window.partition}"
        self._offer(
            READ_RECEIPTS_TOPIC,
            subject.encode(),
            cloud_event(self._source, READ_RECEIPT, subject, window.last_ms, data),
        )

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="read-receipts")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        self.close_windows(force=True)

    async def _run(self) -> None:
        # A failed round is logged and retried: the receipts of every later read depend on
        # this loop staying alive.
        interval_s = max(self._window_ms / 2000, 0.01)
        await repeat_every(interval_s, self._close_due_windows, "closing read-receipt windows", log)

    async def _close_due_windows(self) -> None:
        self.close_windows()
