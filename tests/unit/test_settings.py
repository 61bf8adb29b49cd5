"""Settings: Kafka names, file < environment < overrides, loud errors, one table."""

from __future__ import annotations

import dataclasses
import re
import subprocess
from pathlib import Path

import pytest

from contextplane.settings import (
    DERIVED_FIELDS,
    Settings,
    SettingsError,
    env_name,
    load_settings,
)
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
    bad.write_text("# a comment\nnum.partitions=many\n")
    with pytest.raises(SettingsError, match=r"bad.properties:2: setting 'num.partitions'"):
        load_settings(bad, environ={})
    with pytest.raises(
        SettingsError,
        match="^environment variable CONTEXTPLANE_NUM_PARTITIONS: setting 'num.partitions'",
    ):
        load_settings(environ={"CONTEXTPLANE_NUM_PARTITIONS": "many"})


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


@pytest.mark.parametrize(
    "url", ["127.0.0.1:8090", "ftp://h/", "http://", "http://h:99999", "http://h:x", "file:///v"]
)
def test_a_console_context_url_that_is_not_http_is_refused(url: str) -> None:
    with pytest.raises(
        SettingsError, match=r"console.context.url: .* is not an http:// or https://"
    ):
        load_settings(environ={}, overrides={"console.context.url": url})


def test_a_console_context_url_is_taken() -> None:
    url = "https://context.internal:8443/base"
    assert (
        load_settings(environ={}, overrides={"console.context.url": url}).console_context_url == url
    )


def test_an_unknown_setting_names_the_closest_known_one(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(environ={}, overrides={"num.partiton": "3"})
    assert str(info.value) == "unknown setting 'num.partiton'; did you mean 'num.partitions'?"
    config = tmp_path / "broker.properties"
    config.write_text("log.retention.hour=24\n")
    with pytest.raises(SettingsError, match=r"broker.properties:\d+: unknown setting "):
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


_SSL = "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0"
_SASL = "SASL_PLAINTEXT://127.0.0.1:0"


@pytest.mark.parametrize(
    ("settings", "meant"),
    [
        ({"ssl.keystore.locaton": "k.pem"}, "ssl.keystore.location"),
        ({"ssl.trustsore.location": "ca.pem"}, "ssl.truststore.location"),
        ({"ssl.cipher.suite": "x"}, "ssl.cipher.suites"),  # Kafka's name, refused itself
        ({"sasl.oauthbearer.expected.issure": "x"}, "sasl.oauthbearer.expected.issuer"),
        (
            {"listeners": _SSL, "listener.name.ssl.ssl.client.auht": "required"},
            "listener.name.ssl.ssl.client.auth",
        ),
        (
            {"listeners": _SASL, "listener.name.sasl_plaintext.plain.sasl.jaas.confg": "x"},
            "listener.name.sasl_plaintext.plain.sasl.jaas.config",
        ),
        (
            {"listeners": _SASL, "listener.name.sasl_plaintext.sasl.enabled.mechanism": "x"},
            "listener.name.sasl_plaintext.sasl.enabled.mechanisms",
        ),
        (
            {
                "listeners": _SASL,
                "listener.name.sasl_plaintext.scram-sha-521.sasl.jaas.config": "x",
            },
            "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config",
        ),
        (
            {
                "listeners": _SASL,
                "sasl.enabled.mechanisms": "OAUTHBEARER",
                "sasl.oauthbearer.jwks.endpoint.url": "file:///jwks.json",
                "listener.name.sasl_plaintext.oauthbearer.sasl.oauthbearer.expected.isuer": "x",
            },
            "listener.name.sasl_plaintext.oauthbearer.sasl.oauthbearer.expected.issuer",
        ),
    ],
)
def test_a_misspelt_setting_of_a_refused_family_names_the_one_meant(
    settings: dict[str, str], meant: str
) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(environ={}, overrides=settings)
    assert str(info.value).endswith(f"; did you mean {meant!r}?")


@pytest.mark.parametrize(
    "name",
    ["ssl.cipher.suites", "sasl.oauthbearer.token.endpoint.url", "ssl.whatever.else"],
)
def test_a_refused_kafka_setting_spelt_right_gets_no_hint(name: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(environ={}, overrides={name: "x"})
    assert "did you mean" not in str(info.value)


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
    # The one PLAINTEXT listener is honoured: its port, and the advertised host and port.
    assert (settings.host, settings.port) == ("127.0.0.1", 9092)
    assert settings.advertised == ("localhost", 9092)
    assert settings.inter_broker_listener == "PLAINTEXT"  # the peer client's listener
    assert set(settings.ignored) == {
        "process.roles",
        "controller.quorum.bootstrap.servers",
        "controller.listener.names",
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
        ("ssl.cipher.suites", "TLS_AES_128_GCM_SHA256", "this TLS setting is not supported"),
        ("listener.name.ssl.max.connections", "3", r"`listener.name.<listener>.ssl.\*`"),
        ("sasl.jaas.config", "x", "listener.name.<listener>.<mechanism>.sasl.jaas.config"),
        ("authorizer.class.name", "kafka.security.Authorizer", "StandardAuthorizer or leave"),
        ("replica.selector.class", "com.example.Selector", "RackAwareReplicaSelector, "),
        ("delete.topic.enable", "false", "topics can always be deleted"),
        ("security.inter.broker.protocol", "SSL", "must name a listener"),
        ("log.dirs", "/a,/b", "one directory"),
    ],
)
def test_settings_that_would_change_behaviour_are_refused(
    name: str, value: str, message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(environ={}, overrides={name: value})


def test_the_table_has_every_field_once() -> None:
    fields = {f.name for f in dataclasses.fields(Settings)} - DERIVED_FIELDS
    assert {s.attr for s in SETTINGS} == fields
    names = [name for setting in SETTINGS for name in setting.names]
    assert len(names) == len(set(names))
    for name in names:
        assert not any(k.matches(name) for k in IGNORED + UNSUPPORTED), name
        assert re.fullmatch(r"[a-z0-9]+(\.[a-z0-9]+)+", name), name
    for setting in SETTINGS:
        units = ("", "ms", "bytes", "bytes/s", "seconds", "minutes", "hours")
        assert setting.meaning and setting.unit in units


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


def _set(**given: str) -> Settings:
    return load_settings(environ={}, overrides={k.replace("_", "."): v for k, v in given.items()})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("listeners", "SASL_PLAINTEXT://:9092"),
        ("listeners", "CLIENT://:9092"),  # a name the map does not know
        ("advertised.listeners", "SSL://broker:9093"),  # not one of the listeners
        ("listener.security.protocol.map", "PLAINTEXT:SASL_SSL"),
        ("security.inter.broker.protocol", "SASL_SSL"),
        ("inter.broker.listener.name", "SSL"),
    ],
)
def test_listeners_asking_for_sasl_or_naming_no_listener_are_refused(name: str, value: str) -> None:
    with pytest.raises(
        SettingsError,
        match=r"not supported yet|No security protocol|must name a listener|subset of the ones"
        r"|GSSAPI is not available",
    ):
        load_settings(environ={}, overrides={name: value})
    with pytest.raises(SettingsError, match=rf"{name}"):
        load_settings(environ={env_name(name): value})


def test_a_plaintext_listener_is_refused_when_a_named_protocol_is_secure() -> None:
    with pytest.raises(SettingsError, match="GSSAPI is not available on listener CLIENT"):
        load_settings(
            environ={},
            overrides={
                "listeners": "CLIENT://:9092",
                "listener.security.protocol.map": "CLIENT:SASL_PLAINTEXT",
            },
        )
    # A map that also names secure protocols is fine while every listener used is PLAINTEXT.
    settings = load_settings(
        environ={},
        overrides={
            "listeners": "CLIENT://:9095",
            "listener.security.protocol.map": "CLIENT:PLAINTEXT,SSL:SSL",
        },
    )
    assert settings.port == 9095


def test_one_plaintext_listener_sets_host_and_port() -> None:
    # An empty host keeps listener.host (loopback), where Kafka would bind every interface.
    kafka_style = _set(listeners="PLAINTEXT://:19097")
    assert (kafka_style.host, kafka_style.port) == ("127.0.0.1", 19097)
    local = _set(listeners="PLAINTEXT://localhost:19098")
    assert (local.host, local.port) == ("localhost", 19098)
    advertised = _set(advertised_listeners="PLAINTEXT://broker.example:29092")
    assert advertised.advertised == ("broker.example", 29092)
    # Beyond loopback without TLS only when allow.plaintext.non.loopback says so.
    with pytest.raises(SettingsError, match="beyond loopback.*allow.plaintext.non.loopback"):
        _set(listeners="PLAINTEXT://0.0.0.0:9092")
    everywhere = _set(
        listeners="PLAINTEXT://0.0.0.0:9092",
        advertised_listeners="PLAINTEXT://broker.example:9092",
        allow_plaintext_non_loopback="true",
    )
    assert (everywhere.host, everywhere.port) == ("0.0.0.0", 9092)
    several = _set(
        listeners="PLAINTEXT://:9092,OTHER://:9093",
        listener_security_protocol_map="PLAINTEXT:PLAINTEXT,OTHER:PLAINTEXT",
    )
    assert [(s.name, s.port) for s in several.listeners] == [("PLAINTEXT", 9092), ("OTHER", 9093)]


def test_a_listener_that_disagrees_with_listener_port_names_both(tmp_path: Path) -> None:
    with pytest.raises(
        SettingsError, match=r"listeners=PLAINTEXT://:19097 asks for port 19097 but listener.port"
    ):
        _set(listeners="PLAINTEXT://:19097", listener_port="19098")
    with pytest.raises(SettingsError, match=r"listener.port \(--port\) is 19099"):
        load_settings(
            environ={},
            overrides={"listeners": "PLAINTEXT://:19097"},
            flags={"--port": ("listener.port", "19099")},
        )
    with pytest.raises(SettingsError, match=r"advertised.port .* is 1"):
        load_settings(
            environ={"CONTEXTPLANE_ADVERTISED_PORT": "1"},
            overrides={"advertised.listeners": "PLAINTEXT://b:2"},
        )
    assert _set(listeners="PLAINTEXT://:19097", listener_port="19097").port == 19097


@pytest.mark.parametrize(
    ("name", "value", "bounds"),
    [
        ("listener.port", "99999", r"\[0, 65535\]"),
        ("listener.port", "-1", r"\[0, 65535\]"),
        ("advertised.port", "70000", r"\[1, 65535\]"),
        ("advertised.port", "0", r"\[1, 65535\]"),
        ("num.partitions", "-3", r"\[1, 2147483647\]"),
        ("num.partitions", "0", r"\[1, 2147483647\]"),
        ("default.replication.factor", "0", r"\[1, 1\]"),
        ("log.segment.bytes", "0", r"\[1, 2147483647\]"),
        ("message.max.bytes", "-5", r"\[0, 2147483647\]"),
        ("log.retention.hours", "-2", r"\[-1, 2147483647\]"),
        ("upload.interval.ms", "0", "1 or more"),
        ("node.id", "-1", r"\[0, 2147483647\]"),
    ],
)
def test_every_int_setting_is_range_checked_in_every_source(
    tmp_path: Path, name: str, value: str, bounds: str
) -> None:
    message = rf"setting '{name}': {value} is out of range: {bounds}"
    with pytest.raises(SettingsError, match=message):
        load_settings(environ={}, overrides={name: value})
    with pytest.raises(SettingsError, match=message):
        load_settings(environ={env_name(name): value})
    config = tmp_path / "broker.properties"
    config.write_text(f"{name}={value}\n")
    with pytest.raises(SettingsError, match=rf"broker.properties:1: {message}"):
        load_settings(config, environ={})


def test_every_int_setting_has_a_range() -> None:
    int_fields = {f.name for f in dataclasses.fields(Settings) if "int" in str(f.type)}
    for setting in SETTINGS:
        if setting.attr in int_fields:
            assert setting.low is not None, setting.name
        # Every default is inside its range.
        default = getattr(Settings(), setting.attr)
        if setting.low is not None and default is not None and setting.scale == 1:
            assert setting.low <= default <= (setting.high or default), setting.name


def test_the_command_line_beats_the_environment_and_flags_must_agree_with_set(
    tmp_path: Path,
) -> None:
    config = tmp_path / "broker.properties"
    config.write_text("listener.port=19100\nlog.dirs=/from/file\n")
    environ = {"CONTEXTPLANE_LISTENER_PORT": "19120"}
    assert load_settings(config, environ={}).port == 19100
    assert load_settings(config, environ=environ).port == 19120
    flags = {"--port": ("listener.port", "19121"), "--data-dir": ("log.dirs", "/from/flag")}
    chosen = load_settings(config, environ=environ, flags=flags)
    assert (chosen.port, chosen.data_dir) == (19121, Path("/from/flag"))
    assert (
        load_settings(config, environ=environ, overrides={"listener.port": "19122"}).port == 19122
    )
    with pytest.raises(SettingsError, match=r"--set listener.port=19094 and --port 19093 disagree"):
        load_settings(
            environ={},
            overrides={"listener.port": "19094"},
            flags={"--port": ("listener.port", "19093")},
        )
    with pytest.raises(SettingsError, match=r"--set log.dirs=B and --data-dir A disagree"):
        load_settings(
            environ={}, overrides={"log.dirs": "B"}, flags={"--data-dir": ("log.dirs", "A")}
        )
    same = load_settings(
        environ={},
        overrides={"listener.port": "19093"},
        flags={"--port": ("listener.port", "19093")},
    )
    assert same.port == 19093


def test_properties_files_follow_javas_rules(tmp_path: Path) -> None:
    config = tmp_path / "broker.properties"
    config.write_text(
        "num.partitions 4\n"
        "   ! a comment\n"
        "  # another\n"
        "log.retention.ms:1000\n"
        "message.max.bytes\t= 2048\n"
        "max.connections.per.ip.overrides = 10.0.0.1:3,\\\n"
        "    10.0.0.2:4\n"
        "log.dirs=/srv/with\\ space\n"
        "node.id=\\u0037\n"
    )
    settings = load_settings(config, environ={})
    assert settings.num_partitions == 4
    assert settings.retention_ms == 1000
    assert settings.message_max_bytes == 2048
    assert settings.connections_per_ip_overrides == {"10.0.0.1": 3, "10.0.0.2": 4}
    assert settings.data_dir == Path("/srv/with space")
    assert settings.node_id == 7
    bad = tmp_path / "bad.properties"
    bad.write_text("num.partitions=1\nnode.id=\\u00zz\n")
    with pytest.raises(SettingsError, match=r"bad.properties: line 2: malformed \\uxxxx"):
        load_settings(bad, environ={})


def test_a_missing_config_file_names_the_resolved_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        SettingsError, match=f"config file not found: {tmp_path}/nonexist.properties"
    ):
        load_settings(Path("nonexist.properties"), environ={})


def test_log_level_is_a_tool_variable_not_a_setting() -> None:
    assert load_settings(environ={"CONTEXTPLANE_LOG_LEVEL": "debug"}).ignored == {}


@pytest.mark.parametrize("url", ["mysql://a:secret@b/c", "postgresql:/127.0.0.1/x", "db.sqlite"])
def test_a_metadata_url_of_no_known_form_is_refused_without_echoing_it(url: str) -> None:
    with pytest.raises(SettingsError, match="metadata.url .* must be sqlite:///path") as refused:
        load_settings(environ={}, overrides={"metadata.url": url})
    assert "secret" not in str(refused.value)


def test_an_unknown_log_level_is_refused_naming_the_levels(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from contextplane.cli.main import main

    with pytest.raises(SystemExit) as stopped:
        main(["up", "--log-level", "verbose"])
    assert stopped.value.code == 2
    refused = capsys.readouterr().err
    assert "'verbose' is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL" in refused


def test_authorizer_settings_use_kafka_names_and_defaults() -> None:
    defaults = load_settings(environ={})
    assert defaults.authorizer_class_name == ""
    assert defaults.super_users == ""
    assert defaults.allow_everyone_if_no_acl_found is False
    settings = load_settings(
        environ={},
        overrides={
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": "User:admin;User:ops",
            "allow.everyone.if.no.acl.found": "true",
        },
    )
    assert settings.authorizer_class_name.endswith("StandardAuthorizer")
    assert settings.super_users == "User:admin;User:ops"
    assert settings.allow_everyone_if_no_acl_found is True


def test_the_replica_selector_is_the_leader_unless_rack_aware_is_named() -> None:
    assert load_settings(environ={}).replica_selector_class == ""  # Kafka's LeaderSelector
    for name in ("LeaderSelector", "RackAwareReplicaSelector"):
        value = f"org.apache.kafka.common.replica.{name}"
        settings = load_settings(environ={}, overrides={"replica.selector.class": value})
        assert settings.replica_selector_class == value


@pytest.mark.parametrize("value", ["admin", "User:alice;ops", ";;bob"])
def test_super_users_must_be_principals(value: str) -> None:
    # Kafka parses each entry as principalType:principalName and refuses to start otherwise.
    with pytest.raises(SettingsError, match="super.users: .* is not principalType:principalName"):
        load_settings(environ={}, overrides={"super.users": value})
    with pytest.raises(SettingsError, match="super.users"):
        load_settings(environ={env_name("super.users"): value})
    assert load_settings(environ={}, overrides={"super.users": " User:a ; User:b ;"}).super_users


def test_authorizer_class_name_must_be_the_standard_authorizer() -> None:
    with pytest.raises(SettingsError, match="authorizer.class.name: .*StandardAuthorizer"):
        load_settings(environ={}, overrides={"authorizer.class.name": "kafka.security.Other"})
    for value in ("", "org.apache.kafka.metadata.authorizer.StandardAuthorizer"):
        settings = load_settings(environ={}, overrides={"authorizer.class.name": value})
        assert settings.authorizer_class_name == value


def test_a_named_ignored_ssl_setting_is_accepted_while_other_ssl_settings_are_refused() -> None:
    """ssl.endpoint.identification.algorithm, common in Kafka server.properties files, is
    listed as having no effect; the refused ssl.* family must not shadow it."""
    for value in ("https", "HTTPS", ""):
        settings = load_settings(
            environ={}, overrides={"ssl.endpoint.identification.algorithm": value}
        )
        assert "ssl.endpoint.identification.algorithm" in settings.ignored
    with pytest.raises(SettingsError, match="ssl.cipher.suites"):
        load_settings(environ={}, overrides={"ssl.cipher.suites": "TLS_AES_128_GCM_SHA256"})
