"""Differential: integer topic configs checked alike by contextplane and Apache Kafka 4.4
(from the harness). Each value goes through CreateTopics with validate_only, and the
answer (accepted, or INVALID_CONFIG with its message) must be the same on both: Java's
trim and parseInt/parseLong (no `1_000`, no inner spaces, Unicode digits allowed), the
INT and LONG ranges, and LogConfig's atLeast floors. `min.cleanable.dirty.ratio` (a DOUBLE,
Double.parseDouble: a d/f suffix, hexadecimal and NaN taken; '_', Unicode digits and
"nan" not) and `unclean.leader.election.enable` (a BOOLEAN, either case) are compared by
acceptance only."""

from __future__ import annotations

from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from harness import kafka_reference
from tests.support.broker import BrokerProcess

CASES = [
    ("retention.ms", "1_000"),
    ("retention.ms", " 1000\t"),
    ("retention.ms", "-1"),
    ("retention.ms", "-2"),
    ("retention.ms", "+5000"),
    ("retention.ms", "9223372036854775807"),
    ("retention.ms", "9223372036854775808"),
    ("retention.ms", "\u0661\u0662"),
    ("retention.bytes", "-5"),
    ("retention.bytes", "1 000"),
    ("segment.bytes", "2147483648"),
    ("segment.bytes", "1048575"),
    ("max.message.bytes", "-1"),
    ("min.insync.replicas", "0"),
    ("max.compaction.lag.ms", "0"),
    ("flush.messages", "0"),
    ("delete.retention.ms", "-1"),
    ("message.timestamp.after.max.ms", "0x10"),
]

# Compared by acceptance only: DOUBLE (Double.parseDouble) and BOOLEAN (either case).
RATIO, UNCLEAN = "min.cleanable.dirty.ratio", "unclean.leader.election.enable"
ACCEPTANCE = [
    *[
        (RATIO, value)
        for value in ("0.5d", "0.5F", "0x1p-1", ".5e0", "NaN", "-0.0", "0.2_5", "nan", "1.5")
    ],
    (RATIO, "\uff10.\uff15"),
    *[(UNCLEAN, value) for value in ("TRUE", "False", " true ", "yes", "1")],
]


def _answers(bootstrap: str) -> list[str]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    answers = []
    for index, (name, value) in enumerate(CASES):
        topic = NewTopic(f"numbers-{index}", 1, 1, config={name: value})
        future = admin.create_topics([topic], validate_only=True, request_timeout=15)
        try:
            future[topic.topic].result(30)
            answers.append(f"{name}={value!r}: accepted")
        except KafkaException as exc:
            error = exc.args[0]
            answers.append(f"{name}={value!r}: {error.name()} {error.str()}")
    for index, (name, value) in enumerate(ACCEPTANCE):
        topic = NewTopic(f"accepted-{index}", 1, 1, config={name: value})
        future = admin.create_topics([topic], validate_only=True, request_timeout=15)
        try:
            future[topic.topic].result(30)
            answers.append(f"{name}={value!r}: accepted")
        except KafkaException as exc:
            answers.append(f"{name}={value!r}: {exc.args[0].name()}")
    return answers


def test_integer_topic_configs_are_checked_as_kafka_checks_them(tmp_path: Path) -> None:
    broker = BrokerProcess(tmp_path / "contextplane").start()
    try:
        ours = _answers(broker.bootstrap)
    finally:
        broker.stop()
    kafka = kafka_reference.start(data_dir=tmp_path / "kafka", timeout=120)
    try:
        theirs = _answers(f"127.0.0.1:{kafka.port}")
    finally:
        kafka.stop()
    assert ours == theirs
    assert any("accepted" in answer for answer in ours)
    assert any("INVALID_CONFIG" in answer for answer in ours)
