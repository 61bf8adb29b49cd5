"""Transactions across brokers whose listeners are all authenticated (RFC 0004 §3,
security/inter_broker.py): two broker processes on one PostgreSQL, broker 1 started
alone so that it coordinates every transactional id, the topic with partitions on both.
The producer talks to broker 2 only; its commit's and abort's markers for broker 2's
partitions go from broker 1 over the inter-broker listener, authenticated as broker 1,
and broker 2 authorizes them (CLUSTER_ACTION) under the StandardAuthorizer. Without the
markers a read_committed consumer would stop at broker 2's partitions' open
transactions.

- SASL_PLAINTEXT only, SCRAM-SHA-512: the brokers log in as User:broker (a super user)
  with `sasl.mechanism.inter.broker.protocol` and the listener's JAAS username/password;
- SSL only, `ssl.client.auth=required`: each broker presents its own certificate
  (CN=broker-1, CN=broker-2), mapped by `ssl.principal.mapping.rules` to User:broker,
  which is not a super user but is granted CLUSTER_ACTION on the cluster; and, on three
  brokers, the Java client's transactions v2 with its group and transaction
  coordinators on different brokers: the group's coordinator adds the group's
  `__consumer_offsets` partition at the transaction's with AddPartitionsToTxn v5, as
  Kafka does, which CLUSTER_ACTION alone allows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic

from contextplane.coordinators.txn_shards import TXN_STATE_TOPIC
from contextplane.metadata.records import AclRecord
from contextplane.metadata.store import open_metadata_store
from contextplane.protocol.offsets_records import partition_for
from contextplane.security import scram
from contextplane.security.acls import (
    CLUSTER_NAME,
    Operation,
    PatternType,
    Permission,
    ResourceType,
)
from tests.e2e.test_cluster_failover import broker, stored
from tests.e2e.test_cluster_transactions import (
    PARTITIONS,
    TID,
    commit_abort_commit,
    coordinators_apart,
)
from tests.support.broker import BrokerProcess
from tests.support.postgres import PostgresServer
from tests.support.tls import TestCa
from tests.support.wait import wait_until

AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
SCRAM_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"
# Both brokers' certificates (CN=broker-1, CN=broker-2) are User:broker; others their CN.
MAPPING = "RULE:^CN=(broker)-[0-9]+,.*$/$1/,RULE:^CN=([^,]+),.*$/$1/"


def _prepare_store(url: str, users: dict[str, str], acls: list[AclRecord]) -> None:
    """SCRAM users and ACLs in the cluster's store before any broker starts (as Kafka's
    `kafka-storage format --add-scram`): brokers read them at start."""

    async def run() -> None:
        store = open_metadata_store(url)
        await store.open()
        try:
            records = [
                scram.credential_from_password(scram.MECHANISMS["SCRAM-SHA-512"], user, password)
                for user, password in users.items()
            ]
            await store.alter_scram_credentials(records, [])
            if acls:
                await store.create_acls(acls)
        finally:
            await store.close()

    asyncio.run(run())


def scram_only(super_users: str, user: str = "broker") -> dict[str, str]:
    """Broker settings: one SASL_PLAINTEXT listener with SCRAM-SHA-512, the broker
    logging in to others as User:`user` (password `user`-secret), the StandardAuthorizer."""
    jaas = f'{SCRAM_MODULE} required username="{user}" password="{user}-secret";'
    return {
        "listeners": "SASL_PLAINTEXT://127.0.0.1:0",
        "sasl.enabled.mechanisms": "SCRAM-SHA-512",
        "inter.broker.listener.name": "SASL_PLAINTEXT",
        "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
        "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config": jaas,
        "authorizer.class.name": AUTHORIZER,
        "super.users": super_users,
    }


@contextmanager
def secured_cluster(
    tmp_path: Path, url: str, settings: dict[int, dict[str, str]], client: dict[str, str]
) -> Iterator[tuple[BrokerProcess, BrokerProcess]]:
    """Broker 1 (alone first: it leads every `__transaction_state` shard), broker 2, and
    "orders" with partitions on both."""
    (tmp_path / "objects").mkdir()
    objects = (tmp_path / "objects").as_uri()
    one = broker(tmp_path / "one", 1, url, objects, **settings[1]).start()
    two = broker(tmp_path / "two", 2, url, objects, **settings[2]).start()
    try:
        admin = AdminClient({**client, "bootstrap.servers": one.bootstrap})
        wait_until(lambda: len(admin.list_topics(timeout=10).brokers) == 2, 15, "both listed")
        admin.create_topics([NewTopic("orders", PARTITIONS, 1)])["orders"].result(30)
        wait_until(
            lambda: all(r["leader"] == r["target"] != -1 for r in stored(url, "orders").values()),
            15,
            "each broker claims its share",
        )
        assert {r["leader"] for r in stored(url, "orders").values()} == {1, 2}
        assert stored(url, TXN_STATE_TOPIC)[partition_for(TID, 50)]["leader"] == 1
        yield one, two
    finally:
        two.stop()
        one.stop()


def test_a_transaction_across_brokers_on_sasl_scram_listeners_only(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url = postgres_server.create_database()
    _prepare_store(url, {"broker": "broker-secret", "admin": "admin-secret"}, [])
    common = scram_only("User:broker;User:admin")
    client = {
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "admin",
        "sasl.password": "admin-secret",
    }
    with secured_cluster(tmp_path, url, {1: common, 2: common}, client) as (_, two):
        commit_abort_commit(two.bootstrap, client)


@dataclass
class MutualTls:
    """SSL-only listeners with `ssl.client.auth=required`: each broker's own certificate
    maps to User:broker, granted only CLUSTER_ACTION; the clients' to User:client, a
    super user (librdkafka settings in `client`, the Java client's in `java_config`)."""

    settings: dict[int, dict[str, str]]
    client: dict[str, str]
    java_config: Path


def mutual_tls(tmp_path: Path, url: str, brokers: tuple[int, ...]) -> MutualTls:
    cluster_action = AclRecord(
        ResourceType.CLUSTER,
        CLUSTER_NAME,
        PatternType.LITERAL,
        "User:broker",
        "*",
        Operation.CLUSTER_ACTION,
        Permission.ALLOW,
    )
    _prepare_store(url, {}, [cluster_action])
    ca = TestCa()
    pki = tmp_path / "pki"
    pki.mkdir()
    truststore = ca.write(pki / "ca.pem")

    def settings(node_id: int) -> dict[str, str]:
        keystore = ca.issue(f"broker-{node_id}", server=True, client_too=True)
        return {
            "listeners": "SSL://127.0.0.1:0",
            "security.inter.broker.protocol": "SSL",
            "ssl.keystore.location": str(keystore.write(pki / f"broker-{node_id}.pem")),
            "ssl.truststore.location": str(truststore),
            "ssl.client.auth": "required",
            "ssl.principal.mapping.rules": MAPPING,
            "authorizer.class.name": AUTHORIZER,
            "super.users": "User:client",
        }

    issued = ca.issue("client")
    (pki / "client.crt").write_bytes(issued.chain_pem)
    (pki / "client.key").write_bytes(issued.key_pem)
    java_config = pki / "client.properties"
    java_config.write_text(
        "security.protocol=SSL\nssl.truststore.type=PEM\n"
        f"ssl.truststore.location={truststore}\nssl.keystore.type=PEM\n"
        f"ssl.keystore.location={issued.write(pki / 'client.pem')}\n"
    )
    client = {
        "security.protocol": "SSL",
        "ssl.ca.location": str(truststore),
        "ssl.certificate.location": str(pki / "client.crt"),
        "ssl.key.location": str(pki / "client.key"),
    }
    return MutualTls({n: settings(n) for n in brokers}, client, java_config)


def test_a_transaction_across_brokers_on_mutual_tls_listeners_only(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url = postgres_server.create_database()
    tls = mutual_tls(tmp_path, url, (1, 2))
    with secured_cluster(tmp_path, url, tls.settings, tls.client) as (_, two):
        commit_abort_commit(two.bootstrap, tls.client)


def test_transactions_v2_with_coordinators_apart_on_mutual_tls_listeners_only(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    """The Java client's transactions v2 consume-transform-produce with its group and
    transaction coordinators on different brokers: the group's coordinator adds the
    group's `__consumer_offsets` partition at the transaction's with AddPartitionsToTxn
    v5, which User:broker's CLUSTER_ACTION alone allows (a forwarded AddOffsetsToTxn
    would need WRITE on the transactional id and READ on the group)."""
    url = postgres_server.create_database()
    tls = mutual_tls(tmp_path, url, (1, 2, 3))
    coordinators_apart(tmp_path, url, tls.settings, tls.client, tls.java_config)
