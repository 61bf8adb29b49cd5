"""Differential: the consumer groups' broker settings answered alike by contextplane and
Apache Kafka 4.4 (from the harness), each started with the same settings: the heartbeat
interval told, UNSUPPORTED_ASSIGNOR and GROUP_MAX_SIZE_REACHED with their messages, a
group config outside the lowered bounds or a session not above the interval refused
with INVALID_CONFIG, and
with `group.coordinator.rebalance.protocols=classic` the consumer group APIs answered
UNSUPPORTED_VERSION while ApiVersions still lists them (Kafka 4.4 does)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kio.schema.errors import ErrorCode

from harness import kafka_reference
from tests.e2e.test_consumer_group_settings import (
    API_VERSIONS,
    CONSUMER_GROUP_DESCRIBE,
    CONSUMER_GROUP_HEARTBEAT,
    _alter_group,
    _join,
)
from tests.groups.support import Wire
from tests.support.broker import BrokerProcess
from tests.support.twins import kafka_twin
from tests.support.wait import wait_until

FIND_COORDINATOR, OFFSET_FETCH = 10, 9
SETTINGS = {
    "group.consumer.min.heartbeat.interval.ms": "1000",
    "group.consumer.heartbeat.interval.ms": "2000",
    "group.consumer.min.session.timeout.ms": "1000",
    "group.consumer.max.size": "2",
    "group.consumer.assignors": "range",
}


def _on_contextplane(tmp_path: Path, settings: dict[str, str], scenario: Callable) -> Any:
    broker = BrokerProcess(tmp_path / "contextplane", settings=settings).start()
    try:
        return scenario(broker.port)
    finally:
        broker.stop()


def _on_kafka(tmp_path: Path, settings: dict[str, str], scenario: Callable) -> Any:
    kafka = kafka_reference.start(
        data_dir=tmp_path / "kafka",
        extra_props={"offsets.topic.num.partitions": 1, **settings},
        timeout=120,
    )
    try:
        return scenario(kafka.port)
    finally:
        kafka.stop()


def _coordinator_ready(wire: Wire) -> None:
    # Kafka creates __consumer_offsets on the first FindCoordinator and then loads it: a
    # committed offset can be read once it has.
    wait_until(
        lambda: (
            wire.call(FIND_COORDINATOR, 3, key="g").error_code == ErrorCode.none
            and wire.call(OFFSET_FETCH, 7, group_id="g", topics=None).error_code == ErrorCode.none
        ),
        60,
        "the group coordinator is available",
        poll_s=0.2,
    )


def _settings_in_effect(port: int) -> list[tuple[Any, ...]]:
    with Wire(port) as wire:
        _coordinator_ready(wire)
        answers = []
        for member, assignor in (
            ("m-1", None),
            ("m-2", "uniform"),
            ("m-2", "range"),
            ("m-3", None),
        ):
            joined = _join(wire, "settings-diff", member, assignor)
            interval = joined.heartbeat_interval.total_seconds()
            answers.append((joined.error_code, joined.error_message, interval))
        answers.append(_alter_group(wire, "settings-diff", "consumer.heartbeat.interval.ms", "500"))
        # Within the bounds, yet not above the broker's heartbeat interval (2 s).
        answers.append(_alter_group(wire, "settings-diff", "consumer.session.timeout.ms", "2000"))
        return answers


@pytest.mark.parametrize(
    "run", [pytest.param(_on_contextplane, id="contextplane"), kafka_twin(_on_kafka, id="kafka")]
)
def test_assignors_size_and_heartbeat_interval_as_kafka(tmp_path: Path, run: Callable) -> None:
    assert run(tmp_path, SETTINGS, _settings_in_effect) == [
        (ErrorCode.none, None, 2),
        (
            ErrorCode.unsupported_assignor,
            "ServerAssignor uniform is not supported. Supported assignors: range.",
            0,
        ),
        (ErrorCode.none, None, 2),
        (
            ErrorCode.group_max_size_reached,
            "The consumer group has reached its maximum capacity of 2 members.",
            0,
        ),
        (
            ErrorCode.invalid_config,
            "consumer.heartbeat.interval.ms must be in the range 1000 to 15000 inclusive.",
        ),
        (
            ErrorCode.invalid_config,
            "consumer.session.timeout.ms must be greater than consumer.heartbeat.interval.ms",
        ),
    ]


def _consumer_protocol_answers(port: int) -> tuple[Any, ...]:
    with Wire(port) as wire:
        _coordinator_ready(wire)
        versions = wire.call(API_VERSIONS, 3, client_software_name="t", client_software_version="1")
        listed = {k.api_key for k in versions.api_keys}
        described = wire.call(
            CONSUMER_GROUP_DESCRIBE, 1, group_ids=["g"], include_authorized_operations=False
        )
        return (
            CONSUMER_GROUP_HEARTBEAT in listed,
            CONSUMER_GROUP_DESCRIBE in listed,
            _join(wire, "g", "m-1").error_code,
            described.groups[0].error_code,
        )


@pytest.mark.parametrize(
    "run", [pytest.param(_on_contextplane, id="contextplane"), kafka_twin(_on_kafka, id="kafka")]
)
def test_consumer_protocol_left_out_as_kafka(tmp_path: Path, run: Callable) -> None:
    only_classic = {"group.coordinator.rebalance.protocols": "classic"}
    assert run(tmp_path, only_classic, _consumer_protocol_answers) == (
        True,
        True,
        ErrorCode.unsupported_version,
        ErrorCode.unsupported_version,
    )
