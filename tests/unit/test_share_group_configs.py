"""A share group's own configs as Kafka 4.4 checks them: `by_duration:` read as Java's
Duration.parse reads it, values within the broker's `group.share.min/max.*`, Kafka's
messages (those of Apache Kafka 4.4 in tests/groups/test_share_group_configs_wire.py)."""

from __future__ import annotations

import pytest

from contextplane.coordinators.consumer_group.group_configs import checked
from contextplane.coordinators.share_group_configs import (
    BY_DURATION,
    EARLIEST,
    LATEST,
    OffsetReset,
    duration_ms,
    offset_reset,
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
