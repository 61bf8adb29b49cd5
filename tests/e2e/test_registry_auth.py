"""The schema registry of `contextplane up --registry-port` behind HTTP Basic checked
against the broker's SCRAM users and the broker's ACLs per subject: users made with
`contextplane user set`, subject ACLs with `contextplane acl create --subject`;
confluent-kafka's SchemaRegistryClient with `basic.auth.user.info` as alice (may write
`orders-*`), bob (may not: 403) and admin (a super user: the global config), raw HTTP
without credentials or with a wrong password (401); the audit topic names alice's change
and bob's denial."""

from __future__ import annotations

import base64
import json
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import (
    ConfigCompatibilityLevel,
    Schema,
    SchemaRegistryClient,
    ServerConfig,
)
from confluent_kafka.schema_registry.error import SchemaRegistryError

from tests.support.audit_topics import AUDIT_TOPIC, read_json_topic
from tests.support.cli import contextplane
from tests.support.jwt_issuer import AUDIENCE, ISSUER, Issuer
from tests.support.wait import wait_until

AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
ORDER = json.dumps({"type": "record", "name": "Order", "fields": [{"name": "id", "type": "long"}]})
PASSWORDS = {"alice": "alice-secret", "bob": "bob-secret", "admin": "admin-secret"}


@dataclass
class Up:
    bootstrap: str
    url: str

    def client(self, user: str, password: str | None = None) -> SchemaRegistryClient:
        secret = PASSWORDS[user] if password is None else password
        return SchemaRegistryClient({"url": self.url, "basic.auth.user.info": f"{user}:{secret}"})


@contextmanager
def running_up(where: Path, settings: dict[str, str]) -> Iterator[tuple[str, str]]:
    """`contextplane up --registry-port 0` with `settings`: (bootstrap, registry URL)."""
    log_path = where / "up.log"
    command = [sys.executable, "-m", "contextplane.cli.main", "up", "--data-dir", str(where / "d")]
    command += ["--registry-port", "0"] + ([] if "listeners" in settings else ["--port", "0"])
    for name, value in settings.items():
        command += ["--set", f"{name}={value}"]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:

        def ports() -> tuple[int, int] | None:
            assert process.poll() is None, log_path.read_text()
            text = log_path.read_text()
            broker = re.search(r"broker ready on \S+:(\d+)", text)
            registry = re.search(r"schema registry ready on \S+:(\d+)", text)
            return (int(broker.group(1)), int(registry.group(1))) if broker and registry else None

        broker_port, registry_port = wait_until(ports, 60, "the broker and its registry")
        yield f"127.0.0.1:{broker_port}", f"http://127.0.0.1:{registry_port}"
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0, log_path.read_text()


def grant(bootstrap: str, principal: str, *operations: str) -> None:
    """`principal` may do `operations` on the subjects starting `orders-`."""
    granted = contextplane(
        "acl", "create", "--bootstrap-server", bootstrap, "--subject", "orders-",
        "--pattern-type", "prefixed", "--allow-principal", principal,
        *(part for operation in operations for part in ("--operation", operation)),
    )  # fmt: skip
    assert granted.status == 0, granted.err


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    settings = {
        "authorizer.class.name": AUTHORIZER,
        # The registry's own Kafka client is User:ANONYMOUS on the PLAINTEXT listener.
        "super.users": "User:ANONYMOUS;User:admin",
        "contextplane.registry.authentication.method": "BASIC",
    }
    with running_up(tmp_path_factory.mktemp("registry-basic"), settings) as (bootstrap, url):
        for user, password in PASSWORDS.items():
            made = contextplane(
                "user", "set", user, "--password-stdin", "--bootstrap-server", bootstrap,
                stdin=password + "\n",
            )  # fmt: skip
            assert made.status == 0, made.err
        grant(bootstrap, "User:alice", "Read", "Write")
        yield Up(bootstrap, url)


def _get(url: str, authorization: str | None = None) -> tuple[int, Message, Any]:
    """(status, headers (case-insensitive), JSON body) of a GET."""
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


def test_nobody_anonymous_and_no_wrong_password(up: Up) -> None:
    for authorization in (None, _basic("alice", "wrong"), _basic("mallory", "x"), "Basic !!"):
        status, headers, body = _get(f"{up.url}/subjects", authorization)
        assert status == 401, authorization
        assert headers.get("WWW-Authenticate") == 'Basic realm="SchemaRegistry"'
        assert body == {"error_code": 401, "message": "Unauthorized"}
    status, _, _ = _get(f"{up.url}/subjects", "Bearer abc")  # the wrong scheme
    assert status == 401
    with pytest.raises(SchemaRegistryError) as refused:
        up.client("alice", "wrong").get_subjects()
    assert refused.value.http_status_code == 401


def test_alice_registers_under_orders_and_bob_is_refused(up: Up) -> None:
    alice, bob = up.client("alice"), up.client("bob")
    schema_id = alice.register_schema("orders-value", Schema(ORDER, "AVRO"))
    assert alice.get_latest_version("orders-value").schema_id == schema_id
    assert "orders-value" in alice.get_subjects()
    with pytest.raises(SchemaRegistryError) as refused:
        bob.register_schema("orders-value", Schema(ORDER, "AVRO"))
    assert (refused.value.http_status_code, refused.value.error_code) == (403, 40301)
    assert refused.value.error_message == "User is denied operation Write on Subject: orders-value"
    with pytest.raises(SchemaRegistryError) as unread:
        bob.get_latest_version("orders-value")
    assert unread.value.error_code == 40301
    assert bob.get_subjects() == []  # lists answer only what the caller may read
    status, _, _ = _get(f"{up.url}/schemas/ids/{schema_id}", _basic("bob", PASSWORDS["bob"]))
    assert status == 403
    # alice's ACLs name orders-* only, and the global config needs ALTER on the cluster.
    with pytest.raises(SchemaRegistryError) as elsewhere:
        alice.register_schema("payments-value", Schema(ORDER, "AVRO"))
    assert elsewhere.value.error_code == 40301
    with pytest.raises(SchemaRegistryError) as global_config:
        alice.set_config(config=ServerConfig(compatibility=ConfigCompatibilityLevel.NONE))
    assert global_config.value.error_code == 40301
    updated = up.client("admin").set_config(
        config=ServerConfig(compatibility=ConfigCompatibilityLevel.FULL)
    )
    assert updated == {"compatibility": "FULL"}  # the client hands back the JSON answer
    # The subject ACL as `acl list` shows it.
    listed = contextplane("acl", "list", "--bootstrap-server", up.bootstrap, "--output", "json")
    acls = listed.json()["acls"]
    assert {
        "principal": "User:alice",
        "host": "*",
        "operation": "WRITE",
        "permission": "ALLOW",
        "resource_type": "SUBJECT",
        "resource_name": "orders-",
        "pattern_type": "PREFIXED",
    } in acls

    def audited() -> tuple[dict[str, Any], dict[str, Any]] | None:
        events = [e["data"] for e in read_json_topic(up.bootstrap, AUDIT_TOPIC)]
        change = [
            e for e in events
            if e.get("api") == "RegisterSchema" and e.get("principal") == "User:alice"
        ]  # fmt: skip
        denial = [
            e for e in events
            if e.get("principal") == "User:bob" and e.get("decision") == "DENIED"
        ]  # fmt: skip
        return (change[0], denial[0]) if change and denial else None

    change, denial = wait_until(audited, 30, "alice's change and bob's denial in the audit topic")
    assert change["resource_type"] == "SUBJECT"
    assert change["resource_name"] == "orders-value"
    assert change["decision"] == "ALLOWED"
    assert change["listener"] == "schema-registry"
    assert denial["api"] == "RegisterSchema"
    assert denial["operation"] == "WRITE"
    assert denial["resource_name"] == "orders-value"
    assert denial["acl"] == "no ACL allows it"


def test_bearer_tokens_validated_as_the_oauthbearer_listener_does(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """BEARER: tokens of the issuer the broker's OAUTHBEARER listener trusts, through
    confluent-kafka's client (`bearer.auth.credentials.source=STATIC_TOKEN`)."""
    where = tmp_path_factory.mktemp("registry-bearer")
    issuer = Issuer()
    settings = {
        "listeners": "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
        "sasl.enabled.mechanisms": "OAUTHBEARER",
        "sasl.oauthbearer.jwks.endpoint.url": issuer.write_jwks(where / "jwks.json").as_uri(),
        "sasl.oauthbearer.expected.issuer": ISSUER,
        "sasl.oauthbearer.expected.audience": AUDIENCE,
        "listener.name.sasl_plaintext.oauthbearer.sasl.server.callback.handler.class": (
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler"
        ),
        "authorizer.class.name": AUTHORIZER,
        "super.users": "User:ANONYMOUS",
        "contextplane.registry.authentication.method": "BEARER",
    }
    with running_up(where, settings) as (bootstrap, url):
        grant(bootstrap, "User:alice", "Write")

        def client(token: str) -> SchemaRegistryClient:
            return SchemaRegistryClient(
                {
                    "url": url,
                    "bearer.auth.credentials.source": "STATIC_TOKEN",
                    "bearer.auth.token": token,
                    "bearer.auth.logical.cluster": "lsrc-1",
                }
            )

        assert client(issuer.token("alice")).register_schema("orders-value", Schema(ORDER)) > 0
        with pytest.raises(SchemaRegistryError) as refused:
            client(issuer.token("bob")).register_schema("orders-value", Schema(ORDER))
        assert (refused.value.http_status_code, refused.value.error_code) == (403, 40301)
        for token in (issuer.token("alice", lifetime_s=-3600), issuer.unsigned_token()):
            with pytest.raises(SchemaRegistryError) as unauthorized:
                client(token).get_subjects()
            assert unauthorized.value.http_status_code == 401
        status, headers, _ = _get(f"{url}/subjects", _basic("alice", "x"))
        assert (status, headers.get("WWW-Authenticate")) == (401, 'Bearer realm="SchemaRegistry"')
