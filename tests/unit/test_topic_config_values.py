"""Topic config values the broker checks before it stores them (Kafka's validators)."""

from __future__ import annotations

import pytest

from contextplane.broker.configs import (
    INTEGER_CONFIGS,
    TOPIC_CONFIGS,
    checked_topic_config,
    invalid_topic_config,
    is_true,
)
from contextplane.java_numbers import java_double, stored_double, stored_int
from contextplane.settings import Settings
from contextplane.storage.cleaner import cleaner_config


@pytest.mark.parametrize("value", ["0", "0.5", "1", "1.0", "0.01", " 0.25 "])
def test_a_dirty_ratio_between_zero_and_one_is_accepted(value: str) -> None:
    assert invalid_topic_config("min.cleanable.dirty.ratio", value) is None


@pytest.mark.parametrize(
    "value",
    # Java's Double.parseDouble takes a d/f suffix, hexadecimal, NaN (which Range.between
    # lets through); float() refused them.
    ["0.5d", "0.5F", "0x1p-1", ".5e0", "NaN", "-0.0", "1e-99999"],
)
def test_a_dirty_ratio_java_reads_is_accepted_and_read_by_the_cleaner(value: str) -> None:
    assert invalid_topic_config("min.cleanable.dirty.ratio", value) is None
    ratio = cleaner_config({"min.cleanable.dirty.ratio": value}, Settings())
    assert ratio.min_cleanable_dirty_ratio == java_double(value) or value == "NaN"


@pytest.mark.parametrize(
    "value",
    # float() took '_', Unicode digits and spaces, "nan" and "inf"; Java does not.
    ["half", "", "-0.1", "1.5", "2", "nan", "inf", "0.2_5", "\uff10.\uff15", "\u20030.5"],
)
def test_a_dirty_ratio_outside_zero_to_one_is_invalid_config(value: str) -> None:
    assert invalid_topic_config("min.cleanable.dirty.ratio", value) == (
        f"Invalid value {value} for configuration min.cleanable.dirty.ratio"
    )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "retention.ms",
            "1_000",
            "Invalid value 1_000 for configuration retention.ms: Not a number of type LONG",
        ),
        (
            "retention.ms",
            "-2",
            "Invalid value -2 for configuration retention.ms: Value must be at least -1",
        ),
        # Below the floor the number is named as parsed, as Kafka's Range validator names it.
        (
            "retention.ms",
            " -02 ",
            "Invalid value -2 for configuration retention.ms: Value must be at least -1",
        ),
        (
            "segment.bytes",
            "2147483648",
            "Invalid value 2147483648 for configuration segment.bytes: Not a number of type INT",
        ),
        (
            "min.insync.replicas",
            "0",
            "Invalid value 0 for configuration min.insync.replicas: Value must be at least 1",
        ),
        (
            "max.compaction.lag.ms",
            "1 0",
            "Invalid value 1 0 for configuration max.compaction.lag.ms: Not a number of type LONG",
        ),
    ],
)
def test_integer_configs_are_read_as_java_reads_them(name: str, value: str, message: str) -> None:
    assert invalid_topic_config(name, value) == message


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("retention.ms", " 1000\t"),
        ("retention.ms", "-1"),
        ("retention.bytes", "+5"),
        ("retention.ms", "\u0661\u0662"),
        ("segment.bytes", "1048576"),
    ],
)
def test_integer_configs_java_accepts_are_accepted(name: str, value: str) -> None:
    assert invalid_topic_config(name, value) is None


def test_every_integer_config_is_a_topic_config() -> None:
    assert set(INTEGER_CONFIGS) <= set(TOPIC_CONFIGS)


def test_leading_zeros_past_pythons_digit_limit_are_read_as_java_reads_them() -> None:
    assert invalid_topic_config("retention.ms", "0" * 5000 + "7") is None
    assert invalid_topic_config("retention.ms", "-" + "9" * 5000) is not None


def test_a_stored_integer_is_read_as_it_was_checked() -> None:
    """int() refuses leading zeros past Python's digit limit that the checks accept."""
    accepted = "0" * 5000 + "7"
    assert invalid_topic_config("segment.ms", accepted) is None
    assert stored_int(accepted) == 7
    assert stored_int("\u0661\u0662") == 12
    assert stored_int(604800000) == 604800000
    # Stored before the checks were Java's: read as then.
    assert stored_int("1_000") == 1000
    assert stored_double("0.2_5") == 0.25
    with pytest.raises(ValueError):
        stored_int("ten")


@pytest.mark.parametrize("value", ["TRUE", "False", " true "])
def test_a_boolean_in_any_case_is_accepted_and_read_as_kafka_reads_it(value: str) -> None:
    """Kafka's BOOLEAN is true or false in any case: unclean.leader.election.enable was
    checked as a choice of lower case, and a dead-letter topic's
    errors.deadletterqueue.group.enable=TRUE was accepted but read as false."""
    for name in ("unclean.leader.election.enable", "errors.deadletterqueue.group.enable"):
        assert invalid_topic_config(name, value) is None
        stored = checked_topic_config(name, value)
        assert is_true(stored) == (value.strip().lower() == "true")
