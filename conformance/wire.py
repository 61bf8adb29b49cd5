"""Wire helpers for the differential scenarios: one function per Kafka request at a fixed
version (both brokers get exactly the same bytes), a record batch encoder with keys,
headers, timestamps, compression and producer fields, and a decoder for fetched batches.

Requests go through tests/support/rawclient.RawClient, which encodes with kio.
"""

from __future__ import annotations

import gzip
import struct
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import cramjam
import crc32c
from kio.schema.errors import ErrorCode

from contextplane.protocol.build import build
from contextplane.protocol.codec import request_schema
from tests.support.rawclient import RawClient

T = TypeVar("T")

# API keys.
PRODUCE, FETCH, LIST_OFFSETS, METADATA = 0, 1, 2, 3
OFFSET_COMMIT, OFFSET_FETCH, FIND_COORDINATOR, JOIN_GROUP = 8, 9, 10, 11
HEARTBEAT, LEAVE_GROUP, SYNC_GROUP, DESCRIBE_GROUPS, LIST_GROUPS = 12, 13, 14, 15, 16
API_VERSIONS, CREATE_TOPICS, DELETE_TOPICS, DELETE_RECORDS = 18, 19, 20, 21
INIT_PRODUCER_ID, DESCRIBE_CONFIGS, ALTER_CONFIGS, CREATE_PARTITIONS = 22, 32, 33, 37
DELETE_GROUPS, INCREMENTAL_ALTER_CONFIGS, DESCRIBE_CLUSTER = 42, 44, 60

TOPIC_RESOURCE, BROKER_RESOURCE = 2, 4
COMPRESSION = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
CODEC_NAMES = {v: k for k, v in COMPRESSION.items()}


def err(code: int | ErrorCode) -> str:
    """An error code as Kafka's name (lower case), e.g. 'topic_already_exists'."""
    try:
        return ErrorCode(int(code)).name
    except ValueError:
        return f"error_{int(code)}"


def now_ms() -> int:
    return int(time.time() * 1000)


# --- record batches ----------------------------------------------------------------------


def _varint(value: int) -> bytes:
    zigzag = (value << 1) ^ (value >> 63)
    out = bytearray()
    while zigzag >= 0x80:
        out.append((zigzag & 0x7F) | 0x80)
        zigzag >>= 7
    out.append(zigzag)
    return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
    return (result >> 1) ^ -(result & 1), pos


def _bytes_field(value: bytes | None) -> bytes:
    return _varint(-1) if value is None else _varint(len(value)) + value


@dataclass
class Rec:
    value: bytes | None
    key: bytes | None = None
    headers: list[tuple[str, bytes | None]] = field(default_factory=list)
    timestamp: int | None = None  # absolute ms; default: the batch's base timestamp


def encode_batch(
    records: list[Rec] | list[bytes],
    *,
    compression: str = "none",
    timestamp: int = 1_700_000_000_000,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    transactional: bool = False,
    magic: int = 2,
    corrupt_crc: bool = False,
    garble_payload: bool = False,
) -> bytes:
    """A RecordBatch v2 exactly as a producer sends it (base offset 0, CRC32C)."""
    recs = [r if isinstance(r, Rec) else Rec(r) for r in records]
    stamps = [r.timestamp if r.timestamp is not None else timestamp for r in recs]
    base_ts = min(stamps) if stamps else timestamp
    body = bytearray()
    for delta, rec in enumerate(recs):
        one = bytearray(b"\x00")
        one += _varint(stamps[delta] - base_ts)
        one += _varint(delta)
        one += _bytes_field(rec.key)
        one += _bytes_field(rec.value)
        one += _varint(len(rec.headers))
        for name, value in rec.headers:
            one += _bytes_field(name.encode())
            one += _bytes_field(value)
        body += _varint(len(one)) + one
    payload = bytes(body)
    codec = COMPRESSION[compression]
    if codec == 1:
        payload = gzip.compress(payload)
    elif codec == 2:
        payload = _xerial_snappy(payload)
    elif codec == 3:
        # Independent blocks, no content checksum: the LZ4 frame Kafka's Java reader takes.
        lz4 = cramjam.lz4.Compressor(content_checksum=False, block_linked=False)
        lz4.compress(payload)
        payload = bytes(lz4.finish())
    elif codec == 4:
        payload = bytes(cramjam.zstd.compress(payload))
    if garble_payload:
        payload = payload[:8] + bytes(b ^ 0x5A for b in payload[8:])
    attributes = codec | (0x10 if transactional else 0)
    after_crc = (
        struct.pack(
            ">hiqqqhii",
            attributes,
            max(len(recs) - 1, 0),
            base_ts,
            max(stamps) if stamps else timestamp,
            producer_id,
            producer_epoch,
            base_sequence,
            len(recs),
        )
        + payload
    )
    crc = crc32c.crc32c(after_crc)
    if corrupt_crc:
        crc ^= 0xDEADBEEF
    length = 4 + 1 + 4 + len(after_crc)
    return struct.pack(">qiibI", 0, length, -1, magic, crc) + after_crc


def _xerial_snappy(data: bytes) -> bytes:
    block = bytes(cramjam.snappy.compress_raw(data))
    return b"\x82SNAPPY\x00" + struct.pack(">ii", 1, 1) + struct.pack(">i", len(block)) + block


def _unsnappy(data: bytes) -> bytes:
    if data.startswith(b"\x82SNAPPY\x00"):
        out = bytearray()
        pos = 16
        while pos < len(data):
            (size,) = struct.unpack_from(">i", data, pos)
            pos += 4
            out += bytes(cramjam.snappy.decompress_raw(data[pos : pos + size]))
            pos += size
        return bytes(out)
    return bytes(cramjam.snappy.decompress_raw(data))


@dataclass
class FetchedBatch:
    base_offset: int
    last_offset_delta: int
    leader_epoch: int
    attributes: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    crc_ok: bool
    records: list[dict[str, Any]]

    @property
    def codec(self) -> str:
        return CODEC_NAMES.get(self.attributes & 7, str(self.attributes & 7))

    @property
    def log_append_time(self) -> bool:
        return bool(self.attributes & 0x08)


def decode_batches(data: bytes | None) -> list[FetchedBatch]:
    """Every complete batch in a fetch response's records (a partial tail is dropped)."""
    out: list[FetchedBatch] = []
    if not data:
        return out
    data = bytes(data)
    pos = 0
    while pos + 61 <= len(data):
        base_offset, length, epoch, magic, crc = struct.unpack_from(">qiibI", data, pos)
        end = pos + 12 + length
        if end > len(data) or magic != 2:
            break
        after_crc = data[pos + 21 : end]
        (attrs, last_delta, base_ts, max_ts, pid, pepoch, bseq, count) = struct.unpack_from(
            ">hiqqqhii", after_crc, 0
        )
        payload = after_crc[40:]
        codec = attrs & 7
        records: list[dict[str, Any]] = []
        try:
            payload = _decompress(codec, payload)
        except Exception as exc:  # noqa: BLE001 - a broker may store what does not decode
            records.append({"undecodable": type(exc).__name__})
            count = 0
        rpos = 0
        for _ in range(count):
            size, rpos = _read_varint(payload, rpos)
            rend = rpos + size
            rpos += 1  # attributes
            ts_delta, rpos = _read_varint(payload, rpos)
            off_delta, rpos = _read_varint(payload, rpos)
            key, rpos = _read_bytes(payload, rpos)
            value, rpos = _read_bytes(payload, rpos)
            nheaders, rpos = _read_varint(payload, rpos)
            headers = []
            for _h in range(nheaders):
                hkey, rpos = _read_bytes(payload, rpos)
                hval, rpos = _read_bytes(payload, rpos)
                headers.append([(hkey or b"").decode(), _text(hval)])
            records.append(
                {
                    "offset": base_offset + off_delta,
                    "timestamp": base_ts + ts_delta,
                    "key": _text(key),
                    "value": _text(value),
                    "headers": headers,
                }
            )
            rpos = rend
        out.append(
            FetchedBatch(
                base_offset,
                last_delta,
                epoch,
                attrs,
                base_ts,
                max_ts,
                pid,
                pepoch,
                bseq,
                crc32c.crc32c(after_crc) == crc,
                records,
            )
        )
        pos = end
    return out


def _decompress(codec: int, payload: bytes) -> bytes:
    if codec == 1:
        return gzip.decompress(payload)
    if codec == 2:
        return _unsnappy(payload)
    if codec == 3:
        return bytes(cramjam.lz4.decompress(payload))
    if codec == 4:
        return bytes(cramjam.zstd.decompress(payload))
    return payload


def _read_bytes(data: bytes, pos: int) -> tuple[bytes | None, int]:
    size, pos = _read_varint(data, pos)
    if size < 0:
        return None, pos
    return data[pos : pos + size], pos + size


def _text(value: bytes | None) -> str | None:
    if value is None:
        return None
    try:
        return value.decode()
    except UnicodeDecodeError:
        return value.hex()


# --- requests -----------------------------------------------------------------------------


def send_no_response(client: RawClient, api_key: int, version: int, **fields: Any) -> None:
    """Send a request the broker does not answer (Produce with acks=0)."""
    body = build(request_schema(api_key, version), fields)
    client.send_raw(client.frame(api_key, version, body))


def api_versions(client: RawClient, version: int = 3, **fields: Any) -> Any:
    extra = (
        {"client_software_name": "conformance", "client_software_version": "1"}
        if version >= 3
        else {}
    )
    return client.request(API_VERSIONS, version, **extra, **fields)


def metadata(
    client: RawClient, topics: list[str] | None, auto_create: bool = False, version: int = 12
) -> Any:
    return client.request(
        METADATA,
        version,
        topics=None
        if topics is None
        else [{"name": t, "topic_id": uuid.UUID(int=0)} for t in topics],
        allow_auto_topic_creation=auto_create,
        include_cluster_authorized_operations=False,
        include_topic_authorized_operations=False,
    )


def create_topics(
    client: RawClient,
    topics: list[dict[str, Any]],
    validate_only: bool = False,
    version: int = 7,
) -> Any:
    entries = []
    for topic in topics:
        entries.append(
            {
                "name": topic["name"],
                "num_partitions": topic.get("partitions", 1),
                "replication_factor": topic.get("replication_factor", -1),
                "assignments": topic.get("assignments", []),
                "configs": [{"name": k, "value": v} for k, v in topic.get("configs", {}).items()],
            }
        )
    return client.request(
        CREATE_TOPICS, version, topics=entries, timeout=10000, validate_only=validate_only
    )


def create_topic(client: RawClient, name: str, partitions: int = 1, **configs: str) -> Any:
    """Create one topic; returns its result entry. Config names use '_' for '.'."""
    response = create_topics(
        client,
        [
            {
                "name": name,
                "partitions": partitions,
                "configs": {k.replace("_", "."): v for k, v in configs.items()},
            }
        ],
    )
    return response.topics[0]


def wait_for_topic(client: RawClient, name: str, partitions: int, timeout: float = 15.0) -> bool:
    """Wait until every partition of `name` has a leader that serves it.

    Kafka publishes leaders in Metadata before the replica manager serves the partition
    (NOT_LEADER_OR_FOLLOWER for a moment), so a ListOffsets per partition must succeed too,
    as a client's retries would make it.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = metadata(client, [name])
        topic = response.topics[0]
        if (
            topic.error_code == 0
            and len(topic.partitions) == partitions
            and all(p.leader_id >= 0 and p.error_code == 0 for p in topic.partitions)
            and all(list_offsets(client, name, -1, i).error_code == 0 for i in range(partitions))
        ):
            return True
        time.sleep(0.1)
    return False


def delete_topics(client: RawClient, names: list[str], version: int = 6) -> Any:
    return client.request(
        DELETE_TOPICS,
        version,
        topics=[{"name": n, "topic_id": uuid.UUID(int=0)} for n in names],
        topic_names=names,
        timeout=10000,
    )


def produce(
    client: RawClient,
    topic: str,
    batch: bytes,
    partition: int = 0,
    acks: int = -1,
    version: int = 9,
    transactional_id: str | None = None,
) -> Any:
    """One batch to one partition; returns the partition response (None for acks=0)."""
    fields = produce_fields(topic, batch, partition, acks, transactional_id)
    if acks == 0:
        send_no_response(client, PRODUCE, version, **fields)
        return None
    response = client.request(PRODUCE, version, **fields)
    return response.responses[0].partition_responses[0]


def produce_fields(
    topic: str,
    batch: bytes,
    partition: int = 0,
    acks: int = -1,
    transactional_id: str | None = None,
) -> dict[str, Any]:
    """A Produce request's fields: one batch to one partition."""
    return {
        "transactional_id": transactional_id,
        "acks": acks,
        "timeout": 10000,
        "topic_data": [{"name": topic, "partition_data": [{"index": partition, "records": batch}]}],
    }


def fetch(
    client: RawClient,
    partitions: list[tuple[Any, int, int]] | list[tuple[Any, int, int, int]],
    *,
    max_wait: int = 0,
    min_bytes: int = 0,
    max_bytes: int = 50 << 20,
    partition_max_bytes: int = 1 << 20,
    isolation_level: int = 0,
    version: int = 12,
) -> Any:
    """Fetch (topic, partition, offset[, partition_max_bytes]) entries, in request order;
    a topic given as a UUID is named by id (v13+)."""
    topics: dict[Any, list[dict[str, Any]]] = {}
    for entry in partitions:
        topic, index, offset = entry[0], entry[1], entry[2]
        limit = entry[3] if len(entry) > 3 else partition_max_bytes
        topics.setdefault(topic, []).append(
            {
                "partition": index,
                "current_leader_epoch": -1,
                "fetch_offset": offset,
                "last_fetched_epoch": -1,
                "log_start_offset": -1,
                "partition_max_bytes": limit,
            }
        )
    return client.request(
        FETCH,
        version,
        cluster_id=None,
        replica_id=-1,
        replica_state={"replica_id": -1, "replica_epoch": -1},
        max_wait=max_wait,
        min_bytes=min_bytes,
        max_bytes=max_bytes,
        isolation_level=isolation_level,
        session_id=0,
        session_epoch=-1,
        topics=[
            {"topic_id" if isinstance(t, uuid.UUID) else "topic": t, "partitions": p}
            for t, p in topics.items()
        ],
        forgotten_topics_data=[],
        rack_id="",
    )


def fetch_one(client: RawClient, topic: str, offset: int, partition: int = 0, **kw: Any) -> Any:
    return fetch(client, [(topic, partition, offset)], **kw).responses[0].partitions[0]


def list_offsets(
    client: RawClient,
    topic: str,
    timestamp: int,
    partition: int = 0,
    version: int = 7,
    isolation_level: int = 0,
) -> Any:
    response = client.request(
        LIST_OFFSETS,
        version,
        replica_id=-1,
        isolation_level=isolation_level,
        timeout=10000,
        topics=[
            {
                "name": topic,
                "partitions": [
                    {
                        "partition_index": partition,
                        "current_leader_epoch": -1,
                        "timestamp": timestamp,
                        "max_num_offsets": 1,
                    }
                ],
            }
        ],
    )
    return response.topics[0].partitions[0]


def delete_records(
    client: RawClient, topic: str, offset: int, partition: int = 0, version: int = 2
) -> Any:
    response = client.request(
        DELETE_RECORDS,
        version,
        topics=[{"name": topic, "partitions": [{"partition_index": partition, "offset": offset}]}],
        timeout=10000,
    )
    return response.topics[0].partitions[0]


def init_producer_id(
    client: RawClient,
    producer_id: int = -1,
    producer_epoch: int = -1,
    transactional_id: str | None = None,
    version: int = 4,
) -> Any:
    return retry_coordinator(
        lambda: client.request(
            INIT_PRODUCER_ID,
            version,
            transactional_id=transactional_id,
            transaction_timeout=60000,
            producer_id=producer_id,
            producer_epoch=producer_epoch,
        )
    )


def describe_configs(
    client: RawClient,
    resource_type: int,
    name: str,
    keys: list[str] | None = None,
    version: int = 4,
    include_synonyms: bool = False,
    include_documentation: bool = False,
) -> Any:
    response = client.request(
        DESCRIBE_CONFIGS,
        version,
        resources=[
            {"resource_type": resource_type, "resource_name": name, "configuration_keys": keys}
        ],
        include_synonyms=include_synonyms,
        include_documentation=include_documentation,
    )
    return response.results[0]


def alter_configs(
    client: RawClient, topic: str, configs: dict[str, str | None], validate_only: bool = False
) -> Any:
    response = client.request(
        ALTER_CONFIGS,
        2,
        resources=[
            {
                "resource_type": TOPIC_RESOURCE,
                "resource_name": topic,
                "configs": [{"name": k, "value": v} for k, v in configs.items()],
            }
        ],
        validate_only=validate_only,
    )
    return response.responses[0]


def incremental_alter_configs(
    client: RawClient,
    topic: str,
    ops: list[tuple[str, int, str | None]],
    validate_only: bool = False,
    resource_type: int = TOPIC_RESOURCE,
) -> Any:
    """ops: (name, operation, value); operation 0 SET, 1 DELETE, 2 APPEND, 3 SUBTRACT."""
    response = client.request(
        INCREMENTAL_ALTER_CONFIGS,
        1,
        resources=[
            {
                "resource_type": resource_type,
                "resource_name": topic,
                "configs": [{"name": n, "config_operation": op, "value": v} for n, op, v in ops],
            }
        ],
        validate_only=validate_only,
    )
    return response.responses[0]


def create_partitions(
    client: RawClient, topic: str, count: int, validate_only: bool = False
) -> Any:
    response = client.request(
        CREATE_PARTITIONS,
        3,
        topics=[{"name": topic, "count": count, "assignments": None}],
        timeout=10000,
        validate_only=validate_only,
    )
    return response.results[0]


# --- groups (classic protocol) --------------------------------------------------------------


# Errors a client retries after a backoff (Kafka answers them while its internal
# __consumer_offsets / __transaction_state topics are still being created).
RETRIABLE_COORDINATOR = {14, 15, 16}  # load in progress, not available, not coordinator


def retry_coordinator(call: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        response = call()
        if response.error_code not in RETRIABLE_COORDINATOR or time.monotonic() > deadline:
            return response
        time.sleep(0.2)


def commit_when_ready(
    client: RawClient,
    group: str,
    offsets: dict[tuple[str, int], int],
    *,
    metadata_text: str | None = "",
    timeout: float = 30.0,
) -> int:
    """A group's first OffsetCommit as a client makes it: FindCoordinator first (on a fresh
    Kafka only that creates the offsets topic; OffsetCommit alone keeps answering
    NOT_COORDINATOR), then the commit, repeated while the coordinator is still loading.
    The error code of the last partition answer."""
    deadline = time.monotonic() + timeout
    while True:
        find_coordinator(client, group, retry_for=max(0.0, deadline - time.monotonic()))
        commit = offset_commit(client, group, offsets, metadata_text=metadata_text)
        code = int(commit.topics[0].partitions[0].error_code)
        if code not in RETRIABLE_COORDINATOR or time.monotonic() > deadline:
            return code
        time.sleep(0.2)


def find_coordinator(
    client: RawClient, key: str, key_type: int = 0, version: int = 4, retry_for: float = 20.0
) -> Any:
    def call() -> Any:
        response = client.request(
            FIND_COORDINATOR, version, key=key, key_type=key_type, coordinator_keys=[key]
        )
        return response.coordinators[0] if version >= 4 else response

    return retry_coordinator(call, retry_for)


def join_group(
    client: RawClient,
    group: str,
    member_id: str = "",
    *,
    instance_id: str | None = None,
    session_timeout: int = 10000,
    rebalance_timeout: int = 10000,
    protocol_type: str = "consumer",
    protocols: list[tuple[str, bytes]] | None = None,
    version: int = 7,
) -> Any:
    return client.request(
        JOIN_GROUP,
        version,
        group_id=group,
        session_timeout=session_timeout,
        rebalance_timeout=rebalance_timeout,
        member_id=member_id,
        group_instance_id=instance_id,
        protocol_type=protocol_type,
        protocols=[{"name": n, "metadata": m} for n, m in (protocols or [("range", b"\x00\x01")])],
        reason=None,
    )


def sync_group(
    client: RawClient,
    group: str,
    generation: int,
    member_id: str,
    assignments: dict[str, bytes] | None = None,
    *,
    instance_id: str | None = None,
    protocol_type: str | None = "consumer",
    protocol_name: str | None = "range",
    version: int = 5,
) -> Any:
    return client.request(
        SYNC_GROUP,
        version,
        group_id=group,
        generation_id=generation,
        member_id=member_id,
        group_instance_id=instance_id,
        protocol_type=protocol_type,
        protocol_name=protocol_name,
        assignments=[{"member_id": m, "assignment": a} for m, a in (assignments or {}).items()],
    )


def heartbeat(
    client: RawClient,
    group: str,
    generation: int,
    member_id: str,
    instance_id: str | None = None,
    version: int = 4,
) -> Any:
    return client.request(
        HEARTBEAT,
        version,
        group_id=group,
        generation_id=generation,
        member_id=member_id,
        group_instance_id=instance_id,
    )


def leave_group(
    client: RawClient, group: str, members: list[tuple[str, str | None]], version: int = 5
) -> Any:
    return client.request(
        LEAVE_GROUP,
        version,
        group_id=group,
        member_id="",
        members=[{"member_id": m, "group_instance_id": i, "reason": None} for m, i in members],
    )


def offset_commit(
    client: RawClient,
    group: str,
    offsets: dict[tuple[str, int], int],
    *,
    generation: int = -1,
    member_id: str = "",
    instance_id: str | None = None,
    metadata_text: str | None = "",
    version: int = 8,
) -> Any:
    topics: dict[str, list[dict[str, Any]]] = {}
    for (topic, partition), offset in offsets.items():
        topics.setdefault(topic, []).append(
            {
                "partition_index": partition,
                "committed_offset": offset,
                "committed_leader_epoch": -1,
                "committed_metadata": metadata_text,
            }
        )
    return client.request(
        OFFSET_COMMIT,
        version,
        group_id=group,
        generation_id_or_member_epoch=generation,
        generation_id=generation,
        member_id=member_id,
        group_instance_id=instance_id,
        retention_time=-1,
        topics=[{"name": t, "partitions": p} for t, p in topics.items()],
    )


def offset_fetch(
    client: RawClient,
    group: str,
    partitions: dict[str, list[int]] | None,
    version: int = 7,
    require_stable: bool = False,
) -> Any:
    return client.request(
        OFFSET_FETCH,
        version,
        group_id=group,
        topics=None
        if partitions is None
        else [{"name": t, "partition_indexes": p} for t, p in partitions.items()],
        require_stable=require_stable,
    )


def describe_groups(client: RawClient, groups: list[str], version: int = 5) -> Any:
    return client.request(
        DESCRIBE_GROUPS, version, groups=groups, include_authorized_operations=False
    )


def describe_cluster(
    client: RawClient,
    version: int = 1,
    endpoint_type: int = 1,
    include_fenced_brokers: bool = False,
) -> Any:
    return client.request(
        DESCRIBE_CLUSTER,
        version,
        include_cluster_authorized_operations=False,
        endpoint_type=endpoint_type,
        include_fenced_brokers=include_fenced_brokers,
    )


def list_groups(client: RawClient, version: int = 4) -> Any:
    return client.request(LIST_GROUPS, version, states_filter=[])


def delete_groups(client: RawClient, groups: list[str], version: int = 2) -> Any:
    return client.request(DELETE_GROUPS, version, groups_names=groups)


def wait_changed(read: Callable[[], T], before: T, timeout_s: float = 2.0) -> T:
    """Read until the answer differs from `before` (or the timeout passes).

    Apache Kafka applies a change (a config, a deleted topic) to the broker's metadata
    image asynchronously after answering; a DescribeConfigs or Metadata right after can
    still show the old state.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        after = read()
        if after != before or time.monotonic() >= deadline:
            return after
        time.sleep(0.05)


# --- ACLs (codes: ResourceType TOPIC 2, GROUP 3, CLUSTER 4, TRANSACTIONAL_ID 5; PatternType
# ANY 1, MATCH 2, LITERAL 3, PREFIXED 4; AclOperation ANY 1, ALL 2, READ 3, WRITE 4, CREATE 5,
# DELETE 6, ALTER 7, DESCRIBE 8, CLUSTER_ACTION 9, DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11,
# IDEMPOTENT_WRITE 12; permission ANY 1, DENY 2, ALLOW 3) -----------------------------------

DESCRIBE_ACLS, CREATE_ACLS, DELETE_ACLS = 29, 30, 31


@dataclass(frozen=True)
class Acl:
    resource_type: int
    name: str
    pattern_type: int = 3
    principal: str = "User:ANONYMOUS"
    host: str = "*"
    operation: int = 2
    permission: int = 3


def create_acls(client: RawClient, acls: list[Acl], version: int = 3) -> Any:
    return client.request(
        CREATE_ACLS,
        version,
        creations=[
            {
                "resource_type": a.resource_type,
                "resource_name": a.name,
                "resource_pattern_type": a.pattern_type,
                "principal": a.principal,
                "host": a.host,
                "operation": a.operation,
                "permission_type": a.permission,
            }
            for a in acls
        ],
    )


def acl_filter(
    resource_type: int = 1,
    name: str | None = None,
    pattern_type: int = 1,
    principal: str | None = None,
    host: str | None = None,
    operation: int = 1,
    permission: int = 1,
) -> dict[str, Any]:
    return {
        "resource_type_filter": resource_type,
        "resource_name_filter": name,
        "pattern_type_filter": pattern_type,
        "principal_filter": principal,
        "host_filter": host,
        "operation": operation,
        "permission_type": permission,
    }


def describe_acls(client: RawClient, version: int = 3, **filter_fields: Any) -> Any:
    return client.request(DESCRIBE_ACLS, version, **acl_filter(**filter_fields))


def delete_acls(client: RawClient, filters: list[dict[str, Any]], version: int = 3) -> Any:
    return client.request(DELETE_ACLS, version, filters=filters)
