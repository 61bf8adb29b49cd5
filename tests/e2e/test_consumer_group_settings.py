"""The consumer groups' broker settings (Kafka's group.consumer.* and
group.coordinator.rebalance.protocols) take effect on the wire: the heartbeat interval
members are told, the bounds of the per-group configs, the assignors a member may ask for,
the most members a group takes, and the consumer protocol left out."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kio.schema.errors import ErrorCode

from tests.groups.support import Wire
from tests.support.broker import BrokerProcess

API_VERSIONS, INCREMENTAL_ALTER_CONFIGS = 18, 44
CONSUMER_GROUP_HEARTBEAT, CONSUMER_GROUP_DESCRIBE = 68, 69
GROUP_RESOURCE = 32


@pytest.fixture(scope="module")
def configured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    broker = BrokerProcess(
        tmp_path_factory.mktemp("cgsettings") / "broker",
        settings={
            "group.consumer.min.heartbeat.interval.ms": "1000",
            "group.consumer.heartbeat.interval.ms": "2000",
            "group.consumer.max.heartbeat.interval.ms": "4000",
            "group.consumer.min.session.timeout.ms": "10000",
            "group.consumer.session.timeout.ms": "12000",
            "group.consumer.max.size": "2",
            "group.consumer.assignors": "range",
        },
    ).start()
    try:
        yield broker
    finally:
        broker.stop()


def _join(wire: Wire, group: str, member: str, assignor: str | None = None) -> Any:
    return wire.call(
        CONSUMER_GROUP_HEARTBEAT,
        1,
        group_id=group,
        member_id=member,
        member_epoch=0,
        instance_id=None,
        rack_id=None,
        rebalance_timeout=30_000,
        subscribed_topic_names=["t"],
        server_assignor=assignor,
        topic_partitions=[],
    )


def _alter_group(wire: Wire, group: str, name: str, value: str) -> tuple[int, str | None]:
    response = wire.call(
        INCREMENTAL_ALTER_CONFIGS,
        1,
        resources=[
            {
                "resource_type": GROUP_RESOURCE,
                "resource_name": group,
                "configs": [{"name": name, "config_operation": 0, "value": value}],
            }
        ],
        validate_only=False,
    )
    (result,) = response.responses
    return result.error_code, result.error_message


def test_members_are_told_the_heartbeat_interval_and_groups_fill_up(
    configured: BrokerProcess,
) -> None:
    """The broker's interval is told; a third member of a group of at most 2 is refused
    with Kafka's message, and a member asking for an assignor not listed is refused."""
    with Wire(configured.port) as wire:
        first = _join(wire, "full", "m-1")
        assert first.error_code == ErrorCode.none
        assert first.heartbeat_interval.total_seconds() == 2
        assert _join(wire, "full", "m-2", "range").error_code == ErrorCode.none
        third = _join(wire, "full", "m-3")
        assert (third.error_code, third.error_message) == (
            ErrorCode.group_max_size_reached,
            "The consumer group has reached its maximum capacity of 2 members.",
        )
        described = wire.call(
            CONSUMER_GROUP_DESCRIBE, 1, group_ids=["full"], include_authorized_operations=False
        )
        assert described.groups[0].assignor_name == "range"  # the only one, so the default
        uniform = _join(wire, "other", "m-1", "uniform")
        assert (uniform.error_code, uniform.error_message) == (
            ErrorCode.unsupported_assignor,
            "ServerAssignor uniform is not supported. Supported assignors: range.",
        )


def test_group_configs_are_bounded_by_the_min_and_max_settings(
    configured: BrokerProcess,
) -> None:
    """A group's consumer.heartbeat.interval.ms / consumer.session.timeout.ms within the
    broker's min and max is taken and told; outside them, INVALID_CONFIG."""
    with Wire(configured.port) as wire:
        assert _alter_group(wire, "tuned", "consumer.heartbeat.interval.ms", "1000") == (
            ErrorCode.none,
            None,
        )
        assert _alter_group(wire, "tuned", "consumer.heartbeat.interval.ms", "5000") == (
            ErrorCode.invalid_config,
            "consumer.heartbeat.interval.ms must be in the range 1000 to 4000 inclusive.",
        )
        assert _alter_group(wire, "tuned", "consumer.session.timeout.ms", "9999") == (
            ErrorCode.invalid_config,
            "consumer.session.timeout.ms must be in the range 10000 to 60000 inclusive.",
        )
        assert _join(wire, "tuned", "m-1").heartbeat_interval.total_seconds() == 1


def test_without_the_consumer_protocol_its_apis_answer_unsupported_version(
    tmp_path: Path,
) -> None:
    """group.coordinator.rebalance.protocols=classic: the consumer group APIs answer
    UNSUPPORTED_VERSION; ApiVersions still lists them, as Kafka 4.4 does (see
    test_consumer_group_settings_vs_kafka.py)."""
    broker = BrokerProcess(
        tmp_path / "broker", settings={"group.coordinator.rebalance.protocols": "classic"}
    ).start()
    try:
        with Wire(broker.port) as wire:
            versions = wire.call(
                API_VERSIONS, 3, client_software_name="t", client_software_version="1"
            )
            listed = {k.api_key for k in versions.api_keys}
            assert {CONSUMER_GROUP_HEARTBEAT, CONSUMER_GROUP_DESCRIBE} <= listed
            assert 11 in listed  # JoinGroup: the classic protocol is served
            assert _join(wire, "g", "m-1").error_code == ErrorCode.unsupported_version
            described = wire.call(
                CONSUMER_GROUP_DESCRIBE, 1, group_ids=["g"], include_authorized_operations=False
            )
            assert described.groups[0].error_code == ErrorCode.unsupported_version
    finally:
        broker.stop()
