"""SASL/OAUTHBEARER with real clients against a JWKS made by the test: confluent-kafka
(librdkafka, through `oauth_cb`) over SASL_PLAINTEXT and SASL_SSL, and the Java
kafka-clients with Kafka's file-based JWT retriever. The token's `sub` is the principal
the ACLs see; an expired token, a wrong issuer or audience, a bad signature, an unknown
key id and `alg: none` each fail with the client's normal authentication error and one
log line saying why. One listener reads its JWKS from a file, another (Kafka's
per-listener form) from an HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import (
    AdminClient,
)

from harness import java_client
from tests.support.acl_setup import grant_alice_orders
from tests.support.inprocess import InProcessBroker
from tests.support.jwt_issuer import AUDIENCE, ISSUER, Issuer, JwksServer
from tests.support.tls import TestCa
from tests.support.wait import wait_until

VALIDATOR = "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler"
LOGIN_MODULE = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule"


class Setup:
    def __init__(self, broker: InProcessBroker, issuer: Issuer, pki: Path, http: JwksServer):
        self.broker = broker
        self.issuer = issuer
        self.ca = pki / "ca.pem"
        self.http = http

    def port(self, listener: str) -> int:
        return self.broker.listener_port(listener)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    where = tmp_path_factory.mktemp("oauth")
    issuer = Issuer()
    jwks_file = issuer.write_jwks(where / "jwks.json")
    ca = TestCa()
    ca.write(where / "ca.pem")
    keystore = ca.issue("broker", server=True).write(where / "broker.pem")
    http = JwksServer(json.dumps(issuer.jwks(["ec-1"])).encode())
    settings = {
        "listeners": "SASL_PLAINTEXT://127.0.0.1:0,SASL_SSL://127.0.0.1:0,HTTPKEYS://127.0.0.1:0",
        "listener.security.protocol.map": (
            "SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,HTTPKEYS:SASL_PLAINTEXT"
        ),
        "ssl.keystore.location": str(keystore),
        "sasl.enabled.mechanisms": "OAUTHBEARER",
        "sasl.oauthbearer.jwks.endpoint.url": jwks_file.as_uri(),
        "sasl.oauthbearer.expected.issuer": ISSUER,
        "sasl.oauthbearer.expected.audience": AUDIENCE,
        "listener.name.sasl_plaintext.oauthbearer.sasl.server.callback.handler.class": VALIDATOR,
        "listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config": f"{LOGIN_MODULE} required;",
        "listener.name.httpkeys.oauthbearer.sasl.oauthbearer.jwks.endpoint.url": http.url,
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:admin",
        "group.initial.rebalance.delay.ms": "0",
    }
    with http.running():
        broker = InProcessBroker(where / "data", settings=settings).start()
        try:
            ready = Setup(broker, issuer, where, http)
            grant_alice_orders(config(ready, "admin"))
            yield ready
        finally:
            broker.stop()


def config(
    setup: Setup,
    sub: str = "alice",
    token: Callable[[], str] | None = None,
    listener: str = "SASL_PLAINTEXT",
    **more: Any,
) -> dict[str, Any]:
    def oauth_cb(_: Any) -> tuple[str, float]:
        value = token() if token is not None else setup.issuer.token(sub)
        return value, time.time() + 600

    settings: dict[str, Any] = {
        "bootstrap.servers": f"127.0.0.1:{setup.port(listener)}",
        "security.protocol": "SASL_SSL" if listener == "SASL_SSL" else "SASL_PLAINTEXT",
        "sasl.mechanism": "OAUTHBEARER",
        "oauth_cb": oauth_cb,
        **more,
    }
    if listener == "SASL_SSL":
        settings["ssl.ca.location"] = str(setup.ca)
    return settings


def produce(settings: dict[str, Any], topic: str, value: bytes) -> KafkaError | None:
    producer = Producer({**settings, "message.timeout.ms": 10000})
    outcome: list[KafkaError | None] = []
    producer.produce(topic, value, on_delivery=lambda error, _: outcome.append(error))
    producer.flush(15)
    assert outcome, "no delivery report"
    return outcome[0]


def consume_one(settings: dict[str, Any], topic: str, group: str) -> Any:
    consumer = Consumer({**settings, "group.id": group, "auto.offset.reset": "earliest"})
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                return message
        raise AssertionError("nothing consumed")
    finally:
        consumer.close()


@pytest.mark.parametrize("listener", ["SASL_PLAINTEXT", "SASL_SSL"])
def test_confluent_kafka_alice_produces_and_consumes(setup: Setup, listener: str) -> None:
    alice = config(setup, "alice", listener=listener)
    value = f"for alice over {listener}".encode()
    assert produce(alice, "orders", value) is None
    message = consume_one(alice, "orders", "readers")
    assert message.value() is not None
    assert 'mechanism="OAUTHBEARER" result=SUCCESS' in setup.broker.log_tail(400)


def test_another_subject_is_refused_by_the_acls(setup: Setup) -> None:
    refused = produce(config(setup, "bob"), "orders", b"bob")
    assert refused is not None and refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert 'principal="User:bob"' in setup.broker.log_tail(400)


def test_jwks_over_http_on_its_listener(setup: Setup) -> None:
    # The HTTPKEYS listener's JWKS holds only ec-1: an ES256 token logs in, an RS256 one
    # (valid on the other listeners) names a key that JWKS does not have.
    ec_token = config(setup, token=lambda: setup.issuer.token("alice", kid="ec-1"))
    admin = AdminClient({**ec_token, "bootstrap.servers": f"127.0.0.1:{setup.port('HTTPKEYS')}"})
    admin.poll(0)
    assert admin.list_topics(timeout=15).brokers
    assert setup.http.requests >= 1
    error = authentication_error(
        config(setup, token=lambda: setup.issuer.token("alice"), listener="HTTPKEYS")
    )
    assert "invalid_token" in str(error)


def authentication_error(settings: dict[str, Any]) -> KafkaError:
    errors: list[KafkaError] = []
    producer = Producer({**settings, "error_cb": errors.append})

    def reported() -> bool:
        producer.poll(0.2)
        return any(error.code() == KafkaError._AUTHENTICATION for error in errors)

    wait_until(reported, 20, "the authentication error")
    return next(error for error in errors if error.code() == KafkaError._AUTHENTICATION)


def _stranger_token() -> str:
    return Issuer().token("alice")  # same kid, another key: the signature does not verify


@pytest.mark.parametrize(
    ("case", "token", "reason"),
    [
        (
            "expired",
            lambda i: i.token("alice", lifetime_s=-3600),
            "expired: the Expiration Time (exp) claim",
        ),
        (
            "issuer",
            lambda i: i.token("alice", iss="https://evil.test"),
            # The audit line escapes the reason's quotes.
            'Issuer (iss) claim value \\"https://evil.test\\" doesn\'t match expected value '
            f'of \\"{ISSUER}\\"',
        ),
        (
            "audience",
            lambda i: i.token("alice", aud="elsewhere"),
            "Audience (aud) claim \\\"['elsewhere']\\\" doesn't contain an acceptable "
            f"identifier. Expected one of \\\"['{AUDIENCE}']\\\" as an aud value.",
        ),
        ("signature", lambda i: _stranger_token(), "InvalidSignatureError"),
        ("kid", lambda i: i.token("alice", kid="missing"), "no key with id 'missing'"),
        ("none", lambda i: i.unsigned_token("alice"), "algorithm 'none' is not accepted"),
    ],
)
def test_a_bad_token_is_the_clients_authentication_error(
    setup: Setup, case: str, token: Callable[[Issuer], str], reason: str
) -> None:
    if case == "kid":
        setup.issuer.add_key("missing", "RS256")  # signed by a key the JWKS never had
    # (a count of the kept lines stops growing once the module's broker logged 2,000)
    mark = setup.broker.log_mark()
    error = authentication_error(config(setup, token=lambda: token(setup.issuer)))
    assert "invalid_token" in str(error), str(error)
    failures = [
        line for line in setup.broker.log_since(mark) if "result=SASL_AUTHENTICATION_FAILED" in line
    ]
    # Any line: an earlier case's client may still be retrying its own bad token.
    assert any(reason in line for line in failures), failures


def _java_oauth(token_file: Path) -> tuple[list[str], list[str]]:
    """The Java client's settings and JVM flag for a token read from a file (Kafka's
    FileJwtRetriever, chosen for a file:// token endpoint; Kafka 4 allows no token URL
    unless the org.apache.kafka.sasl.oauthbearer.allowed.urls system property names it)."""
    url = token_file.as_uri()
    client = (
        "security.protocol=SASL_PLAINTEXT,sasl.mechanism=OAUTHBEARER,"
        f"sasl.jaas.config={LOGIN_MODULE} required;,"
        "sasl.login.callback.handler.class="
        "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler,"
        f"sasl.oauthbearer.token.endpoint.url={url}"
    )
    return ["--config", client], [f"-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls={url}"]


@pytest.mark.parametrize("who", ["alice", "forged"])
def test_java_client_with_a_token_file(setup: Setup, tmp_path: Path, who: str) -> None:
    token = setup.issuer.token("alice") if who == "alice" else _stranger_token()
    token_file = tmp_path / "token.jwt"
    token_file.write_text(token)
    args, jvm = _java_oauth(token_file)
    result = java_client.run(
        [
            "produce",
            "--bootstrap",
            f"127.0.0.1:{setup.port('SASL_PLAINTEXT')}",
            "--topic",
            "orders",
            "--count",
            "3",
            "--timeout-ms",
            "15000",
            *args,
        ],
        120,
        jvm_args=jvm,
        classpath=java_client.oauth_classpath(),
    )
    if who == "alice":
        assert result.returncode == 0, result.stderr[-3000:]
    else:
        assert result.returncode != 0
        assert "SaslAuthenticationException" in result.stdout + result.stderr
        assert "invalid_token" in result.stdout + result.stderr
