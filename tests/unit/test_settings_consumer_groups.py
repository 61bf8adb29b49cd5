"""The consumer groups' broker settings are checked as Kafka checks them
(GroupCoordinatorConfig, KafkaConfig), with Kafka's messages, and reach the consumer
group machine's config."""

from __future__ import annotations

import pytest

from contextplane.coordinators.consumer_group import group_configs
from contextplane.coordinators.consumer_group.messages import consumer_group_config
from contextplane.errors import KafkaError
from contextplane.settings import SettingsError, load_settings


def _settings(**given: str):
    return load_settings(environ={}, overrides=given)


def test_kafkas_defaults() -> None:
    settings = _settings()
    config = consumer_group_config(settings)
    assert (config.heartbeat_interval_ms, config.session_timeout_ms) == (5_000, 45_000)
    heartbeat_bounds = (
        settings.group_consumer_min_heartbeat_interval_ms,
        settings.group_consumer_max_heartbeat_interval_ms,
    )
    assert heartbeat_bounds == (5_000, 15_000)
    session_bounds = (
        settings.group_consumer_min_session_timeout_ms,
        settings.group_consumer_max_session_timeout_ms,
    )
    assert session_bounds == (45_000, 60_000)
    assert config.assignors == ("uniform", "range")
    assert config.max_size == 2**31 - 1


def test_values_within_lowered_bounds_are_taken() -> None:
    settings = _settings(**{
        "group.consumer.min.heartbeat.interval.ms": "1000",
        "group.consumer.heartbeat.interval.ms": "2000",
        "group.consumer.min.session.timeout.ms": "6000",
        "group.consumer.session.timeout.ms": "6000",
        "group.consumer.max.size": "3",
        "group.consumer.assignors": (
            "org.apache.kafka.coordinator.group.assignor.RangeAssignor, uniform"
        ),
    })  # fmt: skip
    config = consumer_group_config(settings)
    assert (config.heartbeat_interval_ms, settings.group_consumer_min_heartbeat_interval_ms) == (
        2000,
        1000,
    )
    assert (config.session_timeout_ms, settings.group_consumer_min_session_timeout_ms) == (
        6000,
        6000,
    )
    assert config.assignors == ("range", "uniform")  # class names as Kafka's names
    assert config.max_size == 3


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (
            {"group.consumer.heartbeat.interval.ms": "4000"},
            "group.consumer.heartbeat.interval.ms must be greater than or equal to "
            "group.consumer.min.heartbeat.interval.ms",
        ),
        (
            {"group.consumer.heartbeat.interval.ms": "16000"},
            "group.consumer.heartbeat.interval.ms must be less than or equal to "
            "group.consumer.max.heartbeat.interval.ms",
        ),
        (
            {"group.consumer.max.heartbeat.interval.ms": "4000"},
            "group.consumer.max.heartbeat.interval.ms must be greater than or equal to "
            "group.consumer.min.heartbeat.interval.ms",
        ),
        (
            {"group.consumer.session.timeout.ms": "61000"},
            "group.consumer.session.timeout.ms must be less than or equal to "
            "group.consumer.max.session.timeout.ms",
        ),
        (
            {"group.consumer.min.session.timeout.ms": "50000"},
            "group.consumer.session.timeout.ms must be greater than or equal to "
            "group.consumer.min.session.timeout.ms",
        ),
        (
            {
                "group.consumer.min.session.timeout.ms": "1000",
                "group.consumer.session.timeout.ms": "5000",
            },
            "group.consumer.heartbeat.interval.ms must be less than "
            "group.consumer.session.timeout.ms",
        ),
        (
            {"group.consumer.assignors": "uniform,com.example.Sticky"},
            "Invalid value com.example.Sticky for configuration group.consumer.assignors: "
            "Class cannot be found",
        ),
        (
            {
                "group.consumer.assignors": "range,"
                "org.apache.kafka.coordinator.group.assignor.RangeAssignor"
            },
            "Invalid value org.apache.kafka.coordinator.group.assignor.RangeAssignor for "
            "configuration group.consumer.assignors: Assignor name 'range' is already "
            "registered by another configured assignor. Assignor names, whether built-in or "
            "custom, must be unique",
        ),
        (
            {"group.consumer.assignors": " "},
            "group.consumer.assignors must name at least one assignor (e.g. uniform)",
        ),
        (
            {"group.consumer.migration.policy": "sideways"},
            "Invalid value sideways for configuration group.consumer.migration.policy: String "
            "must be one of (case insensitive): bidirectional, upgrade, downgrade, disabled",
        ),
        (
            {"group.coordinator.rebalance.protocols": "consumer"},
            "Disabling the 'classic' protocol is not supported.",
        ),
        (
            {"group.coordinator.rebalance.protocols": "classic,queue"},
            "Invalid value classic,queue for configuration "
            "group.coordinator.rebalance.protocols: String must be one of: classic, consumer, "
            "streams, share",
        ),
    ],
)
def test_kafkas_rules_refuse_the_start(given: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as refused:
        _settings(**given)
    assert str(refused.value) == message


def test_each_int_is_at_least_one_and_the_size_too() -> None:
    for name in ("group.consumer.max.size", "group.consumer.min.heartbeat.interval.ms"):
        with pytest.raises(SettingsError, match="out of range"):
            _settings(**{name: "0"})


def test_migration_policy_is_case_insensitive_and_share_may_be_listed() -> None:
    settings = _settings(**{
        "group.consumer.migration.policy": "UPGRADE",
        "group.coordinator.rebalance.protocols": "classic,consumer,share",
    })  # fmt: skip
    assert settings.group_consumer_migration_policy == "UPGRADE"


def test_group_configs_are_held_to_the_broker_bounds_when_altered_not_when_loaded() -> None:
    config = _settings(**{
        "group.consumer.min.session.timeout.ms": "3000",
        "group.consumer.session.timeout.ms": "6000",
    })  # fmt: skip
    session = group_configs.SESSION_TIMEOUT
    assert group_configs.checked({session: "5001"}, config) == {session: 5001}
    with pytest.raises(KafkaError, match="must be in the range 3000 to 60000 inclusive"):
        group_configs.checked({session: "2999"}, config)
    with pytest.raises(KafkaError, match=f"^{session} must be greater than consumer.heartbeat"):
        group_configs.checked({session: "5000", group_configs.HEARTBEAT_INTERVAL: "5000"}, config)
    # Stored before the bounds were raised: loaded as stored.
    assert group_configs.checked({session: "1000"}, None) == {session: 1000}


def test_the_assignment_interval_and_assignor_offload_as_group_configs() -> None:
    """`consumer.assignment.interval.ms`: an INT at least 0 within the broker's
    `group.consumer.min/max.assignment.interval.ms` (0 and 15000); the offload a BOOLEAN.
    A stored 0 loads (stored values are held to the config's own floor only)."""
    interval, offload = group_configs.ASSIGNMENT_INTERVAL, group_configs.ASSIGNOR_OFFLOAD
    settings = _settings()
    assert group_configs.checked({interval: "0", offload: "FALSE"}, settings) == {interval: 0}
    assert group_configs.checked({interval: "0"}, None) == {interval: 0}
    share_interval = "share.assignment.interval.ms"
    assert group_configs.checked({share_interval: "0"}, None) == {share_interval: 0}
    refusals = {
        "-1": f"Invalid value -1 for configuration {interval}: Value must be at least 0",
        "15001": f"{interval} must be in the range 0 to 15000 inclusive.",
    }
    for text, message in refusals.items():
        with pytest.raises(KafkaError) as refused:
            group_configs.checked({interval: text}, settings)
        assert refused.value.message == message
    with pytest.raises(KafkaError, match="Expected value to be either true or false"):
        group_configs.checked({offload: "1"}, settings)
    narrower = _settings(**{"group.consumer.max.assignment.interval.ms": "2000"})
    with pytest.raises(KafkaError, match="must be in the range 0 to 2000 inclusive"):
        group_configs.checked({interval: "2001"}, narrower)
    with pytest.raises(SettingsError) as refused_start:
        _settings(**{"group.consumer.min.assignment.interval.ms": "2000"})
    assert str(refused_start.value) == (
        "group.consumer.assignment.interval.ms must be greater than or equal to "
        "group.consumer.min.assignment.interval.ms"
    )


def test_giving_rebalance_protocols_warns_as_kafka_does() -> None:
    from contextplane.settings_consumer_groups import deprecations

    assert deprecations(_settings()) == []
    warned = deprecations(_settings(**{"group.coordinator.rebalance.protocols": "classic,share"}))
    assert warned[0].startswith("'share' in `group.coordinator.rebalance.protocols` is deprec")
    assert warned[1].startswith("The config `group.coordinator.rebalance.protocols` is deprec")
    assert "currently disabled: consumer, streams." in warned[1]
