"""Topic config values the broker checks before it stores them (Kafka's validators)."""

from __future__ import annotations

import pytest

from contextplane.broker.configs import invalid_topic_config


@pytest.mark.parametrize("value", ["0", "0.5", "1", "1.0", "0.01", " 0.25 "])
def test_a_dirty_ratio_between_zero_and_one_is_accepted(value: str) -> None:
    assert invalid_topic_config("min.cleanable.dirty.ratio", value) is None


@pytest.mark.parametrize("value", ["half", "", "-0.1", "1.5", "2", "nan", "inf"])
def test_a_dirty_ratio_outside_zero_to_one_is_invalid_config(value: str) -> None:
    assert invalid_topic_config("min.cleanable.dirty.ratio", value) == (
        f"Invalid value {value} for configuration min.cleanable.dirty.ratio"
    )
