"""Request strings past Kafka's bound, 32,767 bytes (Short.MAX_VALUE). Kafka's generated
readers refuse a longer string from its length prefix ("string field X had invalid
length N") and its broker closes the connection (RequestContext.parseRequest's
InvalidRequestException); a string at the bound is read and the request answered as any
other. The decoder does the same in every place a string sits (top level, a nested
struct, an array of strings, a tagged field), before the string's bytes are decoded; a
legacy string's int16 length cannot say more than 32,767 (0x8000 reads as -32,768: null,
refused where the field is not nullable). The broker keeps serving other connections.
The outcomes are checked against Apache Kafka itself."""

from __future__ import annotations

import io
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kio.serial import entity_writer

from contextplane.errors import ProtocolError
from contextplane.limits import STRING_BYTES_MAX
from contextplane.protocol.build import build
from contextplane.protocol.codec import decode_header, decode_request, request_schema
from contextplane.protocol.error_codes import ErrorCode
from harness import kafka_reference
from tests.support.inprocess import InProcessBroker
from tests.support.rawclient import RawClient

METADATA, FETCH, FIND_COORDINATOR, DESCRIBE_GROUPS, API_VERSIONS = 3, 1, 10, 15, 18
AT_BOUND, PAST_BOUND = STRING_BYTES_MAX, STRING_BYTES_MAX + 1
INVALID_TOPIC = int(ErrorCode.invalid_topic_exception)


def _metadata(name: str) -> dict[str, Any]:
    return {
        "topics": [{"topic_id": None, "name": name}],
        "allow_auto_topic_creation": False,
        "include_topic_authorized_operations": False,
    }


def _fetch(cluster_id: str) -> dict[str, Any]:
    return {
        "replica_state": {"replica_id": -1, "replica_epoch": -1},
        "max_wait": 0,
        "min_bytes": 1,
        "max_bytes": 1024,
        "isolation_level": 0,
        "session_id": 0,
        "session_epoch": -1,
        "topics": [],
        "forgotten_topics_data": [],
        "rack_id": "",
        "cluster_id": cluster_id,
    }


# Where a compact string can sit: (place, api key, version, the request's fields, the
# field's name as the refusal names it).
COMPACT_PLACES: list[tuple[str, int, int, Callable[[str], dict[str, Any]], str]] = [
    (
        "top level",
        FIND_COORDINATOR,
        3,
        lambda s: {"key": s, "key_type": 0},
        "key",
    ),
    ("nested struct", METADATA, 12, _metadata, "name"),
    (
        "array of strings",
        DESCRIBE_GROUPS,
        5,
        lambda s: {"groups": [s], "include_authorized_operations": False},
        "groups",
    ),
    ("tagged field", FETCH, 16, _fetch, "cluster_id"),
]
PLACE_IDS = [place[0] for place in COMPACT_PLACES]


def _frame_body(api_key: int, version: int, fields: dict[str, Any], client_id: bytes) -> bytes:
    """A request as it sits in a frame (header and body, no size prefix)."""
    schema = request_schema(api_key, version)
    header = struct.pack(">hhih", api_key, version, 1, len(client_id)) + client_id
    if schema.__flexible__:
        header += b"\x00"
    buffer = io.BytesIO()
    entity_writer(schema)(buffer, build(schema, fields))
    return header + buffer.getvalue()


def _legacy_past_bound() -> bytes:
    """Metadata v8 naming a 32,768-byte topic: its int16 length prefix is 0x8000."""
    fields = {
        "topics": [{"name": "t" * AT_BOUND}],
        "allow_auto_topic_creation": False,
        "include_cluster_authorized_operations": False,
        "include_topic_authorized_operations": False,
    }
    at_bound = _frame_body(METADATA, 8, fields, b"raw")
    name = struct.pack(">h", AT_BOUND) + b"t" * AT_BOUND
    return at_bound.replace(name, b"\x80\x00" + b"t" * PAST_BOUND)


# -- the decoder ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("place", "key", "version", "fields", "where"), COMPACT_PLACES, ids=PLACE_IDS
)
def test_a_string_at_the_bound_decodes(
    place: str, key: int, version: int, fields: Callable[[str], dict[str, Any]], where: str
) -> None:
    value = "s" * AT_BOUND
    request = decode_request(_frame_body(key, version, fields(value), b"raw"))
    assert value in repr(request.body), place


@pytest.mark.parametrize(
    ("place", "key", "version", "fields", "where"), COMPACT_PLACES, ids=PLACE_IDS
)
@pytest.mark.parametrize("length", [PAST_BOUND, 1 << 20])
def test_a_longer_string_is_refused_from_its_length_before_it_is_decoded(
    place: str,
    key: int,
    version: int,
    fields: Callable[[str], dict[str, Any]],
    where: str,
    length: int,
) -> None:
    marker = "\x01" * length
    frame = _frame_body(key, version, fields(marker), b"raw")
    # Its bytes are not even UTF-8: had they been decoded, the refusal would say so.
    frame = frame.replace(marker.encode(), b"\xff" * length)
    with pytest.raises(ProtocolError) as refused:
        decode_request(frame)
    message = str(refused.value)
    assert message.endswith(f"string field {where} had invalid length {length}"), place


def test_a_short_frame_declaring_a_longer_string_is_refused_as_truncated() -> None:
    """Below 32 KiB the checking readers are not used: no such string can be there."""
    frame = _frame_body(FIND_COORDINATOR, 3, {"key": "k", "key_type": 0}, b"raw")
    header_end = 2 + 2 + 4 + 2 + 3 + 1  # key, version, correlation id, client id, tags
    declared = b"\x81\x80\x02"  # uvarint 32,769: a length of 32,768
    frame = frame[:header_end] + declared + frame[header_end + 2 :]
    with pytest.raises(ProtocolError, match="FindCoordinatorRequest.key"):
        decode_request(frame)


def test_legacy_strings_reach_the_bound_and_cannot_say_more() -> None:
    fields = {
        "topics": [{"name": "t" * AT_BOUND}],
        "allow_auto_topic_creation": False,
        "include_cluster_authorized_operations": False,
        "include_topic_authorized_operations": False,
    }
    body = decode_request(_frame_body(METADATA, 8, fields, b"raw")).body
    assert body.topics[0].name == "t" * AT_BOUND
    # 0x8000 is -32,768: null, which a topic name may not be (Kafka: "non-nullable
    # field name was serialized as null").
    with pytest.raises(ProtocolError, match="MetadataRequestTopic.name"):
        decode_request(_legacy_past_bound())


def test_the_header_client_id_reaches_the_bound_and_a_negative_length_is_null() -> None:
    client_id = b"c" * AT_BOUND
    frame = _frame_body(API_VERSIONS, 0, {}, client_id)
    header, end = decode_header(frame)
    assert header.client_id == client_id.decode() and end == len(frame)
    # Kafka's RequestHeaderData reads any negative length as a null client id.
    header, end = decode_header(frame[:8] + b"\x80\x00" + frame[10:])
    assert header.client_id is None and end == 10


# -- a broker ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessBroker]:
    running = InProcessBroker(tmp_path_factory.mktemp("strings") / "broker").start()
    yield running
    running.stop()


def _refusals(bootstrap: str) -> Iterator[tuple[str, bool]]:
    """Each request with a string past the bound, on a connection of its own: (what was
    sent, whether the broker closed that connection)."""
    frames = [
        (place, _frame_body(key, version, fields("s" * PAST_BOUND), b"raw"))
        for place, key, version, fields, _where in COMPACT_PLACES
    ]
    frames.append(("legacy", _legacy_past_bound()))
    for place, frame in frames:
        with RawClient(bootstrap) as client:
            client.send_raw(struct.pack(">i", len(frame)) + frame)
            yield place, client.closed_by_broker(timeout_s=10)


def _answers_at_the_bound(bootstrap: str) -> dict[str, Any]:
    """What a broker answers when each string is exactly at the bound."""
    value = "s" * AT_BOUND
    with RawClient(bootstrap) as client:
        client.sock.settimeout(30)
        metadata = client.request(METADATA, 12, **_metadata(value))
        legacy = client.request(
            METADATA, 8, topics=[{"name": value}], allow_auto_topic_creation=False
        )
        groups = client.request(
            DESCRIBE_GROUPS, 5, groups=[value], include_authorized_operations=False
        )
        fetch = client.request(FETCH, 16, **_fetch(value))
    with RawClient(bootstrap, client_id=value) as client:
        client.sock.settimeout(30)
        versions = client.request(
            API_VERSIONS, 3, client_software_name="t", client_software_version="1"
        )
    return {
        "metadata": [(t.name == value, int(t.error_code)) for t in metadata.topics],
        "legacy": [(t.name == value, int(t.error_code)) for t in legacy.topics],
        "groups": [g.group_id == value for g in groups.groups],
        "fetch": fetch.responses,
        "client id": int(versions.error_code),
    }


AT_BOUND_ANSWERS = {
    "metadata": [(True, INVALID_TOPIC)],
    "legacy": [(True, INVALID_TOPIC)],
    "groups": [True],
    "fetch": (),
    "client id": 0,
}


def test_a_broker_answers_strings_at_the_bound(broker: InProcessBroker) -> None:
    assert _answers_at_the_bound(broker.bootstrap) == AT_BOUND_ANSWERS


def test_a_broker_closes_a_connection_sending_a_longer_string(broker: InProcessBroker) -> None:
    with RawClient(broker.bootstrap, client_id="bystander") as bystander:
        bystander.sock.settimeout(30)
        mark = broker.log_mark()
        for place, closed in _refusals(broker.bootstrap):
            assert closed, place
            # Another connection is served meanwhile.
            answer = bystander.request(
                API_VERSIONS, 3, client_software_name="b", client_software_version="1"
            )
            assert answer.error_code == 0
        refused = [line for line in broker.log_since(mark) if "closing connection" in line]
    for _place, _key, _version, _fields, where in COMPACT_PLACES:
        refusal = f"string field {where} had invalid length 32768"
        assert any(refusal in line for line in refused), (refusal, refused)
    assert len(refused) == len(COMPACT_PLACES) + 1


@pytest.mark.slow
def test_apache_kafka_answers_and_refuses_the_same(tmp_path: Path) -> None:
    kafka = kafka_reference.start(data_dir=tmp_path / "kafka", timeout=120)
    try:
        refusals = dict(_refusals(kafka.bootstrap))
        answers = _answers_at_the_bound(kafka.bootstrap)
    finally:
        kafka.stop()
    assert refusals == dict.fromkeys([*PLACE_IDS, "legacy"], True)
    # DescribeGroups is answered (NOT_COORDINATOR while Kafka loads its coordinator).
    assert answers == AT_BOUND_ANSWERS
