"""AlterPartitionReassignments sent to a broker that is not the controller (RFC 0004 §6,
broker/handlers/reassignments_forward.py), on two brokers sharing one PostgreSQL:

- SASL_PLAINTEXT/SCRAM listeners only and the StandardAuthorizer, the brokers logged in
  as User:broker, granted only CLUSTER_ACTION: User:admin (ALTER on the cluster) asks
  broker 2, which forwards to broker 1, the controller, and the partition moves;
  User:alice (no ALTER) is refused by broker 2 with CLUSTER_AUTHORIZATION_FAILED and
  the controller is never asked (its count of AlterPartitionReassignments unchanged);
- the controller killed -9 (its lease still running): broker 2 answers NOT_CONTROLLER
  naming the controller it cannot reach, at once, not after a hang.

The same kill holds a transaction in PrepareCommit (its coordinator, broker 2, cannot
write the marker to broker 1's partition), which is the case where Kafka 4.4's leader
answers a Produce v12+ for the next transaction CONCURRENT_TRANSACTIONS once its
100 ms of retries are spent, and an older Produce NOT_ENOUGH_REPLICAS naming it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient, NewTopic

from conformance import wire
from conformance.scenarios.transactions_v2 import _end as end_txn
from contextplane.clock import ManualClock
from contextplane.cluster.peer_client import PeerConnection, PeerSecurity
from contextplane.coordinators.txn_shards import TXN_STATE_TOPIC
from contextplane.metadata.records import AclRecord
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.offsets_records import partition_for
from contextplane.security.acls import (
    CLUSTER_NAME,
    Operation,
    PatternType,
    Permission,
    ResourceType,
)
from contextplane.security.inter_broker import InterBrokerLogin
from tests.e2e.test_cluster_failover import broker, create, stored
from tests.e2e.test_cluster_moves import partitions
from tests.e2e.test_cluster_transactions_secured import _prepare_store, scram_only
from tests.support.inprocess import InProcessBroker
from tests.support.postgres import PostgresServer
from tests.support.rawclient import RawClient
from tests.support.wait import wait_until

ALTER_PARTITION_REASSIGNMENTS, DESCRIBE_CLUSTER = 45, 60
TOPIC = "moving"
USERS = ("broker", "root", "admin", "alice", "b1", "b2")


def allow(principal: str, operation: Operation) -> AclRecord:
    return AclRecord(
        ResourceType.CLUSTER,
        CLUSTER_NAME,
        PatternType.LITERAL,
        principal,
        "*",
        operation,
        Permission.ALLOW,
    )


@contextmanager
def secured_pair(
    tmp_path: Path, url: str, acls: list[AclRecord], logins: tuple[str, str] = ("broker", "broker")
) -> Iterator[tuple[InProcessBroker, InProcessBroker]]:
    """Brokers 1 (the controller: it starts first) and 2 with SASL_PLAINTEXT/SCRAM
    listeners only, logging in to each other as `logins`; every user of `USERS` has the
    password `<user>-secret`, User:root is a super user, `acls` are granted."""
    _prepare_store(url, {user: f"{user}-secret" for user in USERS}, acls)
    (tmp_path / "objects").mkdir()

    def started(node_id: int) -> InProcessBroker:
        return InProcessBroker(
            tmp_path / f"broker-{node_id}",
            object_store=(tmp_path / "objects").as_uri(),
            settings={
                "metadata.url": url,
                "node.id": str(node_id),
                "broker.heartbeat.interval.ms": "200",
                "broker.session.timeout.ms": "3000",
                **scram_only("User:root", logins[node_id - 1]),
            },
        ).start()

    one = started(1)
    two = started(2)
    try:
        assert one.broker is not None and one.broker.registry is not None
        registry = one.broker.registry
        wait_until(lambda: registry.live_ids == {1, 2}, 10, "broker 1 sees broker 2")
        assert registry.is_controller
        yield one, two
    finally:
        two.stop()
        one.stop()


def call(
    bootstrap: str,
    user: str,
    api_key: int,
    version: int,
    client_id: str = "raw-test",
    **fields: Any,
) -> Any:
    """One request logged in as `user` (SCRAM-SHA-512) with `client_id`, its decoded
    response."""
    login = InterBrokerLogin(
        "SASL_PLAINTEXT", "SASL_PLAINTEXT", "SCRAM-SHA-512", user, f"{user}-secret"
    )

    async def run() -> Any:
        client = PeerConnection(0, client_id, ManualClock(), PeerSecurity(login))
        host, port = bootstrap.rsplit(":", 1)
        try:
            return await client.request((host, int(port)), api_key, version, **fields)
        finally:
            await client.close()

    return asyncio.run(run())


def alter(
    bootstrap: str, user: str, moves: dict[int, int], version: int = 0, topic: str = TOPIC
) -> Any:
    """AlterPartitionReassignments of `moves` (partition -> broker) logged in as `user`."""
    wanted = [{"partition_index": p, "replicas": [node]} for p, node in moves.items()]
    topics = [{"name": topic, "partitions": wanted}]
    return call(
        bootstrap, user, ALTER_PARTITION_REASSIGNMENTS, version, timeout=30_000, topics=topics
    )


def root_admin(bootstrap: str) -> AdminClient:
    return AdminClient(
        {
            "bootstrap.servers": bootstrap,
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": "root",
            "sasl.password": "root-secret",
        }
    )


def _codes(answer: Any) -> list[tuple[int, int]]:
    return [(p.partition_index, p.error_code) for t in answer.responses for p in t.partitions]


def test_a_non_controller_authorizes_its_client_then_forwards_to_the_controller(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url = postgres_server.create_database()
    acls = [allow("User:broker", Operation.CLUSTER_ACTION), allow("User:admin", Operation.ALTER)]
    with secured_pair(tmp_path, url, acls) as (one, two):
        assert one.broker is not None
        admin = root_admin(one.bootstrap)
        admin.create_topics([NewTopic(TOPIC, 2, 1)])[TOPIC].result(30)
        wait_until(
            lambda: all(r[1] == r[3] != -1 for r in partitions(url, TOPIC).values()),
            15,
            "each broker claims its share",
        )
        on_one = next(p for p, r in sorted(partitions(url, TOPIC).items()) if r[1] == 1)
        stats = one.broker.pipeline.services.stats

        def asked() -> int:
            times = stats.requests.get(ALTER_PARTITION_REASSIGNMENTS)
            return times.count if times is not None else 0

        # alice may not ALTER the cluster: broker 2 refuses, the controller never asked.
        before = asked()
        refused = alter(two.bootstrap, "alice", {on_one: 2})
        assert refused.error_code == ErrorCode.cluster_authorization_failed
        assert _codes(refused) == [(on_one, ErrorCode.cluster_authorization_failed)]
        assert asked() == before
        assert partitions(url, TOPIC)[on_one][1:4:2] == (1, 1)

        # admin may: broker 2 forwards (as User:broker, CLUSTER_ACTION only) and the
        # controller moves the partition; v1 too, and an unknown partition is the
        # controller's answer, relayed.
        moved = alter(two.bootstrap, "admin", {on_one: 2, 7: 2}, version=1)
        assert (moved.error_code, moved.error_message) == (ErrorCode.none, None)
        assert _codes(moved) == [
            (on_one, ErrorCode.none),
            (7, ErrorCode.unknown_topic_or_partition),
        ]
        assert (
            moved.responses[0].partitions[1].error_message == f"Unable to find partition {TOPIC}:7."
        )
        assert asked() == before + 1
        wait_until(
            lambda: partitions(url, TOPIC)[on_one][1:4:2] == (2, 2),
            30,
            "the forwarded move completes",
        )


def test_the_controller_gone_is_not_controller_and_a_held_transaction_concurrent(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url = postgres_server.create_database()
    (tmp_path / "objects").mkdir()
    objects = (tmp_path / "objects").as_uri()
    # Leases far longer than the test's steps after the kill: broker 1 stays listed (and
    # the controller) while it is dead.
    long_lease = {"broker.session.timeout.ms": "60000"}
    one = broker(tmp_path / "one", 1, url, objects, **long_lease).start()
    two = broker(tmp_path / "two", 2, url, objects, **long_lease).start()
    try:
        leaders = create(one.bootstrap, "orders", 4, url)
        on_one = next(p for p, node in leaders.items() if node == 1)
        on_two = next(p for p, node in leaders.items() if node == 2)
        tid = "held"
        shard = partition_for(tid, 50)
        with RawClient(two.bootstrap) as raw:
            controller = raw.request(
                DESCRIBE_CLUSTER, 0, include_cluster_authorized_operations=False
            )
            assert controller.controller_id == 1
            # Broker 1 created `__transaction_state` at its start; the id's shard is moved
            # to broker 2 (forwarded to the controller), which then coordinates it.
            moved = _alter_raw(raw, shard, 2, TXN_STATE_TOPIC)
            assert _codes(moved) == [(shard, ErrorCode.none)]
        wait_until(
            lambda: stored(url, TXN_STATE_TOPIC)[shard]["leader"] == 2, 30, "broker 2 has the shard"
        )

        with RawClient(one.bootstrap) as at_one, RawClient(two.bootstrap) as at_two:
            wire.find_coordinator(at_two, tid, key_type=1)
            init = wire.init_producer_id(at_two, transactional_id=tid)
            assert init.error_code == ErrorCode.none
            pid, epoch = init.producer_id, init.producer_epoch

            def batch(producer_epoch: int, sequence: int) -> bytes:
                return wire.encode_batch(
                    [b"v"],
                    producer_id=pid,
                    producer_epoch=producer_epoch,
                    base_sequence=sequence,
                    transactional=True,
                )

            # The transaction has a partition on each broker (Produce v12 adds them).
            def written(client: RawClient, partition: int, epoch: int) -> bool:
                answer = wire.produce(
                    client, "orders", batch(epoch, 0), partition, version=12, transactional_id=tid
                )
                return bool(answer.error_code == ErrorCode.none)

            # Broker 1 retries until its mirror names the shard's new leader (a heartbeat).
            for client, partition in ((at_one, on_one), (at_two, on_two)):
                wait_until(
                    lambda c=client, p=partition: written(c, p, epoch),
                    30,
                    f"the batch to partition {partition} is written",
                )

            one.kill9()
            # The controller gone: broker 2 cannot forward, and says so.
            gone = _alter_raw(at_two, on_two, 2)
            assert gone.error_code == ErrorCode.not_controller
            assert "node 1" in (gone.error_message or "")
            assert _codes(gone) == [(on_two, ErrorCode.not_controller)]

            # The commit is prepared, but its marker for broker 1's partition cannot be
            # written: the transaction stays in PrepareCommit.
            ended = end_txn(at_two, tid, pid, epoch, commit=True)
            assert ended.error_code == ErrorCode.none
            next_epoch = ended.producer_epoch
            assert next_epoch == epoch + 1
            busy = wire.produce(
                at_two, "orders", batch(next_epoch, 0), on_two, version=12, transactional_id=tid
            )
            assert busy.error_code == ErrorCode.concurrent_transactions
            older = wire.produce(
                at_two, "orders", batch(next_epoch, 0), on_two, version=11, transactional_id=tid
            )
            assert older.error_code == ErrorCode.not_enough_replicas
            assert "CONCURRENT_TRANSACTIONS" in (older.error_message or "")
    finally:
        two.stop()
        one.stop()


def _alter_raw(client: RawClient, partition: int, node: int, topic: str = "orders") -> Any:
    return client.request(
        ALTER_PARTITION_REASSIGNMENTS,
        0,
        timeout=30_000,
        topics=[
            {"name": topic, "partitions": [{"partition_index": partition, "replicas": [node]}]}
        ],
    )
