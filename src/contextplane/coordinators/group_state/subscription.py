"""The topics of a consumer group member's subscription, for OffsetDelete's check.

Rules of this file: the metadata is client bytes, so every length is checked against what
is left before it is used, and anything malformed is None (never an exception).
"""

from __future__ import annotations

import struct


def parse_subscription_topics(metadata: bytes) -> list[str] | None:
    """Topics of a ConsumerProtocolSubscription, read as its v0 prefix (as Kafka does)."""
    try:
        position = 2  # version
        (count,) = struct.unpack_from(">i", metadata, position)
        position += 4
        if count < 0 or count > len(metadata):
            return None
        topics = []
        for _ in range(count):
            (length,) = struct.unpack_from(">h", metadata, position)
            position += 2
            if length < 0 or position + length > len(metadata):
                return None
            topics.append(metadata[position : position + length].decode())
            position += length
        return topics
    except (struct.error, UnicodeDecodeError):
        return None
