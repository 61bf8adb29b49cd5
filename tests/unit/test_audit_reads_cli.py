"""`contextplane audit reads`: Kafka client security properties become librdkafka's,
and --since takes ISO 8601 times or milliseconds."""

from __future__ import annotations

import pytest

from contextplane.cli.audit_reads import ConfigError, client_config, parse_since


def test_kafka_client_properties_become_librdkafka_settings() -> None:
    config = client_config(
        {
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule "
            'required username="alice" password="s3cr\\"et";',
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": "/etc/ca.pem",
            "ssl.endpoint.identification.algorithm": "",
            "request.timeout.ms": "30000",
        }
    )
    assert config == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "alice",
        "sasl.password": 's3cr"et',
        "ssl.ca.location": "/etc/ca.pem",
        "ssl.endpoint.identification.algorithm": "none",
    }


def test_java_key_stores_and_unknown_security_properties_are_refused() -> None:
    with pytest.raises(ConfigError, match="only PEM"):
        client_config({"ssl.truststore.type": "JKS"})
    with pytest.raises(ConfigError, match="ssl.cipher.suites"):
        client_config({"ssl.cipher.suites": "x"})


def test_since_takes_iso_times_and_milliseconds() -> None:
    assert parse_since("1700000000123") == 1_700_000_000_123
    assert parse_since("2023-11-14T22:13:20Z") == 1_700_000_000_000
    assert parse_since("2023-11-14T22:13:20") == 1_700_000_000_000  # UTC unless given
    assert parse_since("2023-11-14T23:13:20+01:00") == 1_700_000_000_000
    with pytest.raises(ConfigError):
        parse_since("yesterday")
