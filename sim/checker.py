"""The checkers: what must hold whatever the seed, judged from outside the engine.

* No acknowledged write is lost: a batch whose append was acknowledged at offset O is
  read back at O, byte for byte, after any fault or crash (unless the log start has
  legitimately moved past it).
* Offsets are dense: a read returns batches that follow each other without a gap, from
  the batch holding the offset asked for.
* The high watermark and the log start never move back, across crashes too.
* No read returns a batch at or past the high watermark as it was when the read began.
* What was once readable never changes, and no batch appears that nobody produced; an
  idempotent producer's batch is in the log at most once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from contextplane.protocol.records import iter_batch_headers

# A batch's bytes from its CRC on: what stamping the offset and leader epoch leaves as
# the producer sent it.
BODY_FROM = 17


class Violation(AssertionError):
    """A checker failed."""


def body(batch: bytes | memoryview) -> bytes:
    return bytes(batch[BODY_FROM:])


@dataclass
class PartitionModel:
    acked: dict[int, bytes] = field(default_factory=dict)  # base offset -> body
    seen: dict[int, bytes] = field(default_factory=dict)  # base offset -> body, once read
    high_watermark: int = 0
    log_start: int = 0


class Checker:
    def __init__(self, partitions: int) -> None:
        self.partitions = [PartitionModel() for _ in range(partitions)]
        self.produced: set[bytes] = set()  # bodies of every batch ever sent
        self.idempotent: set[bytes] = set()  # those sent by idempotent producers

    def sent(self, batch_body: bytes, idempotent: bool) -> None:
        self.produced.add(batch_body)
        if idempotent:
            self.idempotent.add(batch_body)

    def acknowledged(self, index: int, base_offset: int, batch_body: bytes, hw: int) -> None:
        model = self.partitions[index]
        earlier = model.acked.get(base_offset)
        if earlier is not None and earlier != batch_body:
            raise Violation(f"p{index}: two different batches acknowledged at {base_offset}")
        if base_offset >= hw:
            raise Violation(f"p{index}: acknowledged at {base_offset} but the HW is {hw}")
        model.acked[base_offset] = batch_body

    def watermarks(self, index: int, high_watermark: int, log_start: int, when: str) -> None:
        model = self.partitions[index]
        if high_watermark < model.high_watermark:
            raise Violation(
                f"p{index}: high watermark went back from {model.high_watermark}"
                f" to {high_watermark} ({when})"
            )
        if log_start < model.log_start:
            raise Violation(
                f"p{index}: log start went back from {model.log_start} to {log_start} ({when})"
            )
        if log_start > high_watermark:
            raise Violation(f"p{index}: log start {log_start} past the HW {high_watermark}")
        model.high_watermark, model.log_start = high_watermark, log_start

    def read(
        self, index: int, offset: int, hw_at_start: int, chunks: list[bytes | memoryview]
    ) -> int:
        """Check one read's batches; returns the offset after the last one (or `offset`)."""
        model = self.partitions[index]
        expected_base: int | None = None
        end = offset
        for chunk in chunks:
            for header in iter_batch_headers(chunk):
                base = header.base_offset
                batch_end = base + header.last_offset_delta + 1
                if expected_base is None:
                    if not base <= offset < batch_end:
                        raise Violation(
                            f"p{index}: read at {offset} began with batch [{base}, {batch_end})"
                        )
                elif base != expected_base:
                    raise Violation(
                        f"p{index}: gap or overlap: batch at {base}, not {expected_base}"
                    )
                if batch_end > hw_at_start:
                    raise Violation(
                        f"p{index}: read returned [{base}, {batch_end}) past the HW {hw_at_start}"
                    )
                expected_base = end = batch_end
        for chunk in chunks:
            position = 0
            view = memoryview(chunk)
            for header in iter_batch_headers(view):
                size = header.total_bytes
                self._content(
                    index, model, header.base_offset, body(view[position : position + size])
                )
                position += size
        return end

    def _content(self, index: int, model: PartitionModel, base: int, batch_body: bytes) -> None:
        if batch_body not in self.produced:
            raise Violation(f"p{index}: batch at {base} is nothing any producer sent")
        for what, known in (("acknowledged", model.acked), ("read earlier", model.seen)):
            earlier = known.get(base)
            if earlier is not None and earlier != batch_body:
                raise Violation(f"p{index}: the batch {what} at {base} changed")
        model.seen[base] = batch_body

    def full_scan(
        self, index: int, log_start: int, high_watermark: int, bodies: list[tuple[int, bytes]]
    ) -> None:
        """After a scan of [log start, HW): every acknowledged batch from the first one
        returned is there, and no idempotent batch is there twice."""
        model = self.partitions[index]
        present = dict(bodies)
        first = bodies[0][0] if bodies else high_watermark
        for base, batch_body in model.acked.items():
            if base >= first and present.get(base) != batch_body:
                raise Violation(
                    f"p{index}: acknowledged batch at {base} lost"
                    f" (log start {log_start}, HW {high_watermark})"
                )
        once: set[bytes] = set()
        for base, batch_body in bodies:
            if batch_body in self.idempotent:
                if batch_body in once:
                    raise Violation(f"p{index}: idempotent batch duplicated (again at {base})")
                once.add(batch_body)
