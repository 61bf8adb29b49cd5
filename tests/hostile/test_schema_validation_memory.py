"""A validating topic under an expanding batch: well-formed records that decompress to
90 MiB (within message.max.decompression.ratio, so record validation lets them through)
are read for their schema ids as they decompress, and the broker's peak memory barely
moves; every record is refused by name."""

from __future__ import annotations

from conformance import wire
from conformance.wire import Rec
from contextplane.protocol.error_codes import ErrorCode
from tests.hostile.bombs import MIB
from tests.hostile.support import create_topic, proc_status_kib, reset_peak_rss
from tests.support.broker import BrokerProcess
from tests.support.rawclient import RawClient

# Two chunks of the read, two of validation's walk, codec buffers, the request: well
# under this; reading the whole expanded batch would take 90 MiB and more.
PEAK_GROWTH_MAX_MIB = 48


def test_expanding_batches_are_judged_in_bounded_memory(hostile_broker: BrokerProcess) -> None:
    assert hostile_broker.process is not None
    pid = hostile_broker.process.pid
    records = [Rec(b"\x07" * 9 * MIB, headers=[("__value_schema_id", b"\x01")]) for _ in range(10)]
    batch = wire.encode_batch(records, compression="zstd")
    assert len(batch) < MIB
    with RawClient(hostile_broker.bootstrap) as client:
        create_topic(client, "validated-bomb", confluent_value_schema_validation="true")
        before_kib = proc_status_kib(pid, "VmRSS")
        reset_peak_rss(pid)
        part = wire.produce(client, "validated-bomb", batch)
        growth_mib = (proc_status_kib(pid, "VmHWM") - before_kib) / 1024
    assert part.error_code == ErrorCode.invalid_record, part
    message = "Record names its schema by a GUID header; schema GUIDs are not supported"
    assert [(e.batch_index, e.batch_index_error_message) for e in part.record_errors] == [
        (index, message) for index in range(10)
    ]
    assert growth_mib < PEAK_GROWTH_MAX_MIB, f"peak RSS grew {growth_mib:.0f} MiB"
