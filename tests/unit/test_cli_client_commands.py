"""The client commands' pieces that need no cluster: the fast start's command names,
kcat's format tokens, NAME=VALUE arguments."""

from __future__ import annotations

import io
import shlex

import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME

from contextplane.cli import client_commands, launch
from contextplane.cli.config import name_values
from contextplane.cli.consume import format_record, record_document
from contextplane.cli.kafka_client import ConfigError
from contextplane.cli.main import build_parser
from contextplane.cli.passwords import PASSWORD_MAX, read_password
from tests.support.readme import section


def test_the_launcher_names_every_client_command() -> None:
    assert set(client_commands.COMMANDS) == launch.CLIENT_COMMANDS


def test_every_command_the_readme_shows_parses() -> None:
    """The README's "Command line" examples use only flags the commands have."""
    shown = [
        line.strip().split("contextplane ", 1)[1].split("  #")[0]
        for line in section("## Command line").splitlines()
        if line.startswith("    ") and "contextplane " in line
    ]
    # Every client command, `audit` (a Kafka client of a contextplane broker's own
    # audit topics, shown there too) and `cluster` (rebalance, drain: Kafka clients under
    # a command that also runs brokers), parsed by the program's whole parser.
    others = {"audit", "cluster"}
    assert {line.split()[0] for line in shown} == launch.CLIENT_COMMANDS | others
    parser = build_parser()
    for line in shown:
        args = parser.parse_args(
            [word for word in shlex.split(line) if word != "$B"]
            + ["--bootstrap-server", "127.0.0.1:9092"]
        )
        assert args.command in launch.CLIENT_COMMANDS | others


class Record:
    """What confluent-kafka's Message answers, for the formatter."""

    def __init__(self, key: bytes | None, value: bytes | None) -> None:
        self._key, self._value = key, value

    def topic(self) -> str:
        return "orders"

    def partition(self) -> int:
        return 2

    def offset(self) -> int:
        return 41

    def timestamp(self) -> tuple[int, int]:
        return TIMESTAMP_CREATE_TIME, 1_700_000_000_000

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> list[tuple[str, bytes]]:
        return [("trace", b"abc"), ("n", b"1")]


def test_kcat_format_tokens_and_escapes() -> None:
    record = Record(b"k1", b"\xffraw")
    written = format_record("%t/%p@%o %T %k=%v %K %S [%h]\\t%%x\\n", record)
    assert written == (b"orders/2@41 1700000000000 k1=\xffraw 2 4 [trace=abc,n=1]\t%%x\n")
    assert format_record("%k|%v", Record(None, None)) == b"|"


def test_json_records_carry_text_or_base64() -> None:
    assert record_document(Record(b"k", b"\xff")) == {
        "topic": "orders",
        "partition": 2,
        "offset": 41,
        "timestamp": 1_700_000_000_000,
        "key": "k",
        "value": {"base64": "/w=="},
        "headers": [["trace", "abc"], ["n", "1"]],
    }


def test_name_value_arguments() -> None:
    assert name_values(["a=1", "b=x=y", "c="], "--set") == {"a": "1", "b": "x=y", "c": ""}
    with pytest.raises(ConfigError, match="--set expects NAME=VALUE, got 'a'"):
        name_values(["a"], "--set")


def test_a_password_on_stdin_is_one_bounded_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("secret\r\nnext line\n"))
    assert read_password(from_stdin=True) == "secret"
    monkeypatch.setattr("sys.stdin", io.StringIO("x" * PASSWORD_MAX + "\n"))
    assert read_password(from_stdin=True) == "x" * PASSWORD_MAX
    monkeypatch.setattr("sys.stdin", io.StringIO("x" * 10_000_000))
    with pytest.raises(ValueError, match="longer than 4096"):
        read_password(from_stdin=True)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(EOFError):
        read_password(from_stdin=True)
