"""Record batches as a producer builds them (magic v2, uncompressed, with a CRC)."""

from __future__ import annotations

from tests.support.rawclient import record_batch


def batch_bytes(
    values: list[bytes], producer_id: int = -1, producer_epoch: int = -1, base_sequence: int = -1
) -> bytes:
    return record_batch(
        list(values),
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=base_sequence,
    )
