"""Requests real clients sent (librdkafka, kafka-python, aiokafka, the Java client),
decoded by the broker's request decoder and encoded again byte for byte.

The frames are committed files (golden_table.py lists them, capture.py captured them);
no client runs here.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Iterator
from typing import Any

import pytest

from contextplane.protocol.codec import Request, decode_request, request_schema

from .golden_table import GOLDEN, GOLDEN_DIR, Golden
from .support import encode


def _strings(value: Any) -> Iterator[str]:
    """Every string in a decoded entity, nested entities and arrays included."""
    if isinstance(value, str):
        yield value
    elif dataclasses.is_dataclass(value):
        for field in dataclasses.fields(value):
            yield from _strings(getattr(value, field.name))
    elif isinstance(value, tuple):
        for item in value:
            yield from _strings(item)


def encode_request_frame(request: Request) -> bytes:
    """The frame for `request` as a client writes it: size, header v1 (v2, with an empty
    tagged-field section, for a flexible request), body (kio's encoder)."""
    header = request.header
    schema = request_schema(header.api_key, header.api_version)
    head = struct.pack(">hhi", header.api_key, header.api_version, header.correlation_id)
    if header.client_id is None:
        head += b"\xff\xff"
    else:
        client_id = header.client_id.encode()
        head += struct.pack(">h", len(client_id)) + client_id
    if schema.__flexible__:
        head += b"\x00"
    payload = head + encode(request.body)
    return struct.pack(">i", len(payload)) + payload


def test_the_table_lists_every_golden_file_once() -> None:
    stems = [golden.stem for golden in GOLDEN]
    assert len(stems) == len(set(stems))
    assert set(stems) == {path.stem for path in GOLDEN_DIR.glob("*.bin")}


def test_every_client_and_first_request_is_covered() -> None:
    clients = {golden.client for golden in GOLDEN}
    assert clients == {"librdkafka", "kafka-python", "aiokafka", "java"}
    for client in clients:
        keys = {golden.api_key for golden in GOLDEN if golden.client == client}
        # ApiVersions, Metadata, Produce, Fetch, JoinGroup, SyncGroup, OffsetCommit
        assert {18, 3, 0, 1, 11, 14, 8} <= keys, client


@pytest.mark.parametrize("golden", GOLDEN, ids=lambda golden: golden.stem)
def test_golden_frame_decodes_to_what_the_client_sent(golden: Golden) -> None:
    frame = golden.frame()
    (size,) = struct.unpack_from(">i", frame)
    assert size == len(frame) - 4
    request = decode_request(frame[4:])
    assert (request.header.api_key, request.header.api_version) == (
        golden.api_key,
        golden.api_version,
    )
    assert request.header.correlation_id == golden.correlation_id
    assert request.header.client_id == golden.client_id
    assert type(request.body) is request_schema(golden.api_key, golden.api_version)
    strings = set(_strings(request.body))
    assert golden.expected_names() <= strings
    # A name the row does not list (the other client's topic) must not turn up either.
    assert not {s for s in strings if s.startswith("golden-")} - golden.expected_names()


@pytest.mark.parametrize("golden", GOLDEN, ids=lambda golden: golden.stem)
def test_golden_frame_encodes_again_byte_for_byte(golden: Golden) -> None:
    frame = golden.frame()
    assert encode_request_frame(decode_request(frame[4:])) == frame
