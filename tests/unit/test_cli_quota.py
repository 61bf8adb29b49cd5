"""`contextplane quota`'s pieces that need no cluster: `--add` parsed as Kafka's tool parses
`--add-config`, and `--command-config` mapped to kafka-python's settings."""

from __future__ import annotations

import pytest

from contextplane.cli.kafka_client import ConfigError, client_config
from contextplane.cli.protocol_admin import kafka_python_config
from contextplane.cli.quota import parse_additions, parse_deletions, shown

SCRAM = "org.apache.kafka.common.security.scram.ScramLoginModule"


def test_additions_are_parsed_as_kafka_configs_parses_them() -> None:
    assert parse_additions(["producer_byte_rate = 1024, request_percentage=12.5", "a=1e3"]) == {
        "producer_byte_rate": 1024.0,
        "request_percentage": 12.5,
        "a": 1000.0,
    }
    assert parse_additions(["a=1,a=2"]) == {"a": 2.0}  # the last of a key, as Properties
    for bad, message in [
        ("a", "--add expects KEY=VALUE"),
        ("a=1=2", "--add expects KEY=VALUE"),
        ("=1", "--add expects KEY=VALUE"),
        ("a/b=1", "Invalid character found for config key: a/b"),
        ("a=NaN", "Cannot parse quota configuration value for a: NaN"),
        ("a=0x10", "Cannot parse quota configuration value for a: 0x10"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_additions([bad])
    assert parse_deletions(["a, b", "a"]) == ["a", "b"]
    with pytest.raises(ConfigError, match="--delete expects KEY"):
        parse_deletions(["a,,b"])
    assert (shown(1024.0), shown(12.5)) == (1024, 12.5)


def test_command_config_becomes_kafka_python_settings() -> None:
    properties = {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.jaas.config": f'{SCRAM} required username="admin" password="s3cret";',
        "ssl.truststore.location": "ca.pem",
        "ssl.keystore.location": "me.pem",
        "ssl.key.password": "k",
        "ssl.endpoint.identification.algorithm": "",
        "client.id": "ops",
    }
    config = kafka_python_config(client_config(properties) | {"bootstrap.servers": "a:1,b:2"})
    assert config == {
        "bootstrap_servers": ["a:1", "b:2"],
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "admin",
        "sasl_plain_password": "s3cret",
        "ssl_cafile": "ca.pem",
        "ssl_certfile": "me.pem",
        "ssl_keyfile": "me.pem",
        "ssl_password": "k",
        "ssl_check_hostname": False,
        "client_id": "ops",
    }
    assert kafka_python_config({"bootstrap.servers": "a:1"})["security_protocol"] == "PLAINTEXT"
    oauth = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "OAUTHBEARER"}
    with pytest.raises(ConfigError, match="sasl.mechanism=OAUTHBEARER is not supported"):
        kafka_python_config(client_config(oauth))
    with pytest.raises(ConfigError, match="sasl.mechanism=GSSAPI is not supported"):
        kafka_python_config({"security.protocol": "SASL_PLAINTEXT"})
