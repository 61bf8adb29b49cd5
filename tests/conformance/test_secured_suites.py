"""The pieces the secured suite variants (librdkafka_sasl, kafka_python_sasl) stand on,
without running the suites: the certificates made for a run are what librdkafka's SSL tests
read, and a BrokerSpec with a TLS listener and SCRAM users starts a broker the harness can
probe over TLS and log in to with SCRAM."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from conformance import run
from conformance.suites import BrokerSpec, pki
from conformance.suites.kafka_python_sasl import suite as kafka_python_sasl
from conformance.suites.librdkafka_sasl import suite as librdkafka_sasl


def test_certificates_come_in_every_encoding_librdkafka_reads(tmp_path: Path) -> None:
    made = pki.make(tmp_path)
    env = made.trivup_env
    password = env["SSL_password"].encode()
    ca = x509.load_pem_x509_certificate(made.ca.read_bytes())
    key, cert, chain = pkcs12.load_key_and_certificates(
        Path(env["SSL_pkcs"]).read_bytes(), password
    )
    assert key is not None and cert is not None
    assert [c.subject for c in chain] == [ca.subject]
    assert x509.load_der_x509_certificate(Path(env["SSL_pub_der"]).read_bytes()) == cert
    assert x509.load_der_x509_certificate(Path(env["SSL_ca_der"]).read_bytes()) == ca
    der_key = serialization.load_der_private_key(Path(env["SSL_priv_der"]).read_bytes(), None)
    assert der_key.public_key() == key.public_key()
    with pytest.raises(TypeError):  # the PEM key is encrypted: ssl.key.password opens it
        serialization.load_pem_private_key(made.client_key.read_bytes(), None)
    pem_key = serialization.load_pem_private_key(made.client_key.read_bytes(), password)
    assert pem_key.public_key() == key.public_key()
    all_cas = x509.load_pem_x509_certificates(Path(env["SSL_all_cas_pem"]).read_bytes())
    assert len(all_cas) == 2 and ca in all_cas


def test_sasl_ssl_spec_starts_a_broker_probed_over_tls(tmp_path: Path) -> None:
    prepared = librdkafka_sasl.Prepared(tmp_path / "unused-src", pki.make(tmp_path / "pki"))
    spec = librdkafka_sasl.broker_spec(prepared)
    with run.contextplane_broker(spec, tmp_path / "keep") as (bootstrap, version):
        assert all(part.isdigit() for part in version.split(".")), version
        config = {"bootstrap.servers": bootstrap, **librdkafka_sasl.client_conf(prepared)}
        config["sasl.mechanism"] = config.pop("sasl.mechanisms")
        assert AdminClient(config).list_topics(timeout=20).brokers


def test_scram_users_of_a_spec_log_in(tmp_path: Path) -> None:
    spec = BrokerSpec(
        kafka_python_sasl.broker_spec(tmp_path).settings, scram_users={"carol": "carol-secret"}
    )
    with run.contextplane_broker(spec, tmp_path / "keep") as (bootstrap, _):
        for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
            admin = AdminClient(
                {
                    "bootstrap.servers": bootstrap,
                    "security.protocol": "SASL_PLAINTEXT",
                    "sasl.mechanism": mechanism,
                    "sasl.username": "carol",
                    "sasl.password": "carol-secret",
                }
            )
            assert admin.list_topics(timeout=20).brokers
