"""Hostile `share.auto.offset.reset` and `share.isolation.level` values on a GROUP config
resource (IncrementalAlterConfigs): Kafka 4.4's answer for each, and no value that Java's
`Duration.parse` refuses taken because Python's regex or arithmetic reads it otherwise
(a Unicode case-folded letter, a negative duration under a millisecond)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kio.schema.errors import ErrorCode

from harness import kafka_reference
from tests.groups.support import Broker, Wire
from tests.groups.test_share_group_configs_wire import SET, _alter

RESET, ISOLATION = "share.auto.offset.reset", "share.isolation.level"
SESSION = "share.session.timeout.ms"
# Each altered on its own group: an accepted value does not change the next one's answer.
HOSTILE = [
    (RESET, "by_duration:PT1\u017f"),  # 'ſ' folds to 's' in Unicode, not in Java
    (RESET, "by_duration:\u0440T1S"),  # a Cyrillic 'р'
    (RESET, "by_duration:PT\u0661S"),  # an Arabic-Indic digit one
    (RESET, "by_duration:PT-0.0000001S"),  # negative, under a millisecond
    (RESET, "by_duration:-PT0.000000001S"),
    (RESET, "by_duration:-PT0S"),  # negative zero: zero
    (RESET, "by_duration:PT-0S"),
    (RESET, "by_duration:PT99999999999999999H"),  # hours * 3600 overflow a long
    (RESET, "by_duration:PT9223372036854775807S"),  # the largest Duration Java parses
    (RESET, "by_duration:PT9223372036854775808S"),
    (RESET, "by_duration:P" + "9" * 10_000 + "D"),
    (RESET, "by_duration:PT1S\x00"),
    (RESET, "by_duration: PT1S"),
    (ISOLATION, "r" * 10_000),
    # Java's String.trim (what Kafka's ConfigDef applies) takes every char up to U+0020
    # off the ends, NUL included, and no Unicode space; Integer.parseInt takes digits of
    # any script but no '_'.
    *[(RESET, f"by_duration:PT1S{end}") for end in ("\x00", "\x1f", "\n", "\xa0", "\u2003")],
    (RESET, "\x00earliest"),
    (RESET, "\x85earliest"),
    *[(ISOLATION, f"read_committed{end}") for end in ("\x00", " ", "\x1c", "\xa0")],
    *[(SESSION, text) for text in ("\x0045000", "\xa045000", "\uff14\uff15\uff10\uff10\uff10")],
    (SESSION, "45_000"),
    (SESSION, "4 5000"),
]


def _answers(port: int) -> list[Any]:
    with Wire(port) as wire:
        return [
            (name, value[:40], _alter(wire, f"hostile-{index}", (name, SET, value)))
            for index, (name, value) in enumerate(HOSTILE)
        ]


@pytest.fixture(scope="module")
def contextplane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    broker = Broker(tmp_path_factory.mktemp("share-values") / "broker").start()
    yield broker
    broker.stop()


def test_what_java_refuses_is_refused(contextplane: Broker) -> None:
    refused = {
        "by_duration:PT1\u017f",
        "by_duration:PT-0.0000001S",
        "by_duration:-PT0.000000001S",
    }
    with Wire(contextplane.port) as wire:
        for index, value in enumerate(sorted(refused)):
            code, message = _alter(wire, f"refused-{index}", (RESET, SET, value))
            assert code == ErrorCode.invalid_config, value
            assert f"Invalid value {value} for configuration {RESET}" in message
        assert _alter(wire, "zero", (RESET, SET, "by_duration:-PT0S")) == (ErrorCode.none, None)
        code, _ = _alter(wire, "separated", (SESSION, SET, "45_000"))
        assert code == ErrorCode.invalid_config


def test_accepted_values_are_read_trimmed(contextplane: Broker) -> None:
    """A value Kafka takes after trimming is stored as given; the group runs with the
    trimmed value (not read_uncommitted for "read_committed ", not latest for
    '\\tearliest ')."""
    with Wire(contextplane.port) as wire:
        changes = [
            (ISOLATION, SET, "read_committed "),
            (RESET, SET, "\tearliest "),
            (SESSION, SET, "\x0050000"),
        ]
        assert _alter(wire, "trimmed", *changes) == (ErrorCode.none, None)
    shares = contextplane.broker.shares if contextplane.broker else None
    assert shares is not None
    values = shares.values("trimmed")
    assert values.read_committed
    assert values.offset_reset.strategy == "earliest"
    assert values.session_timeout_ms == 50_000


@pytest.mark.slow  # starts Apache Kafka
def test_hostile_values_answered_as_apache_kafka_answers(
    contextplane: Broker, tmp_path: Path
) -> None:
    kafka = kafka_reference.start(data_dir=tmp_path / "kafka", timeout=120)
    try:
        expected = _answers(int(kafka.bootstrap.rsplit(":", 1)[1]))
    finally:
        kafka.stop()
    assert _answers(contextplane.port) == expected
