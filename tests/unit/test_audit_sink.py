"""The audit sink writes each buffered record once, however its flushes overlap: the
flusher's round, an explicit flush and the stop's may run while another is writing."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from contextplane.broker.audit_sink import AuditSink
from contextplane.broker.internal_topics import AUDIT_TOPIC
from contextplane.clock import ManualClock
from contextplane.protocol.record_codec import read_records
from contextplane.settings import Settings


class SlowWriter:
    """A PartitionWriter whose appends wait until `release` is set, keeping every
    record value it was given."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.values: list[bytes] = []

    async def write(self, topic: str, partition: int, batches: list[bytes], timeout: float) -> None:
        await self.release.wait()
        for batch in batches:
            _, records = read_records(batch, 1 << 20)
            self.values += [record.value for record in records]


def test_overlapping_flushes_write_each_record_once() -> None:
    async def go() -> tuple[list[bytes], int]:
        writer = SlowWriter()
        sink = AuditSink(cast(Any, writer), cast(Any, None), Settings(), ManualClock())
        for text in (b"one", b"two"):
            assert sink.offer(AUDIT_TOPIC, b"k", text)
        first = asyncio.create_task(sink.flush())
        await asyncio.sleep(0)  # the first flush is writing, its records still buffered
        assert sink.offer(AUDIT_TOPIC, b"k", b"three")
        second = asyncio.create_task(sink.flush())
        await asyncio.sleep(0)
        writer.release.set()
        await asyncio.gather(first, second)
        return writer.values, sink.written

    values, written = asyncio.run(go())
    assert values == [b"one", b"two", b"three"]
    assert written == 3
