"""Settings: Kafka names, file < environment < overrides, loud errors, one table."""

from __future__ import annotations

import dataclasses
import re
import subprocess
from pathlib import Path

import pytest

from contextplane.settings import Settings, SettingsError, env_name, load_settings
from contextplane.settings_doc import readme_block, render
from contextplane.settings_table import IGNORED, SETTINGS, TOOL_VARIABLES, UNSUPPORTED

ROOT = Path(__file__).resolve().parents[2]


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
    with pytest.raises(SettingsError, match="'num.partitions': 'many' is not a valid int"):
        load_settings(environ={}, overrides={"num.partitions": "many"})
    with pytest.raises(SettingsError, match="auto.create.topics.enable"):
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


def test_an_unknown_setting_names_the_closest_known_one(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(environ={}, overrides={"num.partiton": "3"})
    assert str(info.value) == "unknown setting 'num.partiton'; did you mean 'num.partitions'?"
    config = tmp_path / "broker.properties"
    config.write_text("log.retention.hour=24\n")
    with pytest.raises(SettingsError, match=r"broker.properties: unknown setting "):
        load_settings(config, environ={})
    with pytest.raises(SettingsError, match="did you mean 'log.retention.hours'"):
        load_settings(config, environ={})
    with pytest.raises(SettingsError, match="did you mean CONTEXTPLANE_NUM_PARTITIONS"):
        load_settings(environ={"CONTEXTPLANE_NUM_PARTITON": "3"})
    with pytest.raises(SettingsError, match="unknown setting 'whatever'"):
        load_settings(environ={}, overrides={"whatever": "1"})
    # Field names are not setting names.
    with pytest.raises(SettingsError, match="did you mean 'num.partitions'"):
        load_settings(environ={}, overrides={"num_partitions": "3"})


# Kafka 4's config/server.properties (KRaft), and the keys of a ZooKeeper-era one.
KAFKA_SERVER_PROPERTIES = """\
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=localhost:9093
listeners=PLAINTEXT://:9092,CONTROLLER://:9093
inter.broker.listener.name=PLAINTEXT
advertised.listeners=PLAINTEXT://localhost:9092,CONTROLLER://localhost:9093
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL
num.network.threads=3
num.io.threads=8
socket.send.buffer.bytes=102400
socket.receive.buffer.bytes=102400
socket.request.max.bytes=104857600
log.dirs={data}
num.partitions=1
num.recovery.threads.per.data.dir=1
offsets.topic.replication.factor=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
log.flush.interval.messages=10000
log.flush.interval.ms=1000
log.retention.hours=24
log.retention.bytes=1073741824
log.segment.bytes=1073741824
log.retention.check.interval.ms=300000
broker.id=1
zookeeper.connect=localhost:2181
zookeeper.connection.timeout.ms=18000
group.initial.rebalance.delay.ms=0
delete.topic.enable=true
"""


def test_a_kafka_server_properties_file_works_and_its_unused_settings_are_listed(
    tmp_path: Path,
) -> None:
    config = tmp_path / "server.properties"
    config.write_text(KAFKA_SERVER_PROPERTIES.format(data=tmp_path / "data"))
    settings = load_settings(config, environ={})
    assert settings.data_dir == tmp_path / "data"
    assert settings.retention_ms == 24 * 3600 * 1000
    assert settings.retention_bytes == 1073741824
    assert settings.retention_check_interval_ms == 300000
    assert settings.group_initial_rebalance_delay_ms == 0
    assert set(settings.ignored) == {
        "process.roles",
        "controller.quorum.bootstrap.servers",
        "listeners",
        "inter.broker.listener.name",
        "advertised.listeners",
        "controller.listener.names",
        "listener.security.protocol.map",
        "num.network.threads",
        "num.io.threads",
        "socket.send.buffer.bytes",
        "socket.receive.buffer.bytes",
        "num.recovery.threads.per.data.dir",
        "offsets.topic.replication.factor",
        "share.coordinator.state.topic.replication.factor",
        "share.coordinator.state.topic.min.isr",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "log.flush.interval.messages",
        "log.flush.interval.ms",
        "zookeeper.connect",
        "zookeeper.connection.timeout.ms",
        "delete.topic.enable",
    }
    assert all(reason.startswith("no effect: ") for reason in settings.ignored.values())


def test_kafka_orders_retention_ms_over_minutes_over_hours(tmp_path: Path) -> None:
    def retention(**given: str) -> int:
        names = {k.replace("_", "."): v for k, v in given.items()}
        return load_settings(environ={}, overrides=names).retention_ms

    assert retention(log_retention_hours="2") == 2 * 3600 * 1000
    assert retention(log_retention_hours="2", log_retention_minutes="3") == 3 * 60_000
    assert retention(log_retention_minutes="3", log_retention_ms="5") == 5
    assert retention(retention_ms="7", log_retention_hours="2") == 7
    assert retention(log_retention_hours="-1") == -1  # negative: no limit, as in Kafka
    # A later source wins whatever the unit.
    config = tmp_path / "broker.properties"
    config.write_text("log.retention.ms=5\n")
    assert (
        load_settings(config, environ={}, overrides={"log.retention.hours": "1"}).retention_ms
        == 3600 * 1000
    )
    roll = load_settings(environ={}, overrides={"log.roll.hours": "1"})
    assert roll.segment_ms == 3600 * 1000


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("ssl.keystore.location", "/etc/broker.jks", "TLS is not supported"),
        ("sasl.enabled.mechanisms", "PLAIN", "SASL is not supported"),
        ("authorizer.class.name", "kafka.security.Authorizer", "ACLs are not supported"),
        ("delete.topic.enable", "false", "topics can always be deleted"),
        ("security.inter.broker.protocol", "SSL", "accepted: plaintext"),
        ("log.dirs", "/a,/b", "one directory"),
    ],
)
def test_settings_that_would_change_behaviour_are_refused(
    name: str, value: str, message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(environ={}, overrides={name: value})


def test_the_table_has_every_field_once() -> None:
    fields = {f.name for f in dataclasses.fields(Settings)} - {"ignored"}
    assert {s.attr for s in SETTINGS} == fields
    names = [name for setting in SETTINGS for name in setting.names]
    assert len(names) == len(set(names))
    for name in names:
        assert not any(k.matches(name) for k in IGNORED + UNSUPPORTED), name
        assert re.fullmatch(r"[a-z0-9]+(\.[a-z0-9]+)+", name), name
    for setting in SETTINGS:
        assert setting.meaning and setting.unit in ("", "ms", "bytes", "minutes", "hours")


def test_the_readme_table_is_the_settings_table() -> None:
    readme = (ROOT / "README.md").read_text()
    assert readme_block(readme) == render(), (
        "README.md's settings table differs from src/contextplane/settings_table.py: run "
        "python -m contextplane.settings_doc --update-readme README.md"
    )


def test_every_contextplane_variable_in_the_repository_is_a_setting_or_a_tool_variable() -> None:
    """An unknown CONTEXTPLANE_ variable stops the broker, so a tool's own variable must be
    listed as one: the broker subprocesses of the tests inherit the environment."""
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    settings = {env_name(name) for setting in SETTINGS for name in setting.names}
    found: dict[str, str] = {}
    for name in filter(None, files):
        path = ROOT / name.decode()
        if path.suffix not in (".py", ".sh", ".md", ".toml", "") or path == Path(__file__):
            continue
        if not path.is_file():
            continue
        for variable in re.findall(r"\bCONTEXTPLANE_[A-Z][A-Z0-9_]*[A-Z0-9]\b", path.read_text()):
            found.setdefault(variable, name.decode())
    unknown = {v: f for v, f in found.items() if v not in settings | TOOL_VARIABLES}
    assert not unknown, f"add to settings_table.TOOL_VARIABLES: {unknown}"
    env = {v: "x" for v in TOOL_VARIABLES}
    assert load_settings(environ=env).ignored == {}


def test_fetch_max_bytes_is_kafkas_broker_setting() -> None:
    assert load_settings(environ={}).fetch_max_bytes == 57_671_680  # Kafka's 55 MiB
    assert load_settings(environ={}, overrides={"fetch.max.bytes": "1024"}).fetch_max_bytes == 1024
    with pytest.raises(SettingsError, match="fetch.max.bytes"):
        load_settings(environ={}, overrides={"fetch.max.bytes": "-1"})
