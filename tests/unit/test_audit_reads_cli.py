"""`contextplane audit reads`: Kafka client security properties become librdkafka's,
and --since takes ISO 8601 times or milliseconds."""

from __future__ import annotations

import pytest

from contextplane.cli.audit_reads import COLUMNS, ConfigError, client_config, parse_since, table
from tests.support.readme import section


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


def test_the_jaas_entry_is_parsed_as_strictly_as_kafkas_tools() -> None:
    scram = "org.apache.kafka.common.security.scram.ScramLoginModule"
    base = {"sasl.mechanism": "SCRAM-SHA-512"}
    with pytest.raises(ConfigError, match="does not end with ';'"):
        client_config(base | {"sasl.jaas.config": f'{scram} required username="a" password="b"'})
    with pytest.raises(ConfigError, match="invalid control flag 'requird'"):
        client_config(base | {"sasl.jaas.config": f'{scram} requird username="a";'})
    plain = "org.apache.kafka.common.security.plain.PlainLoginModule"
    with pytest.raises(ConfigError, match="needs the login module"):
        client_config(base | {"sasl.jaas.config": f'{plain} required username="a";'})


def test_the_table_escapes_what_the_audited_client_chose(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from contextplane.cli import audit_reads
    from contextplane.cli.main import main

    forged = "app\n2026-01-01T00:00:00Z\tUser:admin\tx\t-\t10.0.0.1\t0\t0-5\x1b[2J"
    receipt = {
        "last_fetch_time": "2026-11-29T10:00:00Z",
        "principal": "User:eve",
        "client_id": forged,
        "group": "g\tbad",
        "client_address": "127.0.0.1:5",
        "partition": 0,
        "first_offset": 0,
        "last_offset": 9,
        "topic": "orders",
    }
    monkeypatch.setattr(audit_reads, "read_receipts", lambda *args: iter([receipt]))
    monkeypatch.setattr(audit_reads, "matches", lambda *args: True)
    assert main(["audit", "reads", "--topic", "orders", "--bootstrap-server", "x:1"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert len(rows) == 2  # the header and eve's one row: nothing forged
    cells = rows[1].split()
    assert cells[1] == "User:eve" and len(cells) == 7
    assert "\x1b" not in rows[1]


def test_the_table_is_aligned_as_the_readme_shows_it() -> None:
    """The README's example under "## Audit" is what the tool prints for its row."""
    text = section("## Audit")
    start = text.index("    TIME ")
    shown = [line[4:] for line in text[start:].split("\n\n")[0].splitlines()]
    header, *rows = shown
    assert header.split() == list(COLUMNS)
    cells = [tuple(line.split()) for line in rows]
    assert rows and table(cells) == shown
    # Every column starts where its heading does, two spaces after the widest cell.
    starts = [header.index(name) for name in COLUMNS]
    for line in rows:
        assert [line[i - 2 : i] for i in starts[1:]] == ["  "] * (len(COLUMNS) - 1)


def test_a_coarse_receipt_is_shown_as_such_and_matches_only_its_ranges() -> None:
    from contextplane.cli.audit_reads import offsets_cell, received

    receipt: dict[str, object] = {
        "first_offset": 0,
        "last_offset": 300,
        "ranges": [[0, 9], [100, 300]],
        "coarse": True,
    }
    assert offsets_cell(receipt) == "0-9,100-300(coarse)"
    assert received(receipt, 5) and received(receipt, 150)
    assert not received(receipt, 50)
    many = {"first_offset": 0, "last_offset": 900, "ranges": [[i, i] for i in range(0, 1000, 100)]}
    assert (
        offsets_cell(many) == "0-0,100-100,200-200,300-300,400-400,500-500,600-600,700-700,...(+2)"
    )
    old = {"first_offset": 3, "last_offset": 7}  # a receipt written before ranges were
    assert offsets_cell(old) == "3-7" and received(old, 4)


def test_audit_events_match_and_rows() -> None:
    import argparse

    from contextplane.cli.audit_events import matches, row

    denial = {
        "type": "io.contextplane.audit.authorization",
        "time": "2026-11-29T18:00:01.250Z",
        "subject": "topic:orders",
        "data": {
            "principal": "User:bob",
            "api": "Fetch",
            "operation": "READ",
            "resource_name": "orders",
            "resource_names": ["orders", "payments"],
            "resource_count": 2,
            "decision": "DENIED",
            "result": "TOPIC_AUTHORIZATION_FAILED",
            "client_address": "127.0.0.1:5000",
        },
    }
    login = {
        "type": "io.contextplane.audit.authentication",
        "time": "2026-11-29T18:00:00.000Z",
        "subject": "principal:User:eve",
        "data": {"principal": "User:eve", "operation": "AUTHENTICATE", "mechanism": "PLAIN",
                 "decision": "DENIED", "result": "SASL_AUTHENTICATION_FAILED",
                 "client_address": "127.0.0.1:5001"},
    }  # fmt: skip

    def ask(**given: object) -> argparse.Namespace:
        fields: dict[str, object] = {"type": None, "principal": None, "decision": None,
                                     "resource": None}  # fmt: skip
        return argparse.Namespace(**(fields | given))

    assert matches(denial, ask(resource="payments"), None)  # a name the denial lists
    assert matches(denial, ask(resource="topic:orders", decision="DENIED"), None)
    assert not matches(denial, ask(type=["change"]), None)
    assert not matches(login, ask(principal="User:bob"), None)
    assert matches(login, ask(type=["authentication"]), 1795910400000)  # 2026-11-29T00:00Z
    assert not matches(login, ask(), 1795975201000)  # 18:00:01, after it
    assert row(denial) == (
        "2026-11-29T18:00:01.250Z", "authorization", "User:bob", "Fetch READ",
        "topic:orders (+1)", "DENIED", "TOPIC_AUTHORIZATION_FAILED", "127.0.0.1:5000",
    )  # fmt: skip
    assert row(login)[3] == "AUTHENTICATE PLAIN"
    password_set = {
        "type": "io.contextplane.audit.change",
        "subject": "user:alice",
        "data": {"api": "AlterUserScramCredentials", "change": "upsert",
                 "mechanism": "SCRAM-SHA-256", "principal": "User:admin"},
    }  # fmt: skip
    assert row(password_set)[3] == "AlterUserScramCredentials upsert SCRAM-SHA-256"
