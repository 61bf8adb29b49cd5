"""A registry run alone checks Basic passwords by a SCRAM login to its Kafka cluster
(cluster_logins.py) and reads subject ACLs with DescribeAcls (cluster_acls.py): here
against a real broker in this process with a PLAINTEXT listener (User:ANONYMOUS, a super
user, sets users and ACLs up) and a SASL_PLAINTEXT one with SCRAM-SHA-512."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from contextplane.cli.protocol_admin import connect_with
from contextplane.security.acls import Operation
from contextplane.security.acls import ResourceType as Kind
from contextplane.security.authorizer import Action
from contextplane.security.principal import Principal
from contextplane.services.schema_registry.cluster_acls import AclsUnavailable, ClusterAcls
from contextplane.services.schema_registry.cluster_logins import ClusterLogins, login_config
from tests.support.inprocess import InProcessBroker

SETTINGS = {
    "listeners": "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
    "sasl.enabled.mechanisms": "SCRAM-SHA-512",
    "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "super.users": "User:ANONYMOUS",
}


def _acl(
    principal: str,
    operation: AclOperation,
    name: str,
    pattern: ResourcePatternType = ResourcePatternType.LITERAL,
    permission: AclPermissionType = AclPermissionType.ALLOW,
    kind: ResourceType = ResourceType.TOPIC,
) -> AclBinding:
    return AclBinding(kind, name, pattern, principal, "*", operation, permission)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AdminClient, str, str]]:
    """(an admin on the PLAINTEXT listener, its address, the SASL listener's)."""
    broker = InProcessBroker(tmp_path_factory.mktemp("cluster"), settings=SETTINGS).start()
    plaintext = f"127.0.0.1:{broker.listener_port('PLAINTEXT')}"
    admin = AdminClient({"bootstrap.servers": plaintext})
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096)
    upserts = [UserScramCredentialUpsertion(u, info, f"{u}-secret".encode()) for u in ("alice",)]
    for future in admin.alter_user_scram_credentials(upserts).values():
        future.result(30)
    yield admin, plaintext, f"127.0.0.1:{broker.listener_port('SASL_PLAINTEXT')}"
    broker.stop()


def test_login_config_keeps_tls_and_replaces_sasl() -> None:
    own = {
        "bootstrap.servers": "k:9093",
        "security.protocol": "SSL",
        "ssl.ca.location": "/ca.pem",
        "sasl.mechanism": "OAUTHBEARER",
        "sasl.oauthbearer.config": "x",
    }
    assert login_config(own, "SCRAM-SHA-256") == {
        "bootstrap.servers": "k:9093",
        "security.protocol": "SASL_SSL",
        "ssl.ca.location": "/ca.pem",
        "sasl.mechanism": "SCRAM-SHA-256",
    }
    assert login_config({"bootstrap.servers": "k:9092"}, "PLAIN")["security.protocol"] == (
        "SASL_PLAINTEXT"
    )


def test_passwords_are_checked_by_the_cluster_once_per_user_at_a_time(
    cluster: tuple[AdminClient, str, str],
) -> None:
    _, _, sasl = cluster
    logins = ClusterLogins(login_config({"bootstrap.servers": sasl}, "SCRAM-SHA-512"), "_schemas")

    async def scenario() -> None:
        assert await logins.check("alice", "alice-secret")
        assert not await logins.check("alice", "wrong")
        assert not await logins.check("mallory", "alice-secret")
        made = logins.logins
        # A flood of one wrong password: one login, the others wait for its answer.
        answers = await asyncio.gather(*(logins.check("alice", "guess") for _ in range(8)))
        assert answers == [False] * 8
        assert logins.logins == made + 1
        # A password the cluster accepted is not asked again while it is cached.
        assert await logins.check("alice", "alice-secret")
        assert logins.logins == made + 1

    try:
        asyncio.run(scenario())
    finally:
        logins.close()


def test_subject_acls_are_read_from_the_cluster(cluster: tuple[AdminClient, str, str]) -> None:
    admin, plaintext, _ = cluster
    prefixed, deny = ResourcePatternType.PREFIXED, AclPermissionType.DENY
    bindings = [
        _acl("User:alice", AclOperation.WRITE, ":subject:orders-", prefixed),
        _acl("User:carol", AclOperation.ALL, ":subject:orders-", prefixed),
        _acl("User:carol", AclOperation.READ, ":subject:orders-secret", permission=deny),
        # A topic's ACL is not a subject's, whatever its name.
        _acl("User:bob", AclOperation.ALL, "orders-value"),
        _acl("User:bob", AclOperation.ALL, "orders-", prefixed),
        _acl("User:ops", AclOperation.ALTER, "kafka-cluster", kind=ResourceType.BROKER),
    ]
    for future in admin.create_acls(bindings).values():
        future.result(30)
    acls = ClusterAcls(
        connect_with({"bootstrap.servers": plaintext}), frozenset({"User:admin"}), False
    )

    def allowed(who: str, operation: Operation, subject: str | None) -> bool:
        if subject is None:
            action = Action(operation, Kind.CLUSTER, "kafka-cluster")
        else:
            action = Action(operation, Kind.TOPIC, f":subject:{subject}")
        return acls.authorizer().authorize(Principal("User", who), "127.0.0.1", [action])[0]

    async def scenario() -> None:
        await acls.start()
        try:
            assert allowed("alice", Operation.WRITE, "orders-value")
            assert allowed("alice", Operation.DESCRIBE, "orders-value")  # implied by WRITE
            assert not allowed("alice", Operation.READ, "orders-value")
            assert not allowed("alice", Operation.WRITE, "payments-value")
            assert allowed("carol", Operation.READ, "orders-value")
            assert not allowed("carol", Operation.READ, "orders-secret")  # DENY wins
            assert not allowed("bob", Operation.READ, "orders-value")
            assert allowed("ops", Operation.ALTER, None)
            assert not allowed("alice", Operation.ALTER, None)
            assert allowed("admin", Operation.WRITE, "anything")
        finally:
            await acls.close()

    asyncio.run(scenario())


def test_a_refused_describe_acls_is_an_error_not_an_empty_list(
    cluster: tuple[AdminClient, str, str],
) -> None:
    """confluent-kafka answers a refused DescribeAcls as no ACLs; read as such,
    allow.everyone.if.no.acl.found=true would allow everyone."""
    _, _, sasl = cluster
    as_alice = login_config({"bootstrap.servers": sasl}, "SCRAM-SHA-512") | {
        "sasl.username": "alice",
        "sasl.password": "alice-secret",
    }
    acls = ClusterAcls(connect_with(as_alice), frozenset(), True)
    with pytest.raises(AclsUnavailable, match="DescribeAcls: CLUSTER_AUTHORIZATION_FAILED"):
        asyncio.run(acls.start())
    asyncio.run(acls.close())


def test_a_cluster_that_does_not_answer_accepts_no_password(tmp_path: Path) -> None:
    # Nothing listens on port 9 of this host (discard): the login is refused at once.
    logins = ClusterLogins(login_config({"bootstrap.servers": "127.0.0.1:9"}, "PLAIN"), "_s")
    try:
        assert not asyncio.run(logins.check("alice", "alice-secret"))
    finally:
        logins.close()


def test_a_cluster_without_an_authorizer_allows_every_caller(tmp_path: Path) -> None:
    """As `contextplane up` without one: DescribeAcls answers SECURITY_DISABLED."""
    broker = InProcessBroker(tmp_path / "open").start()
    acls = ClusterAcls(connect_with({"bootstrap.servers": broker.bootstrap}), frozenset(), False)
    write = Action(Operation.WRITE, Kind.TOPIC, ":subject:orders-value")
    try:
        asyncio.run(acls.start())
        assert acls.authorizer().authorize(Principal("User", "bob"), "127.0.0.1", [write]) == [True]
    finally:
        asyncio.run(acls.close())
        broker.stop()


def test_a_name_librdkafka_would_change_is_refused(cluster: tuple[AdminClient, str, str]) -> None:
    """librdkafka ends a setting at a NUL and drops its leading whitespace: "alice\\0x"
    or " alice" with alice's password logged in as alice, and the registry served the
    caller as User:alice\\0x or User: alice, principals a DENY of User:alice does not
    match."""
    _, _, sasl = cluster
    logins = ClusterLogins(login_config({"bootstrap.servers": sasl}, "SCRAM-SHA-512"), "_schemas")
    changed = [
        ("alice\0x", "alice-secret"),
        (" alice", "alice-secret"),
        ("\talice", "alice-secret"),
        ("\nalice", "alice-secret"),
        ("alice", "alice-secret\0anything"),
        ("alice", " alice-secret"),
    ]
    try:
        for user, password in changed:
            assert not asyncio.run(logins.check(user, password)), (user, password)
        assert asyncio.run(logins.check("alice", "alice-secret"))
    finally:
        logins.close()
