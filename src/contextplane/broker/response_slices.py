"""A response's frame parts cut into slices of at most a given size, in order.

A Fetch response is frame parts that reference record bytes (up to fetch.max.bytes,
64 MiB for librdkafka's default consumer). Handed to the transport at once, all of it is
queued in the event loop's stream writer, which then copies it into the socket for as
long as the client keeps reading: on loopback one loop turn wrote tens of MiB, and every
other connection's requests (a producer's) waited behind it. `broker/server.py` writes
one slice at a time instead, the next only once the transport has sent most of it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from contextplane.broker.held_responses import Part


def response_slices(parts: Sequence[Part], slice_bytes: int) -> Iterator[list[Part]]:
    """The parts regrouped into consecutive slices of at most `slice_bytes` (a part
    larger than that is cut into views); no bytes are copied, none are empty."""
    if slice_bytes <= 0:
        raise ValueError(f"slice_bytes must be positive, not {slice_bytes}")
    current: list[Part] = []
    room = slice_bytes
    for part in parts:
        view = memoryview(part) if len(part) > room else part
        start = 0
        while len(part) - start > room:
            current.append(view[start : start + room])
            start += room
            yield current
            current, room = [], slice_bytes
        rest = len(part) - start
        if rest:
            current.append(view[start:] if start else part)
            room -= rest
        if room == 0:
            yield current
            current, room = [], slice_bytes
    if current:
        yield current
