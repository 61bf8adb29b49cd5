"""Settings: Kafka names, file < environment < overrides, loud errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from contextplane.settings import SettingsError, load_settings


def test_file_then_environment_then_overrides(tmp_path: Path) -> None:
    config = tmp_path / "broker.properties"
    config.write_text(
        "# comment\nnum.partitions=4\nlog.retention.ms = 1000\nauto.create.topics.enable=false\n"
    )
    settings = load_settings(
        config,
        environ={"CONTEXTPLANE_NUM_PARTITIONS": "6", "CONTEXTPLANE_MESSAGE_MAX_BYTES": "2048"},
        overrides={"listener.port": "9999"},
    )
    assert settings.num_partitions == 6
    assert settings.retention_ms == 1000
    assert settings.auto_create_topics_enable is False
    assert settings.message_max_bytes == 2048
    assert settings.port == 9999


def test_bad_values_name_the_setting(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="num_partitions"):
        load_settings(environ={}, overrides={"num.partitions": "many"})
    with pytest.raises(SettingsError, match="auto_create_topics_enable"):
        load_settings(environ={}, overrides={"auto.create.topics.enable": "maybe"})
    bad = tmp_path / "bad.properties"
    bad.write_text("just words\n")
    with pytest.raises(SettingsError, match="line 1"):
        load_settings(bad, environ={})


def test_defaults_are_the_embedded_layout() -> None:
    settings = load_settings(environ={}, overrides={"data.dir": "/srv/cp"})
    assert settings.resolved_object_store_url == "file:///srv/cp/objects"
    assert settings.resolved_metadata_url == "sqlite:////srv/cp/metadata.db"
    assert settings.advertised == ("127.0.0.1", 9092)


def test_connection_settings_use_kafka_names_and_formats() -> None:
    settings = load_settings(
        environ={"CONTEXTPLANE_MAX_CONNECTIONS_PER_IP": "7"},
        overrides={
            "connections.max.idle.ms": "5000",
            "max.connections": "100",
            "max.connections.per.ip.overrides": "10.0.0.1:3, host-a:0,[::1]:2",
            "queued.max.request.bytes": "-1",
            "request.receive.timeout.ms": "2000",
        },
    )
    assert settings.connections_max_idle_ms == 5000
    assert settings.max_connections == 100
    assert settings.max_connections_per_ip == 7
    assert settings.connections_per_ip_overrides == {"10.0.0.1": 3, "host-a": 0, "::1": 2}
    assert settings.queued_max_request_bytes == -1
    assert settings.request_receive_timeout_ms == 2000
    defaults = load_settings(environ={})
    assert defaults.connections_max_idle_ms == 600_000  # Kafka's default


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("max.connections.per.ip.overrides", "10.0.0.1", "host:count"),
        ("max.connections.per.ip.overrides", "10.0.0.1:-1", "host:count"),
        ("max.connections.per.ip.overrides", "10.0.0.1:x", "host:count"),
        ("max.connections.per.ip", "0", "only if max.connections.per.ip.overrides"),
        ("queued.max.request.bytes", "0", "queued.max.request.bytes"),
        ("connections.max.idle.ms", "0", "connections.max.idle.ms"),
    ],
)
def test_bad_connection_settings_are_refused(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(environ={}, overrides={name: value})
