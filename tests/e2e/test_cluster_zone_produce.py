"""ZoneProduce, the leader's side of a zone write (RFC 0004 §7, "Writes, a smaller first
cut"; broker/handlers/zone_produce.py): two brokers on one PostgreSQL and one file://
store; the test plays the proxy in another zone, broker 1, whose client id it sends.

- Produce request frames stored in one object are handled by the leader (broker 2) in
  order, as the client's own requests, and each gets its Produce response back; the
  records are readable at those offsets;
- an idempotent producer's batch handed over twice is appended once (the second answer
  names the first offset), as a retried Produce is;
- a frame that is not a Produce is answered INVALID_REQUEST without stopping the others;
- nobody but a live peer broker is heard: a client's own client id, the leader's own
  node id and an unregistered one are CLUSTER_AUTHORIZATION_FAILED and nothing is
  written; a missing object is KAFKA_STORAGE_ERROR; too many frames INVALID_REQUEST.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from kio.serial import entity_reader

from conformance.wire import Rec, encode_batch
from contextplane.protocol.build import build
from contextplane.protocol.codec import ZONE_PRODUCE_KEY, request_schema, response_schema
from contextplane.protocol.error_codes import ErrorCode
from tests.e2e.test_cluster_failover import broker, create, fixture
from tests.support.broker import BrokerProcess
from tests.support.postgres import PostgresServer
from tests.support.rawclient import RawClient
from tests.support.wait import wait_until

PRODUCE, METADATA, INIT_PRODUCER_ID = 0, 3, 22
PRODUCE_VERSION = 9
TOPIC = "zoned"
CLIENT = "127.0.0.1:40000"  # the client's address as the proxy saw it
SECRET = "5e" * 16  # a round key's random part (zone_router.py), here a fixed one


def round_key(node: int, sequence: int) -> str:
    """A round object's key, as broker `node`'s zone router names them."""
    return f"zone-router/{node}/0/{sequence}-{SECRET}"


def produce_frame(bootstrap: str, partition: int, batch: bytes) -> bytes:
    """A client's Produce request frame (client id `app`) without its size prefix."""
    with RawClient(bootstrap, client_id="app") as client:
        body = _produce_body(partition, batch)
        return client.frame(PRODUCE, PRODUCE_VERSION, body)[4:]


def _produce_body(partition: int, batch: bytes) -> Any:
    return build(
        request_schema(PRODUCE, PRODUCE_VERSION),
        {
            "transactional_id": None,
            "acks": -1,
            "timeout": 10_000,
            "topic_data": [
                {"name": TOPIC, "partition_data": [{"index": partition, "records": batch}]}
            ],
        },
    )


def store(objects: Path, key: str, frames: list[bytes]) -> list[dict[str, int]]:
    """Write the frames into one object, as the proxy's PUT does; their positions."""
    path = objects / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(frames))
    positions, at = [], 0
    for frame in frames:
        positions.append({"position": at, "size": len(frame), "client_address": CLIENT})
        at += len(frame)
    return positions


def hand_over(
    leader: BrokerProcess,
    key: str,
    frames: list[dict[str, int]],
    client_id: str = "broker-1",
    principal: str = "User:ANONYMOUS",
) -> Any:
    with RawClient(leader.bootstrap, client_id=client_id) as peer:
        return peer.request(
            ZONE_PRODUCE_KEY,
            0,
            timeout=10_000,
            object_key=key,
            frames=[{**frame, "principal": principal} for frame in frames],
        )


def produce_answer(body: bytes) -> tuple[int, int]:
    """(error code, base offset) of a one-partition Produce response body."""
    response, _ = entity_reader(response_schema(PRODUCE, PRODUCE_VERSION))(body, 0)
    (partition,) = response.responses[0].partition_responses
    return partition.error_code, partition.base_offset


def metadata_leader(bootstrap: str, partition: int) -> int:
    """The leader broker `bootstrap` names for a partition of TOPIC (a client of no zone)."""
    with RawClient(bootstrap) as client:
        answer = client.request(METADATA, 12, topics=[{"name": TOPIC}],
                                allow_auto_topic_creation=False,
                                include_topic_authorized_operations=False)  # fmt: skip
    leaders = {p.partition_index: p.leader_id for p in answer.topics[0].partitions}
    return leaders.get(partition, -1)


def read_values(bootstrap: str, partition: int, count: int) -> list[bytes]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "zone-reader"})
    consumer.assign([TopicPartition(TOPIC, partition, 0)])
    values: list[bytes] = []
    deadline = time.monotonic() + 30
    try:
        while len(values) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                values.append(message.value())
    finally:
        consumer.close()
    return values


def test_a_leader_appends_the_produce_frames_a_peer_stored_for_it(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url, objects_uri = fixture(tmp_path, postgres_server)
    objects = tmp_path / "objects"
    one = broker(tmp_path / "one", 1, url, objects_uri).start()
    two = broker(tmp_path / "two", 2, url, objects_uri).start()
    try:
        partition = min(p for p, node in create(one.bootstrap, TOPIC, 4, url).items() if node == 2)

        # Two frames in one object, then a Metadata frame where a Produce should be.
        with RawClient(two.bootstrap, client_id="app") as client:
            with RawClient(two.bootstrap) as raw:
                init = raw.request(
                    INIT_PRODUCER_ID,
                    4,
                    transactional_id=None,
                    transaction_timeout_ms=60_000,
                    producer_id=-1,
                    producer_epoch=-1,
                )
            assert init.error_code == 0
            pid, epoch = init.producer_id, init.producer_epoch
            idempotent = encode_batch(
                [Rec(b"second")], producer_id=pid, producer_epoch=epoch, base_sequence=0
            )
            metadata = client.frame(METADATA, 12, _metadata_body())[4:]
        frames = [
            produce_frame(two.bootstrap, partition, encode_batch([Rec(b"first")])),
            produce_frame(two.bootstrap, partition, idempotent),
            metadata,
        ]
        positions = store(objects, round_key(1, 0), frames)
        answer = hand_over(two, round_key(1, 0), positions)
        assert answer.error_code == ErrorCode.none, answer.error_message
        first, second, odd = answer.frames
        assert (first.error_code, second.error_code) == (0, 0)
        assert produce_answer(first.body) == (0, 0)
        assert produce_answer(second.body) == (0, 1)
        assert odd.error_code == ErrorCode.invalid_request and odd.body is None

        # The idempotent batch handed over again (a proxy's retry): appended once.
        retry = store(objects, round_key(1, 1), [frames[1]])
        again = hand_over(two, round_key(1, 1), retry)
        assert produce_answer(again.frames[0].body) == (0, 1)
        assert read_values(two.bootstrap, partition, 2) == [b"first", b"second"]

        # Only a live peer broker is heard, and nothing it refuses is written.
        for claimed in ("app", "broker-2", "broker-7"):
            refused = hand_over(two, round_key(1, 0), positions[:1], client_id=claimed)
            assert refused.error_code == ErrorCode.cluster_authorization_failed, claimed
            assert refused.frames == ()
        missing = hand_over(two, round_key(1, 99), positions[:1])
        assert missing.error_code == ErrorCode.kafka_storage_error
        too_many = hand_over(two, round_key(1, 0), positions[:1] * 1_001)
        assert too_many.error_code == ErrorCode.invalid_request
        with RawClient(two.bootstrap) as raw:
            offsets = raw.request(
                2,
                1,
                replica_id=-1,
                topics=[{"name": TOPIC, "partitions": [{"partition_index": partition,
                                                         "timestamp": -1}]}],
            )  # fmt: skip
        assert offsets.topics[0].partitions[0].offset == 2  # nothing else written
    finally:
        two.stop()
        one.stop()


def _metadata_body() -> Any:
    return build(
        request_schema(METADATA, 12),
        {
            "topics": None,
            "allow_auto_topic_creation": False,
            "include_topic_authorized_operations": False,
        },
    )


def test_the_frames_are_authorized_as_the_principal_the_proxy_names(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    """With ACLs enforced (the brokers, anonymous on PLAINTEXT, are super users): the
    frames of User:alice, who holds no ACL, are refused TOPIC_AUTHORIZATION_FAILED by the
    leader; the same frame named as the super user is appended."""
    secured = {
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:ANONYMOUS",
    }
    url, objects_uri = fixture(tmp_path, postgres_server)
    objects = tmp_path / "objects"
    one = broker(tmp_path / "one", 1, url, objects_uri, **secured).start()
    two = broker(tmp_path / "two", 2, url, objects_uri, **secured).start()
    try:
        partition = min(p for p, node in create(one.bootstrap, TOPIC, 4, url).items() if node == 2)
        frame = produce_frame(two.bootstrap, partition, encode_batch([Rec(b"whose")]))
        positions = store(objects, round_key(1, 0), [frame])
        as_alice = hand_over(two, round_key(1, 0), positions, principal="User:alice")
        assert produce_answer(as_alice.frames[0].body)[0] == ErrorCode.topic_authorization_failed
        as_super = hand_over(two, round_key(1, 0), positions)
        assert produce_answer(as_super.frames[0].body) == (0, 0)
    finally:
        two.stop()
        one.stop()


def test_a_client_writes_a_partition_led_in_another_zone_through_its_own_zones_broker(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    """Broker 1 in zone a, broker 2 in zone b, `zone.produce.proxy.enable`: a client of
    zone a (its client.id token) sends one Produce to broker 1 naming a partition each
    broker leads; both are appended (broker 2's through a ZoneProduce, its records read
    by broker 2 from the store), one response answers both, and no zone-router object is
    left behind. A client naming no zone is answered NOT_LEADER_OR_FOLLOWER as before."""
    url, objects_uri = fixture(tmp_path, postgres_server)
    objects = tmp_path / "objects"
    proxy = {"zone.produce.proxy.enable": "true"}
    one = broker(tmp_path / "one", 1, url, objects_uri, **proxy, **{"broker.rack": "a"}).start()
    two = broker(tmp_path / "two", 2, url, objects_uri, **proxy, **{"broker.rack": "b"}).start()
    try:
        leaders = create(one.bootstrap, TOPIC, 4, url)
        on_one = min(p for p, node in leaders.items() if node == 1)
        on_two = min(p for p, node in leaders.items() if node == 2)
        wait_until(
            lambda: metadata_leader(one.bootstrap, on_two) == 2, 15, "broker 1 knows the leader"
        )
        fields = {
            "transactional_id": None,
            "acks": -1,
            "timeout": 10_000,
            "topic_data": [
                {
                    "name": TOPIC,
                    "partition_data": [
                        {"index": p, "records": encode_batch([Rec(f"to-{p}".encode())])}
                        for p in (on_one, on_two)
                    ],
                }
            ],
        }
        with RawClient(one.bootstrap, client_id="app,contextplane_az=a") as client:
            answer = client.request(PRODUCE, PRODUCE_VERSION, **fields)
        (topic,) = answer.responses
        assert {p.index: (p.error_code, p.base_offset) for p in topic.partition_responses} == {
            on_one: (0, 0),
            on_two: (0, 0),
        }
        assert read_values(two.bootstrap, on_two, 1) == [f"to-{on_two}".encode()]
        assert read_values(one.bootstrap, on_one, 1) == [f"to-{on_one}".encode()]
        # The proxy's object was written (its directory is there) and deleted once answered.
        router_objects = objects / "zone-router"
        assert router_objects.is_dir()
        assert [f for f in router_objects.rglob("*") if f.is_file()] == []

        with RawClient(one.bootstrap, client_id="no-zone") as client:
            answer = client.request(PRODUCE, PRODUCE_VERSION, **fields)
        codes = {p.index: p.error_code for p in answer.responses[0].partition_responses}
        assert codes == {on_one: 0, on_two: ErrorCode.not_leader_or_follower}
    finally:
        two.stop()
        one.stop()
