"""The broker's own writes to a partition led elsewhere (cluster/forwarder.py), against a
real broker whose only listener is SASL_PLAINTEXT with SCRAM and the StandardAuthorizer
(test_peer_client_login.py's `secured`): a writer told that broker leads the audit topic
sends its batch as a Produce logged in as User:broker (a super user) and the record is
in the topic; alice (no WRITE, no CLUSTER_ACTION) and a client id that is not a broker's
are refused; an answer that is not retriable raises at once, a leader that cannot be
reached is retried until the deadline; and the audit sink keeps the records it could
not write and writes them at its next flush."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from contextplane.broker.audit_sink import AuditSink
from contextplane.broker.internal_topics import AUDIT_TOPIC
from contextplane.broker.leaders import Leaders
from contextplane.clock import ManualClock
from contextplane.cluster.forwarder import PRODUCE_KEY, PRODUCE_VERSION, PartitionWriter
from contextplane.cluster.peer_client import PeerConnection, Peers, PeerSecurity
from contextplane.errors import KafkaError
from contextplane.metadata.records import BrokerEndpoint, BrokerRecord
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.offsets_records import encode_batch
from contextplane.security.inter_broker import InterBrokerLogin
from contextplane.storage.engine import StorageEngine
from tests.support.audit_topics import read_json_topic
from tests.support.inprocess import InProcessBroker
from tests.unit.test_peer_client_login import secured  # noqa: F401 - the module's broker

SASL = "SASL_PLAINTEXT"
AS_BROKER = {
    "security.protocol": SASL,
    "sasl.mechanism": "SCRAM-SHA-512",
    "sasl.username": "broker",
    "sasl.password": "broker-secret",
}


class LedBy:
    """Who the metadata store says leads every partition (a node id)."""

    def __init__(self, node: int) -> None:
        self.node = node

    def of(self, topic: str, index: int) -> tuple[int, int]:
        return self.node, 0


def login(user: str) -> PeerSecurity:
    return PeerSecurity(InterBrokerLogin(SASL, SASL, "SCRAM-SHA-512", user, f"{user}-secret"))


def writer_for(broker: InProcessBroker, user: str, leaders: LedBy) -> tuple[PartitionWriter, Peers]:
    """A writer on broker 2 whose only peer, node 1, is `broker`."""
    host, port = broker.bootstrap.rsplit(":", 1)
    record = BrokerRecord(1, 1, None, (BrokerEndpoint(SASL, host, int(port), SASL),), "live", 9_000)
    peers = Peers(lambda: [record], login(user), 2, ManualClock())
    # The remote path never touches the engine.
    writer = PartitionWriter(
        cast(StorageEngine, None), ManualClock(), cast(Leaders, leaders), peers, 2
    )
    return writer, peers


def event(text: str) -> bytes:
    return b'{"type": "test", "data": {"text": "%s"}}' % text.encode()


def batch(text: str) -> bytes:
    return encode_batch([(b"k", event(text))], 1_700_000_000_000)


def texts(broker: InProcessBroker) -> list[str]:
    events = read_json_topic(AS_BROKER | {"bootstrap.servers": broker.bootstrap}, AUDIT_TOPIC)
    return [e["data"].get("text", "") for e in events if e["type"] == "test"]


def run(coroutine_of: Any, peers: Peers) -> Any:
    async def go() -> Any:
        try:
            return await coroutine_of()
        finally:
            await peers.close()

    return asyncio.run(go())


def test_the_brokers_principal_writes_the_audit_topic_at_its_leader(
    secured: InProcessBroker,  # noqa: F811
) -> None:
    writer, peers = writer_for(secured, "broker", LedBy(1))
    run(lambda: writer.write(AUDIT_TOPIC, 0, [batch("forwarded")], 10), peers)
    assert writer.forwarded == 1
    assert "forwarded" in texts(secured)


def test_alice_and_a_client_that_is_not_a_broker_are_refused(
    secured: InProcessBroker,  # noqa: F811
) -> None:
    writer, peers = writer_for(secured, "alice", LedBy(1))
    with pytest.raises(KafkaError) as refused:
        run(lambda: writer.write(AUDIT_TOPIC, 0, [batch("alice")], 10), peers)
    assert refused.value.code == ErrorCode.topic_authorization_failed
    assert writer.retried == 0

    async def as_a_client() -> int:
        peer = PeerConnection(1, "audit-tool", ManualClock(), login("broker"))
        host, port = secured.bootstrap.rsplit(":", 1)
        try:
            answer = await peer.request(
                (host, int(port)),
                PRODUCE_KEY,
                PRODUCE_VERSION,
                transactional_id=None,
                acks=-1,
                timeout=5000,
                topic_data=[
                    {"name": AUDIT_TOPIC, "partition_data": [{"index": 0, "records": batch("x")}]}
                ],
            )
        finally:
            await peer.close()
        return int(answer.responses[0].partition_responses[0].error_code)

    assert asyncio.run(as_a_client()) == ErrorCode.invalid_topic_exception
    assert not {"alice", "x"} & set(texts(secured))


def test_a_missing_partition_raises_at_once_and_an_unreachable_leader_until_the_deadline(
    secured: InProcessBroker,  # noqa: F811
) -> None:
    writer, peers = writer_for(secured, "broker", LedBy(1))
    with pytest.raises(KafkaError) as missing:
        run(lambda: writer.write("absent", 0, [batch("a")], 10), peers)
    assert missing.value.code == ErrorCode.unknown_topic_or_partition
    assert writer.retried == 0

    writer, peers = writer_for(secured, "broker", LedBy(3))  # no such live broker
    with pytest.raises(KafkaError) as away:
        run(lambda: writer.write(AUDIT_TOPIC, 0, [batch("b")], 0.3), peers)
    assert away.value.code == ErrorCode.request_timed_out
    assert writer.retried >= 1


def test_the_audit_sink_keeps_what_it_could_not_write_and_writes_it_later(
    secured: InProcessBroker,  # noqa: F811
) -> None:
    assert secured.broker is not None and secured.broker.topics is not None
    leaders = LedBy(3)  # its leader away
    writer, peers = writer_for(secured, "broker", leaders)
    sink = AuditSink(writer, secured.broker.topics, secured.broker.settings, ManualClock())

    async def go() -> tuple[int, int, int]:
        for text in ("kept-1", "kept-2"):
            assert sink.offer(AUDIT_TOPIC, b"k", event(text))
        await sink.flush()
        held, failed = sink.written, sink.failed_writes
        leaders.node = 1  # the leader is back
        assert sink.offer(AUDIT_TOPIC, b"k", event("kept-3"))
        await sink.flush()
        return held, failed, sink.written

    held, failed, written = run(go, peers)
    assert (held, failed, written) == (0, 1, 3)
    found = texts(secured)
    assert [t for t in found if t.startswith("kept-")] == ["kept-1", "kept-2", "kept-3"]
