"""Zone writes under abuse (RFC 0004 §7, "Zone writes as built"): what one client can do
to the proxy's rounds and to the leader's ZoneProduce.

Two brokers on one PostgreSQL and one file:// store, broker 1 in zone a (the proxy),
broker 2 in zone b (the leader); the leader is paused (SIGSTOP, well inside a long
session timeout) so that requests gather into one round deterministically.

- A round never names a leader more frames than one ZoneProduce may carry: 1,000 acks=0
  requests of one client and another client's request, gathered behind a round, are
  all appended and the other client answered (not all refused INVALID_REQUEST by the
  leader's bound on frames per call).
- A flood of acks=0 requests waits for room in the proxy's queue: the proxy stops
  reading the client's connection rather than holding each request's frames; acks=1
  requests waiting for the paused leader's answer hold no records on the proxy.
- A ZoneProduce names only its caller's own zone-router objects: a forged call (an
  ordinary client sending a broker's client id, possible where no authorizer is set)
  naming a partition's data object, another broker's zone-router object, a `..` path or
  an absolute path is INVALID_REQUEST, and no answer carries the store's filesystem path.

- A client passing as a broker where ACLs are enforced under
  `allow.everyone.if.no.acl.found` (CLUSTER_ACTION is everyone's, but granted to no one)
  is refused ZoneProduce outright, and its client id neither stands in for a topic's
  WRITE nor opens the audit topic: only a principal granted CLUSTER_ACTION itself (a
  super user, an ALLOW ACL) is a broker.

- One client's Produce drawing an answer over the peer client's 4 MiB bound fails no
  other client's frame of its round: the leader drops the answer's messages.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from conformance.wire import Rec, encode_batch
from contextplane.protocol.build import build
from contextplane.protocol.codec import request_schema
from contextplane.protocol.error_codes import ErrorCode
from tests.e2e.test_cluster_failover import broker, create, fixture
from tests.e2e.test_cluster_zone_produce import (
    PRODUCE,
    PRODUCE_VERSION,
    SECRET,
    TOPIC,
    hand_over,
    metadata_leader,
    produce_frame,
    round_key,
    store,
)
from tests.support.broker import BrokerProcess
from tests.support.postgres import PostgresServer
from tests.support.rawclient import RawClient
from tests.support.wait import wait_until

ZONE_A = "app,contextplane_az=a"
# Long enough that pausing the leader for a few seconds moves no partition.
SLOW = {"broker.session.timeout.ms": "30000"}


@contextmanager
def paused(process: BrokerProcess) -> Iterator[None]:
    assert process.process is not None
    os.kill(process.process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(process.process.pid, signal.SIGCONT)


def _produce(partition: int, value: bytes, acks: int = -1) -> Any:
    return build(request_schema(PRODUCE, PRODUCE_VERSION), _fields(partition, value, acks))


def _fields(partition: int, value: bytes, acks: int = -1) -> dict[str, Any]:
    return {
        "transactional_id": None,
        "acks": acks,
        "timeout": 20_000,
        "topic_data": [
            {
                "name": TOPIC,
                "partition_data": [{"index": partition, "records": encode_batch([Rec(value)])}],
            }
        ],
    }


def _end_offset(bootstrap: str, partition: int) -> int:
    with RawClient(bootstrap) as raw:
        answer = raw.request(
            2,
            1,
            replica_id=-1,
            topics=[{"name": TOPIC, "partitions": [{"partition_index": partition,
                                                     "timestamp": -1}]}],
        )  # fmt: skip
    return int(answer.topics[0].partitions[0].offset)


def _zone_pair(tmp_path: Path, postgres_server: PostgresServer) -> tuple[str, Any, Any]:
    url, objects_uri = fixture(tmp_path, postgres_server)
    proxy = {"zone.produce.proxy.enable": "true", **SLOW}
    one = broker(tmp_path / "one", 1, url, objects_uri, **proxy, **{"broker.rack": "a"})
    two = broker(tmp_path / "two", 2, url, objects_uri, **proxy, **{"broker.rack": "b"})
    return url, one.start(), two.start()


def test_a_round_never_names_a_leader_more_frames_than_one_call_carries(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url, one, two = _zone_pair(tmp_path, postgres_server)
    try:
        on_two = led_by_two(url, one.bootstrap)
        count = 1_000
        with (
            RawClient(one.bootstrap, client_id=ZONE_A) as first,
            RawClient(one.bootstrap, client_id=ZONE_A) as flood,
            RawClient(one.bootstrap, client_id=ZONE_A) as victim,
        ):
            with paused(two):
                # A round in flight to the paused leader; the next requests gather: a
                # flood of acks=0 requests (no response owed, so no bound on how many
                # one connection has in flight), then another client's request.
                first.send_raw(first.frame(PRODUCE, PRODUCE_VERSION, _produce(on_two, b"0")))
                time.sleep(0.5)
                flood.send_raw(
                    b"".join(
                        flood.frame(PRODUCE, PRODUCE_VERSION, _produce(on_two, b"%d" % i, 0))
                        for i in range(count)
                    )
                )
                time.sleep(2)  # the proxy reads and queues them all
                victim.send(PRODUCE, PRODUCE_VERSION, **_fields(on_two, b"victim"))
                time.sleep(0.5)
            first.read_frame()
            answer = victim.receive().responses[0].partition_responses[0]
        assert ErrorCode(answer.error_code).name == "none", answer
        assert _end_offset(two.bootstrap, on_two) == count + 2
    finally:
        two.stop()
        one.stop()


def led_by_two(url: str, bootstrap: str) -> int:
    """Create TOPIC over the two brokers; a partition broker 2 leads, once broker 1 (at
    `bootstrap`) knows its leader."""
    leaders = create(bootstrap, TOPIC, 4, url)
    on_two = min(p for p, node in leaders.items() if node == 2)
    wait_until(lambda: metadata_leader(bootstrap, on_two) == 2, 15, "leader known")
    return on_two


def _rss_mib(process: BrokerProcess) -> float:
    assert process.process is not None
    status = Path(f"/proc/{process.process.pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def test_an_acks_0_flood_waits_for_room_in_the_proxys_queue(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    """Behind a round stuck on a paused leader, one client sends 300 acks=0 requests of
    0.9 MB (270 MB): the proxy stops reading them once its 64 MiB queue is full, and
    holds well under the flood (before, each request waited for room in a task of its
    own, holding its frames: +260 MiB measured)."""
    url, one, two = _zone_pair(tmp_path, postgres_server)
    try:
        on_two = led_by_two(url, one.bootstrap)
        big = _produce(on_two, b"x" * 900_000, 0)
        with (
            RawClient(one.bootstrap, client_id=ZONE_A) as first,
            RawClient(one.bootstrap, client_id=ZONE_A) as flood,
        ):
            flood.sock.settimeout(10)
            frame = flood.frame(PRODUCE, PRODUCE_VERSION, big)
            with paused(two):
                first.send_raw(first.frame(PRODUCE, PRODUCE_VERSION, _produce(on_two, b"0")))
                time.sleep(0.5)
                before = _rss_mib(one)

                def send() -> None:
                    with contextlib.suppress(OSError):  # the proxy stops reading: a timeout
                        for _ in range(300):
                            flood.send_raw(frame)

                sender = threading.Thread(target=send, daemon=True)
                sender.start()
                time.sleep(5)
                grown = _rss_mib(one) - before
            first.read_frame()
        assert grown < 160, f"the proxy grew {grown:.0f} MiB"
    finally:
        two.stop()
        one.stop()


def test_acks_1_requests_behind_a_stopped_leader_hold_no_records_on_the_proxy(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    """Six clients send 60 acks=1 requests of 0.9 MB each (324 MB) for a partition of the
    paused leader: the proxy answers them once it has the leader's answer, holding only
    their topics and partition indexes meanwhile (the records are in the round objects),
    and once 16 calls wait on the leader it is left out (the rest answered
    NOT_LEADER_OR_FOLLOWER at once). Before, each waiting answer held its whole request:
    +381 MiB in 10 s, growing as fast as the clients sent."""
    url, one, two = _zone_pair(tmp_path, postgres_server)
    try:
        on_two = led_by_two(url, one.bootstrap)
        big = _produce(on_two, b"x" * 900_000, 1)
        clients = [RawClient(one.bootstrap, client_id=ZONE_A) for _ in range(6)]
        try:
            frames = [c.frame(PRODUCE, PRODUCE_VERSION, big) for c in clients]
            with paused(two):
                time.sleep(0.3)
                before = _rss_mib(one)

                def send(client: RawClient, frame: bytes) -> None:
                    client.sock.settimeout(20)
                    with contextlib.suppress(OSError):
                        for _ in range(60):  # within the 64 responses a connection owes
                            client.send_raw(frame)

                senders = [
                    threading.Thread(target=send, args=pair, daemon=True)
                    for pair in zip(clients, frames, strict=True)
                ]
                for sender in senders:
                    sender.start()
                grown = 0.0
                for _ in range(10):
                    time.sleep(1)
                    grown = max(grown, _rss_mib(one) - before)
        finally:
            for client in clients:
                with contextlib.suppress(Exception):
                    client.close()
        assert grown < 200, f"the proxy grew {grown:.0f} MiB"
    finally:
        two.stop()
        one.stop()


def test_a_zone_produce_reads_only_its_callers_own_zone_router_objects(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url, objects_uri = fixture(tmp_path, postgres_server)
    objects = tmp_path / "objects"
    one = broker(tmp_path / "one", 1, url, objects_uri).start()
    two = broker(tmp_path / "two", 2, url, objects_uri).start()
    try:
        partition = min(p for p, node in create(one.bootstrap, TOPIC, 4, url).items() if node == 2)
        frame = produce_frame(two.bootstrap, partition, encode_batch([Rec(b"forged")]))
        # The frame stored where only another broker's rounds, or the data, live.
        for key in (round_key(3, 0), "objects/forged", "zone-router/1/0/0"):
            positions = store(objects, key, [frame])
        for key in (
            round_key(3, 0),
            "objects/forged",
            "zone-router/1/0/0",  # a round key without its random part
            "zone-router/1/../../objects/forged",
            str(objects / "objects/forged"),
        ):
            answer = hand_over(two, key, positions, principal="User:admin")
            assert answer.error_code == ErrorCode.invalid_request, (key, answer)
            assert answer.frames == ()
        # A missing object of its own: refused without naming the store's directory.
        missing = hand_over(two, round_key(1, 99), positions)
        assert missing.error_code == ErrorCode.kafka_storage_error
        assert str(tmp_path) not in (missing.error_message or "")
        assert _end_offset(two.bootstrap, partition) == 0  # nothing was appended
    finally:
        two.stop()
        one.stop()


# A long name makes each record error's message long (it names the topic partition).
COMPACTED = "compacted-" + "x" * 200


def test_one_clients_large_answer_fails_no_other_clients_frames(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    """A client of zone a sends the leader of zone b, in one Produce, batches of 1,000
    keyless records for a compacted topic: the leader answers INVALID_RECORD with 1,000
    record errors per partition (Kafka's answer), over 4 MiB in all with their messages.
    Another client's record handed over in the same round is appended and answered so;
    the attacker's answer keeps every record's index (the leader drops the messages)."""
    url, one, two = _zone_pair(tmp_path, postgres_server)
    try:
        leaders = create(one.bootstrap, TOPIC, 4, url)
        on_two = min(p for p, node in leaders.items() if node == 2)
        compacted = create(one.bootstrap, COMPACTED, 40, url, {"cleanup.policy": "compact"})
        targets = sorted(p for p, node in compacted.items() if node == 2)
        wait_until(lambda: metadata_leader(one.bootstrap, on_two) == 2, 15, "leader known")
        keyless = encode_batch([Rec(b"v") for _ in range(1_000)])
        attack = {
            "transactional_id": None,
            "acks": -1,
            "timeout": 20_000,
            "topic_data": [
                {
                    "name": COMPACTED,
                    "partition_data": [{"index": p, "records": keyless} for p in targets],
                }
            ],
        }
        with (
            RawClient(one.bootstrap, client_id=ZONE_A) as first,
            RawClient(one.bootstrap, client_id=ZONE_A) as victim,
            RawClient(one.bootstrap, client_id=ZONE_A) as attacker,
        ):
            with paused(two):
                first.send_raw(first.frame(PRODUCE, PRODUCE_VERSION, _produce(on_two, b"0")))
                time.sleep(0.5)
                victim.send_raw(victim.frame(PRODUCE, PRODUCE_VERSION, _produce(on_two, b"v")))
                victim._pending.append((victim.correlation_id, PRODUCE, PRODUCE_VERSION))
                time.sleep(0.3)
                attacker.send(PRODUCE, PRODUCE_VERSION, **attack)
                time.sleep(1)
            first.read_frame()
            answer = victim.receive().responses[0].partition_responses[0]
            attacked = attacker.receive().responses[0].partition_responses
        assert _end_offset(two.bootstrap, on_two) == 2  # both records were appended
        assert (answer.error_code, answer.base_offset) == (0, 1), answer
        assert {ErrorCode(p.error_code).name for p in attacked} == {"invalid_record"}
        # Past the answer bound the messages go; every record's index stays.
        assert [len(p.record_errors) for p in attacked] == [1_000] * len(targets)
    finally:
        two.stop()
        one.stop()


def test_a_client_cannot_write_as_another_principal_through_zone_produce(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    """ACLs enforced, `allow.everyone.if.no.acl.found` (no ACL on the cluster resource,
    as is usual), the topic writable by User:admin only (described by anyone): an
    anonymous client's Produce is refused; the same client sending a broker's client id
    names User:admin for a frame of its own in a round object (one the proxy wrote for
    it) and is refused: it knows the key's node, incarnation and sequence, not its random
    part, so it names no object (INVALID_REQUEST without the part, nothing read with a
    guessed one), and nothing is written as User:admin."""
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        AdminClient,
        ResourcePatternType,
        ResourceType,
    )

    secured = {
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found": "true",
    }
    url, objects_uri = fixture(tmp_path, postgres_server)
    objects = tmp_path / "objects"
    one = broker(tmp_path / "one", 1, url, objects_uri, **secured).start()
    two = broker(tmp_path / "two", 2, url, objects_uri, **secured).start()
    try:
        partition = min(p for p, node in create(one.bootstrap, TOPIC, 4, url).items() if node == 2)
        admin = AdminClient({"bootstrap.servers": one.bootstrap})
        only_admin = AclBinding(
            ResourceType.TOPIC, TOPIC, ResourcePatternType.LITERAL, "User:admin", "*",
            AclOperation.WRITE, AclPermissionType.ALLOW,
        )  # fmt: skip
        describe = AclBinding(
            ResourceType.TOPIC, TOPIC, ResourcePatternType.LITERAL, "User:ANONYMOUS", "*",
            AclOperation.DESCRIBE, AclPermissionType.ALLOW,
        )  # fmt: skip
        for future in admin.create_acls([only_admin, describe]).values():
            future.result(15)
        with RawClient(two.bootstrap) as client:
            wait_until(
                lambda: (
                    client.request(PRODUCE, PRODUCE_VERSION, **_fields(partition, b"me"))
                    .responses[0]
                    .partition_responses[0]
                    .error_code
                    == ErrorCode.topic_authorization_failed
                ),
                15,
                "the ACL applies",
            )
        # a "me" sent before broker 2 read the ACL was appended: count from here
        before = _end_offset(two.bootstrap, partition)
        frame = produce_frame(two.bootstrap, partition, encode_batch([Rec(b"as-admin")]))
        positions = store(objects, round_key(1, 0), [frame])  # as the proxy stored it
        guessed = round_key(1, 0).replace(SECRET, "0" * 32)
        # CLUSTER_ACTION under allow.everyone.if.no.acl.found is no broker's grant: a
        # client naming a live broker is refused before any key is looked at.
        for key in ("zone-router/1/0/0", guessed):
            answer = hand_over(two, key, positions, principal="User:admin")
            assert answer.error_code == ErrorCode.cluster_authorization_failed, (key, answer)
        # Nor does naming a broker stand in for the topic's WRITE, or open the audit topic.
        with RawClient(two.bootstrap, client_id="broker-1") as as_broker:
            answer = as_broker.request(PRODUCE, PRODUCE_VERSION, **_fields(partition, b"forged"))
            assert answer.responses[0].partition_responses[0].error_code == (
                ErrorCode.topic_authorization_failed
            )
            audit = _fields(0, b"forged")
            audit["topic_data"][0]["name"] = "__contextplane_audit"
            answer = as_broker.request(PRODUCE, PRODUCE_VERSION, **audit)
            assert answer.responses[0].partition_responses[0].error_code in (
                ErrorCode.invalid_topic_exception,  # broker 2 leads it
                ErrorCode.not_leader_or_follower,  # broker 1 does
            )
        assert _end_offset(two.bootstrap, partition) == before  # nothing written
    finally:
        two.stop()
        one.stop()
