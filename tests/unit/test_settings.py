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
