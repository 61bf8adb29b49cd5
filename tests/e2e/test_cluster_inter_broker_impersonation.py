"""A client that calls itself a broker (RFC 0004, "Authenticated inter-broker calls as
built"): the client id `broker-<N>` is what the peer client sends, and the receiving
broker trusts it only together with CLUSTER_ACTION on the cluster, as Kafka trusts its
inter-broker principal. Two in-process brokers on one PostgreSQL, SASL_PLAINTEXT/SCRAM
listeners only, the StandardAuthorizer; the brokers log in as User:broker, granted
only CLUSTER_ACTION.

User:alice (no ACL) sending broker 2's client id: AlterPartitionReassignments at the
controller (which admits a broker's forwarded request on CLUSTER_ACTION), the brokers'
AddPartitionsToTxn v4 and MirrorAppend are all refused, and nothing moves; User:broker
with the same bytes is admitted (so the refusals are the principal's, not the
request's)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from confluent_kafka.admin import NewTopic

from contextplane.protocol.codec import MIRROR_APPEND_KEY
from contextplane.protocol.error_codes import ErrorCode
from contextplane.security.acls import Operation
from tests.e2e.test_cluster_moves import partitions
from tests.e2e.test_cluster_reassign_forwarded import (
    TOPIC,
    allow,
    call,
    root_admin,
    secured_pair,
)
from tests.support.postgres import PostgresServer
from tests.support.wait import wait_until

ALTER_PARTITION_REASSIGNMENTS, ADD_PARTITIONS_TO_TXN = 45, 24
AS_BROKER = "broker-2"


def as_broker(bootstrap: str, user: str, api_key: int, version: int, **fields: Any) -> Any:
    """One request logged in as `user`, sending broker 2's client id."""
    return call(bootstrap, user, api_key, version, client_id=AS_BROKER, **fields)


def verify_only(partition: int) -> list[dict[str, Any]]:
    """The brokers' batched AddPartitionsToTxn v4 (Produce verification) of one partition."""
    return [
        {
            "transactional_id": "t",
            "producer_id": 0,
            "producer_epoch": 0,
            "verify_only": True,
            "topics": [{"name": TOPIC, "partitions": [partition]}],
        }
    ]


def test_a_brokers_client_id_grants_nothing_without_cluster_action(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url = postgres_server.create_database()
    with secured_pair(tmp_path, url, [allow("User:broker", Operation.CLUSTER_ACTION)]) as (
        one,
        _,
    ):
        admin = root_admin(one.bootstrap)
        admin.create_topics([NewTopic(TOPIC, 2, 1)])[TOPIC].result(30)
        wait_until(
            lambda: all(r[1] == r[3] != -1 for r in partitions(url, TOPIC).values()),
            15,
            "each broker claims its share",
        )
        on_one = next(p for p, r in sorted(partitions(url, TOPIC).items()) if r[1] == 1)
        move = {
            "timeout": 30_000,
            "topics": [
                {"name": TOPIC, "partitions": [{"partition_index": on_one, "replicas": [2]}]}
            ],
        }

        # The controller (broker 1) admits a broker's forwarded move on CLUSTER_ACTION:
        # alice saying she is broker 2 gets no such grant.
        refused = as_broker(one.bootstrap, "alice", ALTER_PARTITION_REASSIGNMENTS, 0, **move)
        assert refused.error_code == ErrorCode.cluster_authorization_failed
        # The brokers' batched AddPartitionsToTxn (Produce verification).
        verify = as_broker(
            one.bootstrap, "alice", ADD_PARTITIONS_TO_TXN, 4, transactions=verify_only(on_one)
        )
        assert verify.error_code == ErrorCode.cluster_authorization_failed
        # contextplane's own, non-advertised MirrorAppend (ALTER on the cluster).
        mirrored = as_broker(
            one.bootstrap,
            "alice",
            MIRROR_APPEND_KEY,
            0,
            timeout=1_000,
            topics=[{"name": TOPIC, "partitions": [{"index": on_one, "records": b""}]}],
        )
        assert [p.error_code for t in mirrored.topics for p in t.partitions] == [
            ErrorCode.cluster_authorization_failed
        ]
        assert partitions(url, TOPIC)[on_one][1:4:2] == (1, 1)

        # The same bytes logged in as the brokers' principal: admitted.
        moved = as_broker(one.bootstrap, "broker", ALTER_PARTITION_REASSIGNMENTS, 0, **move)
        assert (moved.error_code, moved.responses[0].partitions[0].error_code) == (0, 0)
        verified = as_broker(
            one.bootstrap, "broker", ADD_PARTITIONS_TO_TXN, 4, transactions=verify_only(on_one)
        )
        assert verified.error_code == ErrorCode.none
        wait_until(
            lambda: partitions(url, TOPIC)[on_one][1:4:2] == (2, 2),
            30,
            "the broker's move completes",
        )
