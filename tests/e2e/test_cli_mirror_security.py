"""`contextplane mirror` between secured contextplane brokers: `--source-command-config`
and `--command-config` in Kafka's property names reach both the admin clients and the
mirror's raw connections (Fetch from a TLS listener, MirrorAppend after a SCRAM login),
and a refused login is named by its side."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_cli_acl_user import add_user_offline
from tests.support.broker import BrokerProcess
from tests.support.cli import Run, contextplane, one_error_line
from tests.support.mirror import create, produce, read_all
from tests.support.tls import TestCa

SCRAM = "org.apache.kafka.common.security.scram.ScramLoginModule"


@pytest.fixture
def clusters(tmp_path: Path) -> Iterator[tuple[BrokerProcess, BrokerProcess, Path, Path]]:
    """A source with a TLS listener and a target with a SASL/SCRAM one, and a command
    config file for each."""
    ca = TestCa()
    ca_pem = ca.write(tmp_path / "ca.pem")
    keystore = ca.issue("broker", server=True).write(tmp_path / "broker.pem")
    source = BrokerProcess(
        tmp_path / "source",
        settings={
            "listeners": "SSL://127.0.0.1:0",
            "ssl.keystore.location": str(keystore),
            "ssl.truststore.location": str(ca_pem),
        },
    )
    add_user_offline(tmp_path / "target", "mirror")
    target = BrokerProcess(
        tmp_path / "target",
        settings={
            "listeners": "SASL_PLAINTEXT://127.0.0.1:0",
            "sasl.enabled.mechanisms": "SCRAM-SHA-256",
        },
    )
    source_login = tmp_path / "source.properties"
    source_login.write_text(
        f"security.protocol=SSL\nssl.truststore.type=PEM\nssl.truststore.location={ca_pem}\n"
    )
    target_login = tmp_path / "target.properties"
    target_login.write_text(
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-256\n"
        f'sasl.jaas.config={SCRAM} required username="mirror" password="mirror-secret";\n'
    )
    source.start()
    try:
        target.start()
        try:
            yield source, target, source_login, target_login
        finally:
            target.stop()
    finally:
        source.stop()


def test_a_tls_source_mirrors_into_a_scram_target(
    clusters: tuple[BrokerProcess, BrokerProcess, Path, Path], tmp_path: Path
) -> None:
    source, target, source_login, target_login = clusters
    tls = {"security.protocol": "SSL", "ssl.ca.location": str(tmp_path / "ca.pem")}
    scram = {
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "SCRAM-SHA-256",
        "sasl.username": "mirror",
        "sasl.password": "mirror-secret",
    }
    create(source.bootstrap, "orders", 1, security=tls)
    produce(source.bootstrap, "orders", 0, 40, security=tls)

    def mirror(target_config: Path) -> Run:
        return contextplane(
            "mirror",
            "--source-bootstrap-server",
            source.bootstrap,
            "--source-command-config",
            str(source_login),
            "--bootstrap-server",
            target.bootstrap,
            "--command-config",
            str(target_config),
            "--topics",
            "orders",
            "--once",
            "--output",
            "json",
        )

    wrong = tmp_path / "wrong.properties"
    wrong.write_text(target_login.read_text().replace("mirror-secret", "guess"))
    refused = one_error_line(mirror(wrong))
    assert refused.startswith(
        f"contextplane mirror: the target ({target.bootstrap}): authentication failed: "
    ), refused

    summary = mirror(target_login).json()
    assert summary["partitions"] == [
        {"topic": "orders", "partition": 0, "source_end": 40, "mirrored_end": 40, "lag": 0}
    ]
    expected = read_all(source.bootstrap, "orders", 0, security=tls)
    assert len(expected) == 40
    assert read_all(target.bootstrap, "orders", 0, security=scram) == expected
