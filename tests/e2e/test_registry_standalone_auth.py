"""`contextplane registry` run alone against a Kafka cluster (a contextplane broker with
only a SASL_PLAINTEXT listener, SCRAM-SHA-512 and ACLs), with the login `contextplane up`
gives its registry: HTTP Basic checked by a SCRAM login to the cluster, subjects
authorized by the cluster's `:subject:` ACLs, the registry's `super.users`, every change
and denial audited (to `--audit-topic` here). The registry's own connection is
`--command-config`, as User:registry (a super user of the broker); confluent-kafka's
SchemaRegistryClient with `basic.auth.user.info` as alice (may read and write `orders-*`),
bob (nothing, until granted) and admin (the registry's super user)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)
from confluent_kafka.schema_registry import (
    ConfigCompatibilityLevel,
    Schema,
    SchemaRegistryClient,
    ServerConfig,
)
from confluent_kafka.schema_registry.error import SchemaRegistryError

from tests.support.audit_topics import read_json_topic
from tests.support.broker import BrokerProcess
from tests.support.jwt_issuer import AUDIENCE, ISSUER, Issuer
from tests.support.registry import RegistryProcess
from tests.support.wait import wait_until

USERS = ("admin", "registry", "alice", "bob")
SETTINGS = {
    "listeners": "SASL_PLAINTEXT://127.0.0.1:0",
    "sasl.enabled.mechanisms": "SCRAM-SHA-512",
    "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "super.users": "User:admin;User:registry",
}
SCRAM = "org.apache.kafka.common.security.scram.ScramLoginModule"
AUDIT = "_schemas_audit"
ORDER = json.dumps({"type": "record", "name": "Order", "fields": [{"name": "id", "type": "long"}]})


def login(user: str) -> dict[str, str]:
    return {
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": user,
        "sasl.password": f"{user}-secret",
    }


@dataclass
class Standalone:
    broker: BrokerProcess
    registry: RegistryProcess
    command_config: Path

    def client(self, user: str, password: str | None = None) -> SchemaRegistryClient:
        secret = f"{user}-secret" if password is None else password
        return SchemaRegistryClient(
            {"url": self.registry.url, "basic.auth.user.info": f"{user}:{secret}"}
        )

    def admin(self) -> AdminClient:
        return AdminClient({"bootstrap.servers": self.broker.bootstrap, **login("admin")})


def _subject_acl(principal: str, operation: AclOperation, name: str, prefixed: bool) -> AclBinding:
    pattern = ResourcePatternType.PREFIXED if prefixed else ResourcePatternType.LITERAL
    return AclBinding(
        ResourceType.TOPIC, f":subject:{name}", pattern, principal, "*", operation,
        AclPermissionType.ALLOW,
    )  # fmt: skip


@pytest.fixture(scope="module")
def standalone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Standalone]:
    where = tmp_path_factory.mktemp("registry-alone")
    for user in USERS:
        subprocess.run(
            [sys.executable, "-m", "contextplane.cli.launch", "users", "add", user]
            + ["--data-dir", str(where / "broker"), "--password-stdin"],
            input=f"{user}-secret\n", text=True, check=True, capture_output=True,
        )  # fmt: skip
    broker = BrokerProcess(where / "broker", settings=SETTINGS).start()
    command_config = where / "registry.properties"
    command_config.write_text(
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\n"
        f'sasl.jaas.config={SCRAM} required username="registry" password="registry-secret";\n'
    )
    registry = RegistryProcess(
        broker.bootstrap,
        where / "registry.log",
        extra_args=(
            "--command-config", str(command_config),
            "--set", "contextplane.registry.authentication.method=BASIC",
            "--set", "super.users=User:admin",
            "--audit-topic", AUDIT,
        ),
    )  # fmt: skip
    try:
        grant = [
            _subject_acl("User:alice", operation, "orders-", prefixed=True)
            for operation in (AclOperation.READ, AclOperation.WRITE)
        ]
        admin = AdminClient({"bootstrap.servers": broker.bootstrap, **login("admin")})
        for future in admin.create_acls(grant).values():
            future.result(30)
        registry.start()
        yield Standalone(broker, registry, command_config)
    finally:
        assert registry.stop() == 0, registry.log_tail()
        broker.stop()


def _get(url: str, authorization: str | None = None) -> tuple[int, Message, Any]:
    request = urllib.request.Request(url)
    if authorization is not None:
        request.add_header("Authorization", authorization)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.headers, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, error.headers, json.loads(error.read())


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_only_the_clusters_users_with_their_passwords_get_in(standalone: Standalone) -> None:
    url = f"{standalone.registry.url}/subjects"
    for authorization in (None, _basic("alice", "wrong"), _basic("mallory", "x"), "Basic !!"):
        status, headers, body = _get(url, authorization)
        assert status == 401, authorization
        assert headers.get("WWW-Authenticate") == 'Basic realm="SchemaRegistry"'
        assert body == {"error_code": 401, "message": "Unauthorized"}
    with pytest.raises(SchemaRegistryError) as refused:
        standalone.client("alice", "alice-wrong").get_subjects()
    assert refused.value.http_status_code == 401
    assert standalone.client("alice").get_subjects() == []
    # The registry's own principal is the cluster's user, not the registry's super user.
    with pytest.raises(SchemaRegistryError) as not_super:
        standalone.client("registry").set_config(
            config=ServerConfig(compatibility=ConfigCompatibilityLevel.NONE)
        )
    assert not_super.value.error_code == 40301


def test_subjects_follow_the_clusters_acls_and_changes_are_audited(
    standalone: Standalone,
) -> None:
    alice, bob, admin = (standalone.client(u) for u in ("alice", "bob", "admin"))
    schema_id = alice.register_schema("orders-value", Schema(ORDER, "AVRO"))
    assert alice.get_latest_version("orders-value").schema_id == schema_id
    with pytest.raises(SchemaRegistryError) as refused:
        bob.register_schema("orders-value", Schema(ORDER, "AVRO"))
    assert (refused.value.http_status_code, refused.value.error_code) == (403, 40301)
    assert refused.value.error_message == "User is denied operation Write on Subject: orders-value"
    assert bob.get_subjects() == []
    with pytest.raises(SchemaRegistryError) as elsewhere:
        alice.register_schema("payments-value", Schema(ORDER, "AVRO"))
    assert elsewhere.value.error_code == 40301
    updated = admin.set_config(config=ServerConfig(compatibility=ConfigCompatibilityLevel.FULL))
    assert updated == {"compatibility": "FULL"}

    # An ACL created on the cluster is read by the registry: bob may now read the subject.
    grant = [_subject_acl("User:bob", AclOperation.READ, "orders-value", prefixed=False)]
    cluster = standalone.admin()  # held: a client destroyed fails its futures
    for future in cluster.create_acls(grant).values():
        future.result(30)

    def bob_reads() -> bool:
        try:
            return bob.get_latest_version("orders-value").schema_id == schema_id
        except SchemaRegistryError as exc:
            assert exc.error_code == 40301
            return False

    wait_until(bob_reads, 30, "bob's new ACL in the registry")
    assert bob.get_subjects() == ["orders-value"]

    def audited() -> tuple[dict[str, Any], dict[str, Any]] | None:
        events = [e["data"] for e in read_json_topic(login("admin") | {
            "bootstrap.servers": standalone.broker.bootstrap}, AUDIT)]  # fmt: skip
        change = [
            e for e in events
            if e.get("api") == "RegisterSchema" and e.get("principal") == "User:alice"
            and e.get("decision") == "ALLOWED"
        ]  # fmt: skip
        denial = [
            e for e in events
            if e.get("principal") == "User:bob" and e.get("decision") == "DENIED"
        ]  # fmt: skip
        return (change[0], denial[0]) if change and denial else None

    change, denial = wait_until(audited, 30, "alice's change and bob's denial in the audit topic")
    assert (change["resource_type"], change["resource_name"]) == ("SUBJECT", "orders-value")
    assert change["listener"] == "schema-registry"
    assert change["result"] == "200"
    assert (denial["api"], denial["operation"]) == ("RegisterSchema", "WRITE")
    assert denial["acl"] == "no ACL allows it"


def test_bearer_tokens_are_validated_with_the_brokers_oauthbearer_settings(
    standalone: Standalone, tmp_path: Path
) -> None:
    """BEARER: tokens of the issuer that `sasl.oauthbearer.*` names, as a broker's
    OAUTHBEARER listener validates them; subjects by the same cluster ACLs."""
    issuer = Issuer()
    settings = tmp_path / "registry-login.properties"
    settings.write_text(
        "contextplane.registry.authentication.method=BEARER\n"
        f"sasl.oauthbearer.jwks.endpoint.url={issuer.write_jwks(tmp_path / 'jwks.json').as_uri()}\n"
        f"sasl.oauthbearer.expected.issuer={ISSUER}\n"
        f"sasl.oauthbearer.expected.audience={AUDIENCE}\n"
    )
    registry = RegistryProcess(
        standalone.broker.bootstrap,
        tmp_path / "bearer-registry.log",
        extra_args=("--command-config", str(standalone.command_config), "--config", str(settings)),
    ).start()
    try:

        def client(token: str) -> SchemaRegistryClient:
            return SchemaRegistryClient(
                {
                    "url": registry.url,
                    "bearer.auth.credentials.source": "STATIC_TOKEN",
                    "bearer.auth.token": token,
                    "bearer.auth.logical.cluster": "lsrc-1",
                }
            )

        assert client(issuer.token("alice")).register_schema("orders-key", Schema(ORDER)) > 0
        with pytest.raises(SchemaRegistryError) as refused:
            client(issuer.token("bob")).register_schema("orders-key", Schema(ORDER))
        assert (refused.value.http_status_code, refused.value.error_code) == (403, 40301)
        for token in (issuer.token("alice", lifetime_s=-3600), issuer.unsigned_token()):
            with pytest.raises(SchemaRegistryError) as unauthorized:
                client(token).get_subjects()
            assert unauthorized.value.http_status_code == 401
        status, headers, _ = _get(f"{registry.url}/subjects", _basic("alice", "alice-secret"))
        assert (status, headers.get("WWW-Authenticate")) == (401, 'Bearer realm="SchemaRegistry"')
    finally:
        assert registry.stop() == 0, registry.log_tail()


def test_a_registry_whose_principal_may_not_read_the_acls_does_not_start(
    standalone: Standalone, tmp_path: Path
) -> None:
    as_bob = tmp_path / "bob.properties"
    as_bob.write_text(
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\n"
        f'sasl.jaas.config={SCRAM} required username="bob" password="bob-secret";\n'
    )
    registry = RegistryProcess(
        standalone.broker.bootstrap,
        tmp_path / "bob-registry.log",
        extra_args=(
            "--command-config", str(as_bob),
            "--set", "contextplane.registry.authentication.method=BASIC",
        ),
    ).spawn()  # fmt: skip
    assert registry.process is not None
    assert registry.process.wait(60) == 1
    assert (
        "contextplane registry: the cluster's ACLs: DescribeAcls: CLUSTER_AUTHORIZATION_FAILED"
        in registry.log_tail()
    ), registry.log_tail()
    assert "needs DESCRIBE on the cluster" in registry.log_tail()
