"""The inter-broker client's login (cluster/peer_client.py) against a real broker whose
only listener is SASL_PLAINTEXT with SCRAM and the StandardAuthorizer: the broker's
principal, a super user, has WriteTxnMarkers answered; a principal without
CLUSTER_ACTION on the cluster gets CLUSTER_AUTHORIZATION_FAILED for every partition, as
Kafka answers; a wrong password fails the connection (PeerUnavailable) without a
request sent."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from contextplane.cli.main import main as cli
from contextplane.clock import ManualClock
from contextplane.cluster.peer_client import PeerConnection, PeerSecurity, PeerUnavailable
from contextplane.protocol.error_codes import ErrorCode
from contextplane.security.inter_broker import InterBrokerLogin
from tests.support.inprocess import InProcessBroker

WRITE_TXN_MARKERS = 27
MARKER = {
    "producer_id": 7,
    "producer_epoch": 0,
    "transaction_result": True,
    "topics": [{"name": "absent", "partition_indexes": [0, 1]}],
    "coordinator_epoch": 0,
}


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessBroker]:
    broker = secured_broker(tmp_path_factory.mktemp("peer-login"))
    yield broker
    broker.stop()


def secured_broker(data_dir: Path) -> InProcessBroker:
    """A started broker whose only listener is SASL_PLAINTEXT with SCRAM-SHA-512 and the
    StandardAuthorizer: User:broker (password broker-secret) a super user, User:alice
    (alice-secret) granted nothing."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        for user in ("broker", "alice"):
            monkeypatch.setattr("sys.stdin", io.StringIO(f"{user}-secret\n"))
            args = ["users", "add", user, "--data-dir", str(data_dir), "--password-stdin"]
            assert cli(args) == 0
    return InProcessBroker(
        data_dir,
        settings={
            "listeners": "SASL_PLAINTEXT://127.0.0.1:0",
            "sasl.enabled.mechanisms": "SCRAM-SHA-512",
            # Brokers' calls are taken only on the inter-broker listener.
            "inter.broker.listener.name": "SASL_PLAINTEXT",
            "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
            "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required"
                ' username="broker" password="broker-secret";'
            ),
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": "User:broker",
        },
    ).start()


def _write_markers(broker: InProcessBroker, user: str, password: str) -> list[int]:
    """The partitions' error codes of WriteTxnMarkers sent as `user`."""
    login = InterBrokerLogin("SASL_PLAINTEXT", "SASL_PLAINTEXT", "SCRAM-SHA-512", user, password)

    async def run() -> list[int]:
        peer = PeerConnection(2, "broker-2", ManualClock(), PeerSecurity(login))
        host, port = broker.bootstrap.rsplit(":", 1)
        try:
            answer = await peer.request((host, int(port)), WRITE_TXN_MARKERS, 1, markers=[MARKER])
        finally:
            await peer.close()
        return [p.error_code for t in answer.markers[0].topics for p in t.partitions]

    return asyncio.run(run())


def test_the_brokers_principal_is_answered(secured: InProcessBroker) -> None:
    unknown = ErrorCode.unknown_topic_or_partition
    assert _write_markers(secured, "broker", "broker-secret") == [unknown, unknown]


def test_a_principal_without_cluster_action_is_refused(secured: InProcessBroker) -> None:
    refused = ErrorCode.cluster_authorization_failed
    assert _write_markers(secured, "alice", "alice-secret") == [refused, refused]


def test_a_wrong_password_fails_the_connection(secured: InProcessBroker) -> None:
    with pytest.raises(PeerUnavailable, match="login as 'broker' refused"):
        _write_markers(secured, "broker", "guess")
