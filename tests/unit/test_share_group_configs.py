"""A share group's own configs as Kafka 4.4 checks them: `by_duration:` read as Java's
Duration.parse reads it, values within the broker's `group.share.min/max.*`, Kafka's
messages (those of Apache Kafka 4.4 in tests/groups/test_share_group_configs_wire.py)."""

from __future__ import annotations

import pytest

from contextplane.coordinators.consumer_group.group_configs import checked
from contextplane.coordinators.share_group_configs import (
    BY_DURATION,
    EARLIEST,
    INT_CONFIGS,
    LATEST,
    OffsetReset,
    capped,
    duration_ms,
    offset_reset,
    share_group_values,
)
from contextplane.errors import KafkaError
from contextplane.protocol.error_codes import ErrorCode
from contextplane.settings import Settings, SettingsError, load_settings

HOUR_MS = 3_600_000


@pytest.mark.parametrize(
    ("text", "millis"),
    [
        ("PT1H", HOUR_MS),
        ("pt1h", HOUR_MS),  # Java's pattern is case-insensitive
        ("P1D", 24 * HOUR_MS),
        ("P1DT2H3M4.5S", 24 * HOUR_MS + 2 * HOUR_MS + 3 * 60_000 + 4_500),
        ("PT0S", 0),
        ("PT1,25S", 1_250),
        ("PT1.S", 1_000),  # a fraction of no digits
        ("-PT1H", -HOUR_MS),
        ("PT-1H", -HOUR_MS),
        ("PT1H-30M", HOUR_MS // 2),
        ("PT-1.5S", -1_500),  # the fraction takes the seconds' sign
        ("+P2D", 2 * 24 * HOUR_MS),
        ("PT0.000000001S", 0),
    ],
)
def test_durations_are_read_as_java_reads_them(text: str, millis: int) -> None:
    assert duration_ms(text) == millis


@pytest.mark.parametrize(
    "text",
    ["", "P", "PT", "1H", "PT1", "P1H", "PT1.1234567891S", "P1W", "P1Y", "PT1H1H", " PT1H",
     "P9999999999999999999D", "P" + "1" * 300 + "D"],
)  # fmt: skip
def test_what_java_refuses_is_no_duration(text: str) -> None:
    assert duration_ms(text) is None


def test_the_reset_strategies() -> None:
    assert offset_reset("earliest") == OffsetReset(EARLIEST)
    assert offset_reset("latest") == OffsetReset(LATEST)
    assert offset_reset("by_duration:PT1H") == OffsetReset(BY_DURATION, HOUR_MS)
    assert offset_reset("by_duration:PT0S") == OffsetReset(BY_DURATION, 0)
    # Kafka 4.4 refuses these (its answers in the wire test): a negative duration, an
    # upper-case prefix or value, no duration, none.
    for refused in ("by_duration:-PT1H", "BY_DURATION:PT1H", "Earliest", "by_duration:", "none"):
        assert offset_reset(refused) is None, refused


def _refusal(configs: dict[str, str], settings: Settings | None = None) -> str:
    with pytest.raises(KafkaError) as refused:
        checked(configs, settings or Settings())
    assert refused.value.code == ErrorCode.invalid_config
    return refused.value.message or ""


def test_values_lie_within_the_brokers_share_bounds() -> None:
    assert checked(
        {
            "share.session.timeout.ms": "50000",
            "share.heartbeat.interval.ms": " 6000 ",
            "share.record.lock.duration.ms": "20000",
            "share.isolation.level": "read_committed",
            "share.auto.offset.reset": "by_duration:P1DT2H",
        },
        Settings(),
    ) == {
        "share.session.timeout.ms": 50_000,
        "share.heartbeat.interval.ms": 6_000,
        "share.record.lock.duration.ms": 20_000,
    }
    assert _refusal({"share.record.lock.duration.ms": "14999"}) == (
        "share.record.lock.duration.ms must be in the range 15000 to 60000 inclusive."
    )
    assert _refusal({"share.session.timeout.ms": "61000"}) == (
        "share.session.timeout.ms must be in the range 45000 to 60000 inclusive."
    )
    assert _refusal({"share.heartbeat.interval.ms": "4000"}) == (
        "share.heartbeat.interval.ms must be in the range 5000 to 15000 inclusive."
    )
    # The bounds are the broker's settings.
    wide = Settings(
        group_share_min_record_lock_duration_ms=1_000,
        group_share_min_session_timeout_ms=2_000,
        group_share_min_heartbeat_interval_ms=500,
    )
    assert checked({"share.record.lock.duration.ms": "1000"}, wide) == {
        "share.record.lock.duration.ms": 1_000
    }
    assert checked({"share.session.timeout.ms": "6000"}, wide) == {
        "share.session.timeout.ms": 6_000
    }
    # A session timeout must exceed the heartbeat interval: the group's, else the broker's.
    assert _refusal({"share.session.timeout.ms": "2000"}, wide) == (
        "share.session.timeout.ms must be greater than share.heartbeat.interval.ms"
    )
    assert _refusal(
        {"share.session.timeout.ms": "3000", "share.heartbeat.interval.ms": "3000"}, wide
    ) == ("share.session.timeout.ms must be greater than share.heartbeat.interval.ms")
    # Stored values are loaded as they are, whatever the bounds are now.
    assert checked({"share.record.lock.duration.ms": "1000"}, None) == {
        "share.record.lock.duration.ms": 1_000
    }


def test_strings_are_refused_with_kafkas_messages() -> None:
    assert _refusal({"share.isolation.level": "READ_COMMITTED"}) == (
        "Invalid value READ_COMMITTED for configuration share.isolation.level: String must "
        "be one of: read_committed, read_uncommitted"
    )
    assert _refusal({"share.auto.offset.reset": "by_duration:-PT1H"}) == (
        "Invalid value by_duration:-PT1H for configuration share.auto.offset.reset: Invalid "
        "value `by_duration:-PT1H` for configuration share.auto.offset.reset. The value must "
        "be either 'earliest', 'latest' or of the format 'by_duration:<PnDTnHnMn.nS>'."
    )
    assert _refusal({"share.record.lock.duration.ms": "abc"}) == (
        "Invalid value abc for configuration share.record.lock.duration.ms: Not a number of "
        "type INT"
    )
    assert _refusal({"share.record.lock.duration.ms": "99999999999"}) == (
        "Invalid value 99999999999 for configuration share.record.lock.duration.ms: Not a "
        "number of type INT"
    )


def test_the_brokers_bounds_are_ordered() -> None:
    """Kafka's require on each min/max pair: refused at load with its message."""
    overrides = {
        "group.share.min.session.timeout.ms": "50000",
        "group.share.max.session.timeout.ms": "46000",
    }
    with pytest.raises(SettingsError) as refused:
        load_settings(environ={}, overrides=overrides)
    assert str(refused.value).endswith(
        "group.share.max.session.timeout.ms must be greater than or equal to "
        "group.share.min.session.timeout.ms"
    )


def test_the_delivery_limit_and_record_locks_lie_within_their_bounds() -> None:
    assert checked(
        {
            "share.delivery.count.limit": "10",
            "share.partition.max.record.locks": "100",
            "share.renew.acknowledge.enable": " FALSE ",
        },
        Settings(),
    ) == {"share.delivery.count.limit": 10, "share.partition.max.record.locks": 100}
    assert _refusal({"share.delivery.count.limit": "11"}) == (
        "share.delivery.count.limit must be in the range 2 to 10 inclusive."
    )
    assert _refusal({"share.partition.max.record.locks": "4001"}) == (
        "share.partition.max.record.locks must be in the range 100 to 4000 inclusive."
    )
    # Below the ConfigDef's floor Kafka names the floor, not the broker's bounds.
    assert _refusal({"share.delivery.count.limit": " 1"}) == (
        "Invalid value 1 for configuration share.delivery.count.limit: Value must be at least 2"
    )
    assert _refusal({"share.partition.max.record.locks": "99"}) == (
        "Invalid value 99 for configuration share.partition.max.record.locks: Value must be "
        "at least 100"
    )
    assert _refusal({"share.renew.acknowledge.enable": "yes"}) == (
        "Invalid value yes for configuration share.renew.acknowledge.enable: Expected value "
        "to be either true or false"
    )
    wide = Settings(group_share_max_delivery_count_limit=25)
    assert checked({"share.delivery.count.limit": "25"}, wide) == {"share.delivery.count.limit": 25}


def test_a_dead_letter_topic_may_not_start_with_two_underscores() -> None:
    assert _refusal({"errors.deadletterqueue.topic.name": " __dlq"}) == (
        "errors.deadletterqueue.topic.name: DLQ topic name must not start with '__'"
    )
    assert checked({"errors.deadletterqueue.topic.name": "dlq._x"}, Settings()) == {}


def test_overrides_outside_narrower_bounds_are_capped_when_used() -> None:
    """Kafka's GroupConfig.evaluate: a stored override outside the broker's current
    bounds runs capped to them; the broker's own values are never capped."""
    stored = {
        "share.record.lock.duration.ms": "1000",
        "share.delivery.count.limit": "10",
        "share.partition.max.record.locks": "150",
        "share.session.timeout.ms": "59000",
    }
    defaults = {name: 7 for name in INT_CONFIGS}
    bounds = {name: (200, 5_000) for name in INT_CONFIGS}
    values = share_group_values(stored, defaults, bounds)
    assert (
        values.record_lock_duration_ms,
        values.delivery_count_limit,
        values.partition_max_record_locks,
        values.session_timeout_ms,
        values.heartbeat_interval_ms,
    ) == (1_000, 200, 200, 5_000, 7)
    assert values.renew_enabled
    assert sorted(capped(stored, bounds)) == [
        ("share.delivery.count.limit", 10, "minimum", 200),
        ("share.partition.max.record.locks", 150, "minimum", 200),
        ("share.session.timeout.ms", 59_000, "maximum", 5_000),
    ]
    assert not share_group_values(
        {"share.renew.acknowledge.enable": "False"}, defaults, bounds
    ).renew_enabled


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"group.share.max.delivery.count.limit": "5", "group.share.delivery.count.limit": "6"},
            "group.share.max.delivery.count.limit must be greater than or equal to "
            "group.share.delivery.count.limit",
        ),
        (
            {
                "group.share.min.partition.max.record.locks": "2000",
                "group.share.partition.max.record.locks": "1000",
            },
            "group.share.partition.max.record.locks must be greater than or equal to "
            "group.share.min.partition.max.record.locks",
        ),
        # GroupCoordinatorConfig's three requires on the assignment interval.
        (
            {
                "group.share.min.assignment.interval.ms": "2000",
                "group.share.max.assignment.interval.ms": "1000",
            },
            "group.share.max.assignment.interval.ms must be greater than or equal to "
            "group.share.min.assignment.interval.ms",
        ),
        (
            {"group.share.min.assignment.interval.ms": "2000"},
            "group.share.assignment.interval.ms must be greater than or equal to "
            "group.share.min.assignment.interval.ms",
        ),
        (
            {"group.share.assignment.interval.ms": "15001"},
            "group.share.assignment.interval.ms must be less than or equal to "
            "group.share.max.assignment.interval.ms",
        ),
    ],
)
def test_the_brokers_limits_lie_within_their_bounds(
    overrides: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(environ={}, overrides=overrides)
    assert str(refused.value).endswith(message)


def test_the_assignment_interval_and_assignor_offload() -> None:
    """`share.assignment.interval.ms`: an INT at least 0 within the broker's
    `group.share.min/max.assignment.interval.ms` (0 and 15000); the offload a BOOLEAN."""
    assert checked(
        {"share.assignment.interval.ms": "0", "share.assignor.offload.enable": "FALSE"},
        Settings(),
    ) == {"share.assignment.interval.ms": 0}
    assert _refusal({"share.assignment.interval.ms": "-1"}) == (
        "Invalid value -1 for configuration share.assignment.interval.ms: Value must be at least 0"
    )
    assert _refusal({"share.assignment.interval.ms": "15001"}) == (
        "share.assignment.interval.ms must be in the range 0 to 15000 inclusive."
    )
    assert _refusal({"share.assignor.offload.enable": "1"}) == (
        "Invalid value 1 for configuration share.assignor.offload.enable: Expected value "
        "to be either true or false"
    )
    defaults = {name: 1_000 for name in INT_CONFIGS}
    bounds = {name: (0, 15_000) for name in INT_CONFIGS}
    stored = {"share.assignment.interval.ms": "20000"}
    assert share_group_values(stored, defaults, bounds).assignment_interval_ms == 15_000
    assert share_group_values({}, defaults, bounds).assignment_interval_ms == 1_000
