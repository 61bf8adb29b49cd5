"""SSL listeners with real clients: confluent-kafka, kafka-python and the Java client over
TLS, mutual TLS whose certificate subject is the principal the ACLs see, an untrusted
certificate refused with the client's normal error, and a renewed keystore picked up by
new connections without a restart."""

from __future__ import annotations

import socket
import ssl
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)
from cryptography import x509
from cryptography.x509.oid import NameOID

from contextplane.protocol.error_codes import ErrorCode
from contextplane.repeated_log import BURST
from tests.support.inprocess import InProcessBroker
from tests.support.tls import TestCa
from tests.support.wait import wait_until

API_VERSIONS = 18
MAPPING = "RULE:^CN=([^,]+),O=contextplane-test,C=US$/$1/L,DEFAULT"
# Java's X500Principal.getName() of eve's subject (pseudonym 2.5.4.65, UTF8String "admin").
EVE_AS_KAFKA_NAMES_HER = "2.5.4.65=#0c0561646d696e,CN=eve,O=contextplane-test,C=US"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    where = tmp_path_factory.mktemp("pki")
    ca = TestCa()
    other = TestCa("an untrusted CA")
    files = {
        "ca": ca.write(where / "ca.pem"),
        "other_ca": other.write(where / "other-ca.pem"),
        "keystore": ca.issue("broker", server=True).write(where / "broker.pem"),
    }
    for user, issuer, organization in (
        ("alice", ca, "contextplane-test"),
        ("bob", ca, "contextplane-test"),
        ("admin", ca, "contextplane-test"),
        ("carol", ca, "other-org"),
        ("mallory", other, "contextplane-test"),
    ):
        issued = issuer.issue(user.upper() if user == "alice" else user, organization=organization)
        (where / f"{user}.key").write_bytes(issued.key_pem)
        (where / f"{user}.crt").write_bytes(issued.cert_pem)
        files[user] = where / user
    # An attribute Java has no RFC 2253 keyword for (pseudonym): OID=#hex in the name.
    eve = ca.issue(
        "eve",
        subject=x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "contextplane-test"),
                x509.NameAttribute(NameOID.COMMON_NAME, "eve"),
                x509.NameAttribute(NameOID.PSEUDONYM, "admin"),
            ]
        ),
    )
    (where / "eve.key").write_bytes(eve.key_pem)
    (where / "eve.crt").write_bytes(eve.cert_pem)
    files["eve"] = where / "eve"
    return files


def _tls_settings(pki: dict[str, Path], **more: str) -> dict[str, str]:
    return {
        "group.initial.rebalance.delay.ms": "0",  # not under test here
        "listeners": "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0",
        "ssl.keystore.location": str(pki["keystore"]),
        "ssl.truststore.location": str(pki["ca"]),
        **more,
    }


@pytest.fixture(scope="module")
def tls_broker(
    pki: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcessBroker]:
    data = tmp_path_factory.mktemp("tls") / "broker"
    running = InProcessBroker(data, settings=_tls_settings(pki)).start()
    yield running
    running.stop()


def _client(
    broker: InProcessBroker, pki: dict[str, Path], user: str | None = None, **more: Any
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": f"127.0.0.1:{broker.listener_port('SSL')}",
        "security.protocol": "SSL",
        "ssl.ca.location": str(pki["ca"]),
        **more,
    }
    if user is not None:
        config["ssl.certificate.location"] = f"{pki[user]}.crt"
        config["ssl.key.location"] = f"{pki[user]}.key"
    return config


def _produce(config: dict[str, Any], topic: str, count: int = 10) -> list[Any]:
    errors: list[Any] = []
    producer = Producer({**config, "acks": "all", "message.timeout.ms": 20000})
    for i in range(count):
        producer.produce(topic, value=b"v%d" % i, on_delivery=lambda e, m: errors.append(e))
    producer.flush(30)
    return errors


def test_confluent_kafka_produces_and_consumes_over_tls(
    tls_broker: InProcessBroker, pki: dict[str, Path]
) -> None:
    from confluent_kafka import Consumer

    config = _client(tls_broker, pki)
    assert _produce(config, "tls-orders") == [None] * 10
    consumer = Consumer({**config, "group.id": "tls", "auto.offset.reset": "earliest"})
    try:
        consumer.subscribe(["tls-orders"])
        values = []
        for _ in range(60):
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                values.append(message.value())
            if len(values) == 10:
                break
        assert values == [b"v%d" % i for i in range(10)]
    finally:
        consumer.close()


def test_metadata_over_tls_names_the_tls_listener(
    tls_broker: InProcessBroker, pki: dict[str, Path]
) -> None:
    admin = AdminClient(_client(tls_broker, pki))
    metadata = admin.list_topics(timeout=20)
    (only,) = metadata.brokers.values()
    assert (only.host, only.port) == ("127.0.0.1", tls_broker.listener_port("SSL"))


def test_an_untrusted_broker_certificate_fails_with_the_clients_error(
    tls_broker: InProcessBroker, pki: dict[str, Path]
) -> None:
    errors: list[KafkaError] = []
    config = _client(tls_broker, pki, **{"error_cb": errors.append})
    config["ssl.ca.location"] = str(pki["other_ca"])
    producer = Producer(config)
    producer.produce("untrusted", value=b"x")
    wait_until(
        lambda: (
            producer.poll(0.2) is not None
            and any("certificate verify failed" in e.str() for e in errors)
        ),
        20,
        "the client's SSL error",
    )
    assert any(
        e.code() in (KafkaError._SSL, KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN)
        for e in errors
    )


def test_kafka_python_over_tls(tls_broker: InProcessBroker, pki: dict[str, Path]) -> None:
    from kafka import KafkaConsumer, KafkaProducer

    common = {
        "bootstrap_servers": f"127.0.0.1:{tls_broker.listener_port('SSL')}",
        "security_protocol": "SSL",
        "ssl_cafile": str(pki["ca"]),
    }
    producer = KafkaProducer(acks="all", **common)
    producer.send("tls-kafka-python", b"hello").get(timeout=30)
    producer.close()
    consumer = KafkaConsumer(
        "tls-kafka-python", auto_offset_reset="earliest", consumer_timeout_ms=20000, **common
    )
    try:
        assert next(iter(consumer)).value == b"hello"
    finally:
        consumer.close()


def test_the_java_client_over_tls(tls_broker: InProcessBroker, pki: dict[str, Path]) -> None:
    from harness import java_client

    bootstrap = f"127.0.0.1:{tls_broker.listener_port('SSL')}"
    tls = f"security.protocol=SSL,ssl.truststore.type=PEM,ssl.truststore.location={pki['ca']}"
    produced = java_client.run(
        [
            "produce",
            "--bootstrap",
            bootstrap,
            "--topic",
            "tls-java",
            "--count",
            "5",
            "--config",
            tls,
        ],
        120,
        check=True,
    )
    assert produced.result is not None
    consumed = java_client.run(
        [
            "consume",
            "--bootstrap",
            bootstrap,
            "--topic",
            "tls-java",
            "--group",
            "j",
            "--count",
            "5",
            "--timeout-ms",
            "30000",
            "--config",
            tls,
        ],
        120,
        check=True,
    )
    assert consumed.result is not None and consumed.result.get("count") == 5


# -- mutual TLS: the certificate subject is the principal ---------------------------------


@pytest.fixture(scope="module")
def mtls_broker(
    pki: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcessBroker]:
    data = tmp_path_factory.mktemp("mtls") / "broker"
    settings = _tls_settings(
        pki,
        **{
            "ssl.client.auth": "required",
            "ssl.principal.mapping.rules": MAPPING,
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": "User:admin",
        },
    )
    running = InProcessBroker(data, settings=settings).start()
    admin = AdminClient(_client(running, pki, "admin"))
    for future in admin.create_topics([NewTopic("orders", 1), NewTopic("ledger", 1)]).values():
        future.result(30)
    acls = [
        # alice's subject is mapped by the first rule (lower-cased); carol's (another
        # organisation) is not, so DEFAULT gives the whole subject.
        AclBinding(
            ResourceType.TOPIC,
            "orders",
            ResourcePatternType.LITERAL,
            "User:alice",
            "*",
            AclOperation.WRITE,
            AclPermissionType.ALLOW,
        ),
        AclBinding(
            ResourceType.TOPIC,
            "ledger",
            ResourcePatternType.LITERAL,
            "User:CN=carol,O=other-org,C=US",
            "*",
            AclOperation.WRITE,
            AclPermissionType.ALLOW,
        ),
        AclBinding(
            ResourceType.TOPIC,
            "ledger",
            ResourcePatternType.LITERAL,
            f"User:{EVE_AS_KAFKA_NAMES_HER}",
            "*",
            AclOperation.WRITE,
            AclPermissionType.ALLOW,
        ),
    ]
    for future in admin.create_acls(acls).values():
        future.result(30)
    yield running
    running.stop()


def test_a_mapped_certificate_principal_is_allowed_and_another_refused(
    mtls_broker: InProcessBroker, pki: dict[str, Path]
) -> None:
    assert _produce(_client(mtls_broker, pki, "alice"), "orders", 3) == [None] * 3
    refused = _produce(_client(mtls_broker, pki, "bob"), "orders", 1)
    assert [e.code() for e in refused] == [KafkaError.TOPIC_AUTHORIZATION_FAILED]
    assert 'principal="User:bob"' in mtls_broker.log_tail(200)


def test_an_unmapped_subject_is_the_whole_distinguished_name(
    mtls_broker: InProcessBroker, pki: dict[str, Path]
) -> None:
    assert _produce(_client(mtls_broker, pki, "carol"), "ledger", 2) == [None] * 2
    refused = _produce(_client(mtls_broker, pki, "alice"), "ledger", 1)
    assert [e.code() for e in refused] == [KafkaError.TOPIC_AUTHORIZATION_FAILED]


def test_an_attribute_without_a_keyword_is_named_as_kafka_names_it(
    mtls_broker: InProcessBroker, pki: dict[str, Path]
) -> None:
    """Kafka (Java's X500Principal) writes the pseudonym as its OID and the hex of its DER
    value; an ACL for that name is the one that applies."""
    assert _produce(_client(mtls_broker, pki, "eve"), "ledger", 2) == [None] * 2
    refused = _produce(_client(mtls_broker, pki, "eve"), "orders", 1)
    assert [e.code() for e in refused] == [KafkaError.TOPIC_AUTHORIZATION_FAILED]
    assert f'principal="User:{EVE_AS_KAFKA_NAMES_HER}"' in mtls_broker.log_tail(200)


def test_kafka_python_with_a_client_certificate(
    mtls_broker: InProcessBroker, pki: dict[str, Path]
) -> None:
    from kafka import KafkaProducer
    from kafka.errors import TopicAuthorizationFailedError

    def producer(user: str) -> KafkaProducer:
        return KafkaProducer(
            bootstrap_servers=f"127.0.0.1:{mtls_broker.listener_port('SSL')}",
            security_protocol="SSL",
            ssl_cafile=str(pki["ca"]),
            ssl_certfile=f"{pki[user]}.crt",
            ssl_keyfile=f"{pki[user]}.key",
            acks="all",
            max_block_ms=20000,
        )

    alice = producer("alice")
    alice.send("orders", b"from kafka-python").get(timeout=30)
    alice.close()
    bob = producer("bob")
    with pytest.raises(TopicAuthorizationFailedError):
        bob.send("orders", b"refused").get(timeout=30)
    bob.close()


def test_aiokafka_with_a_client_certificate(
    mtls_broker: InProcessBroker, pki: dict[str, Path]
) -> None:
    import asyncio

    import aiokafka
    from aiokafka.errors import TopicAuthorizationFailedError
    from aiokafka.helpers import create_ssl_context

    async def send(user: str) -> None:
        context = create_ssl_context(
            cafile=str(pki["ca"]),
            certfile=f"{pki[user]}.crt",
            keyfile=f"{pki[user]}.key",
        )
        producer = aiokafka.AIOKafkaProducer(
            bootstrap_servers=f"127.0.0.1:{mtls_broker.listener_port('SSL')}",
            security_protocol="SSL",
            ssl_context=context,
        )
        await producer.start()
        try:
            await producer.send_and_wait("orders", f"from {user}".encode())
        finally:
            await producer.stop()

    asyncio.run(send("alice"))
    with pytest.raises(TopicAuthorizationFailedError):
        asyncio.run(send("bob"))


def test_the_java_client_with_a_client_certificate(
    mtls_broker: InProcessBroker, pki: dict[str, Path], tmp_path: Path
) -> None:
    from harness import java_client

    def produce(user: str) -> java_client.ClientResult:
        keystore = tmp_path / f"{user}-keystore.pem"  # Kafka's PEM keystore: key, then chain
        keystore.write_bytes(
            Path(f"{pki[user]}.key").read_bytes() + Path(f"{pki[user]}.crt").read_bytes()
        )
        config = (
            f"security.protocol=SSL,ssl.truststore.type=PEM,ssl.truststore.location={pki['ca']},"
            f"ssl.keystore.type=PEM,ssl.keystore.location={keystore}"
        )
        return java_client.run(
            [
                "produce", "--bootstrap", f"127.0.0.1:{mtls_broker.listener_port('SSL')}",
                "--topic", "orders", "--count", "3", "--timeout-ms", "20000", "--config", config,
            ],
            120,
        )  # fmt: skip

    allowed = produce("alice")
    assert allowed.returncode == 0, allowed.stderr[-2000:]
    refused = produce("bob")
    assert refused.returncode != 0
    assert "TopicAuthorizationException" in refused.stdout + refused.stderr


def test_a_client_without_a_trusted_certificate_is_refused_when_required(
    mtls_broker: InProcessBroker, pki: dict[str, Path]
) -> None:
    for user in (None, "mallory"):  # no certificate; one from an untrusted CA
        errors: list[KafkaError] = []
        producer = Producer({**_client(mtls_broker, pki, user), "error_cb": errors.append})
        producer.produce("orders", value=b"x")
        wait_until(_polled_until_error(producer, errors), 20, "an SSL error")
        assert all(e.code() != KafkaError.NO_ERROR for e in errors)
        assert producer.flush(0.5) == 1  # nothing was delivered


def _polled_until_error(producer: Producer, errors: list[KafkaError]) -> Any:
    def condition() -> bool:
        producer.poll(0.2)
        return bool(errors)

    return condition


def test_a_certificate_no_mapping_rule_applies_to_is_refused(
    pki: dict[str, Path], tmp_path: Path
) -> None:
    settings = _tls_settings(
        pki,
        **{
            "ssl.client.auth": "required",
            "ssl.principal.mapping.rules": "RULE:^CN=(admin),.*$/$1/",  # no DEFAULT
        },
    )
    running = InProcessBroker(tmp_path / "broker", settings=settings).start()
    try:
        context = ssl.create_default_context(cafile=str(pki["ca"]))
        context.load_cert_chain(f"{pki['alice']}.crt", f"{pki['alice']}.key")
        port = running.listener_port("SSL")
        with context.wrap_socket(
            socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="127.0.0.1"
        ) as refused:
            client_port = refused.getsockname()[1]
            assert _closed(refused, 10)
        wait_until(
            lambda: (
                f"closing connection from 127.0.0.1:{client_port}: client certificate refused"
                ": No rules apply to CN=ALICE,O=contextplane-test,C=US" in running.log_tail(100)
            ),
            10,
            "one line naming the client and its subject",
        )
        closing = [
            line for line in running.log_tail(100).splitlines()
            if "closing connection" in line and "No rules apply" in line
        ]  # fmt: skip
        assert len(closing) == 1  # (and one audit record of the refused authentication)
        context = ssl.create_default_context(cafile=str(pki["ca"]))
        context.load_cert_chain(f"{pki['admin']}.crt", f"{pki['admin']}.key")
        with context.wrap_socket(
            socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="127.0.0.1"
        ) as admin:
            assert _answers_api_versions(admin)
    finally:
        running.stop()


# -- bad input, deadlines, reload -----------------------------------------------------------


def _tls_socket(port: int, ca: Path) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=str(ca))
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return context.wrap_socket(raw, server_hostname="127.0.0.1")


def _api_versions_frame() -> bytes:
    """ApiVersions v0 (header v1: api key, version, correlation id, client id; no body)."""
    payload = struct.pack(">hhih", API_VERSIONS, 0, 1, 1) + b"t"
    return struct.pack(">i", len(payload)) + payload


def _answers_api_versions(sock: socket.socket) -> bool:
    sock.sendall(_api_versions_frame())
    size = int.from_bytes(_read(sock, 4), "big")
    frame = _read(sock, size)
    return int.from_bytes(frame[4:6], "big") == ErrorCode.none


def _read(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def _closed(sock: socket.socket, timeout_s: float) -> bool:
    sock.settimeout(timeout_s)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return False
    except (ConnectionError, ssl.SSLError, OSError):
        return True
    return True


def test_tls_on_the_plaintext_port_and_plaintext_on_the_tls_port_are_closed(
    tls_broker: InProcessBroker, pki: dict[str, Path]
) -> None:
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        _tls_socket(tls_broker.listener_port("PLAINTEXT"), pki["ca"]).close()
    plain = socket.create_connection(("127.0.0.1", tls_broker.listener_port("SSL")), timeout=10)
    client_port = plain.getsockname()[1]
    plain.sendall(_api_versions_frame())
    assert _closed(plain, 10)
    plain.close()
    wait_until(
        lambda: (
            f"127.0.0.1:{client_port} on listener SSL: TLS handshake failed"
            in tls_broker.log_tail(400)
        ),
        10,
        "one log line naming the client",
    )
    wait_until(
        lambda: "(a TLS handshake? this listener is not TLS)" in tls_broker.log_tail(400),
        10,
        "the TLS client's line on the PLAINTEXT listener",
    )
    # Neither affected anyone else.
    with _tls_socket(tls_broker.listener_port("SSL"), pki["ca"]) as good:
        assert _answers_api_versions(good)
    with socket.create_connection(("127.0.0.1", tls_broker.listener_port("PLAINTEXT"))) as good:
        assert _answers_api_versions(good)


def test_a_client_reconnecting_in_a_loop_does_not_fill_the_log(
    tls_broker: InProcessBroker,
) -> None:
    def failures() -> int:
        return sum(
            "TLS handshake failed" in line and "not TLS" in line
            for line in tls_broker.log_tail(5000).splitlines()
        )

    before = failures()
    for _ in range(30):
        plain = socket.create_connection(("127.0.0.1", tls_broker.listener_port("SSL")), timeout=10)
        plain.sendall(_api_versions_frame())
        assert _closed(plain, 10)  # the broker logs before it closes
        plain.close()
    # At most a few lines per address and kind of failure per 10 s, whatever the rate.
    assert failures() - before <= BURST, failures() - before


def test_a_handshake_that_never_completes_is_bounded_and_holds_no_one_else(
    pki: dict[str, Path], tmp_path: Path
) -> None:
    settings = _tls_settings(pki, **{"request.receive.timeout.ms": "1500"})
    running = InProcessBroker(tmp_path / "broker", settings=settings).start()
    try:
        port = running.listener_port("SSL")
        silent = socket.create_connection(("127.0.0.1", port), timeout=10)
        partial = socket.create_connection(("127.0.0.1", port), timeout=10)
        partial.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a ClientHello's start
        # Meanwhile a real client completes its handshake and is answered.
        with _tls_socket(port, pki["ca"]) as good:
            assert _answers_api_versions(good)
        assert _closed(silent, 20) and _closed(partial, 20)
        silent.close()
        partial.close()
        wait_until(
            lambda: (
                running.log_tail(200).count("not completed within request.receive.timeout") == 2
            ),
            10,
            "a log line for each",
        )
    finally:
        running.stop()


def test_a_renewed_keystore_is_used_for_new_connections(
    pki: dict[str, Path], tmp_path: Path
) -> None:
    ca = TestCa()
    keystore = ca.issue("first", server=True).write(tmp_path / "broker.pem")
    ca.write(tmp_path / "ca.pem")
    settings = {
        "listeners": "SSL://127.0.0.1:0",
        "ssl.keystore.location": str(keystore),
    }
    running = InProcessBroker(tmp_path / "broker", settings=settings).start()

    def served_common_name() -> str:
        with _tls_socket(running.listener_port("SSL"), tmp_path / "ca.pem") as sock:
            subject = dict(item[0] for item in sock.getpeercert()["subject"])
            return subject["commonName"]

    try:
        assert served_common_name() == "first"
        renewed = tmp_path / "renewed.pem"
        ca.issue("second", server=True).write(renewed)
        renewed.replace(keystore)  # as certificate tooling does: a new file, renamed
        wait_until(lambda: served_common_name() == "second", 20, "the renewed certificate")
        # A broken file keeps the last good one, with one error line; files are looked
        # at when connections arrive, and every client meanwhile gets the good one.
        keystore.write_text("not a keystore")

        def refused_and_still_served() -> bool:
            assert served_common_name() == "second"
            return "cannot be used, keeping the previous" in running.log_tail(100)

        wait_until(refused_and_still_served, 20, "the error")
        assert running.log_tail(100).count("cannot be used") == 1
    finally:
        running.stop()
