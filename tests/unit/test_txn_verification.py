"""Transaction verification at a coordinator on another broker (broker/txn_verification.py),
answered as Kafka 4.4 answers it:

- TxnOffsetCommit v5+ at a group coordinator adds the group's `__consumer_offsets`
  partition at the transaction's coordinator with AddPartitionsToTxn v5, against a real
  broker (SASL_PLAINTEXT, SCRAM, the StandardAuthorizer): as its super user the partition
  joins the transaction (DescribeTransactions lists it, as Kafka's does); as a principal
  without CLUSTER_ACTION the refusal is INVALID_TXN_STATE (AddPartitionsToTxnManager);
- a coordinator that cannot be reached, or is not known, is what Kafka's group
  coordinator answers (COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE) and what
  its partition leader answers a Produce (NOT_ENOUGH_REPLICAS naming NETWORK_EXCEPTION or
  COORDINATOR_NOT_AVAILABLE);
- each coordinator answer's produce error (ReplicaManager.handleProduceAppend).

The broker-side context is a plain namespace of what the calls read (the topics, the
leader of the transactional id's shard, the peer client); the peers are real.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from contextplane.broker.txn_verification import add_group_remote, produce_error, verify_remote
from contextplane.clock import ManualClock
from contextplane.cluster.peer_client import Peers, PeerSecurity
from contextplane.coordinators.txn_shards import TXN_STATE_TOPIC
from contextplane.errors import KafkaError
from contextplane.metadata.records import BrokerEndpoint, BrokerRecord
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.offsets_records import OFFSETS_TOPIC, partition_for
from contextplane.security.inter_broker import InterBrokerLogin
from tests.support.inprocess import InProcessBroker
from tests.unit.test_peer_client_login import secured_broker

INIT_PRODUCER_ID, DESCRIBE_TRANSACTIONS = 22, 65
TID, GROUP = "payments", "shipping"
E = ErrorCode


@pytest.fixture(scope="module")
def coordinator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessBroker]:
    broker = secured_broker(tmp_path_factory.mktemp("txn-verification"))
    yield broker
    broker.stop()


def _context(port: int, user: str = "broker", leader: int = 2) -> Any:
    """A broker (node 1) whose peer node 2 listens on 127.0.0.1:`port` and leads the
    transactional id's shard (`leader` -1: no leader known)."""
    password = f"{user}-secret"
    login = InterBrokerLogin("SASL_PLAINTEXT", "SASL_PLAINTEXT", "SCRAM-SHA-512", user, password)
    endpoint = BrokerEndpoint("SASL_PLAINTEXT", "127.0.0.1", port, "SASL_PLAINTEXT")
    peer = BrokerRecord(2, 1, None, (endpoint,), "live", 10_000)
    topics = {
        TXN_STATE_TOPIC: SimpleNamespace(partitions=50),
        OFFSETS_TOPIC: SimpleNamespace(partitions=50),
    }
    return SimpleNamespace(
        topics=SimpleNamespace(topics=lambda: topics),
        cluster=SimpleNamespace(
            node_id=1,
            peers=Peers(lambda: [peer], PeerSecurity(login), 1, ManualClock()),
            leaders=SimpleNamespace(of=lambda topic, index: (leader, 0)),
        ),
        log=SimpleNamespace(partitions={}),
    )


def _port(broker: InProcessBroker) -> int:
    return int(broker.bootstrap.rsplit(":", 1)[1])


def _closed_port() -> int:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        return int(free.getsockname()[1])


async def _code(call: Any) -> ErrorCode:
    try:
        await call
    except KafkaError as exc:
        return exc.code
    return E.none


def test_the_groups_offsets_partition_joins_the_transaction_with_cluster_action(
    coordinator: InProcessBroker,
) -> None:
    async def run() -> None:
        ctx = _context(_port(coordinator))
        peers = ctx.cluster.peers
        try:
            started = await peers.request(
                2, INIT_PRODUCER_ID, 4, transactional_id=TID, transaction_timeout=60_000
            )
            assert started.error_code == E.none
            producer = (started.producer_id, started.producer_epoch)
            assert await add_group_remote(ctx, TID, producer, GROUP) == partition_for(GROUP, 50)
            fenced = (producer[0], producer[1] + 1)
            assert await _code(add_group_remote(ctx, TID, fenced, GROUP)) == (
                E.invalid_producer_epoch  # PRODUCER_FENCED, as Kafka's manager maps it
            )
            described = await peers.request(2, DESCRIBE_TRANSACTIONS, 0, transactional_ids=[TID])
            state = described.transaction_states[0]
            assert state.transaction_state == "Ongoing"
            assert [(t.topic, list(t.partitions)) for t in state.topics] == [
                (OFFSETS_TOPIC, [partition_for(GROUP, 50)])
            ]
            # Without CLUSTER_ACTION: the coordinator refuses the request whole.
            alice = _context(_port(coordinator), user="alice")
            try:
                assert await _code(add_group_remote(alice, TID, producer, GROUP)) == (
                    E.invalid_txn_state
                )
            finally:
                await alice.cluster.peers.close()
        finally:
            await peers.close()

    asyncio.run(run())


def test_an_unreachable_or_unknown_coordinator_is_answered_as_kafka_answers_it() -> None:
    async def run() -> None:
        unreachable = _context(_closed_port())
        unknown = _context(_closed_port(), leader=-1)
        producer = (7, 0)
        try:
            assert await _code(add_group_remote(unreachable, TID, producer, GROUP)) == (
                E.coordinator_load_in_progress
            )
            assert await _code(add_group_remote(unknown, TID, producer, GROUP)) == (
                E.coordinator_not_available
            )
            underlying = {"NETWORK_EXCEPTION": unreachable, "COORDINATOR_NOT_AVAILABLE": unknown}
            for name, ctx in underlying.items():
                for add in (False, True):  # Produce v0-11, v12+
                    answer = await verify_remote(ctx, TID, producer, [("orders", 0)], add)
                    error = answer[("orders", 0)]
                    assert error is not None and error.code == E.not_enough_replicas
                    assert error.message.endswith(f"Underlying error: {name}")
        finally:
            await unreachable.cluster.peers.close()
            await unknown.cluster.peers.close()

    asyncio.run(run())


@pytest.mark.parametrize(
    ("answer", "add", "produced"),
    [
        (E.none, False, E.none),
        (E.producer_fenced, True, E.invalid_producer_epoch),
        (E.invalid_producer_id_mapping, False, E.invalid_producer_id_mapping),
        (E.invalid_txn_state, False, E.invalid_txn_state),
        (E.transaction_abortable, True, E.transaction_abortable),
        (E.network_exception, True, E.not_enough_replicas),
        (E.coordinator_load_in_progress, False, E.not_enough_replicas),
        (E.coordinator_not_available, True, E.not_enough_replicas),
        (E.not_coordinator, False, E.not_enough_replicas),
        # Before Produce v12 clients may not retry it; v12+ clients do.
        (E.concurrent_transactions, False, E.not_enough_replicas),
        (E.concurrent_transactions, True, E.concurrent_transactions),
        (E.unknown_topic_or_partition, False, E.unknown_topic_or_partition),
        (E.unknown_server_error, True, E.unknown_server_error),
    ],
)
def test_each_coordinator_answer_becomes_kafkas_produce_error(
    answer: ErrorCode, add: bool, produced: ErrorCode
) -> None:
    error = produce_error(answer, add)
    assert (error.code if error is not None else E.none) == produced


def test_no_offsets_topic_is_coordinator_not_available() -> None:
    ctx = _context(_closed_port())
    ctx.topics = SimpleNamespace(topics=dict)
    code = asyncio.run(_code(add_group_remote(ctx, TID, (7, 0), GROUP)))
    assert code == E.coordinator_not_available
