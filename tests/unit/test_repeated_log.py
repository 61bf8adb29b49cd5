"""RepeatedLog: a client reconnecting in a loop gets a few log lines and one summary per
interval, not one line per attempt, and the first failures still show at once."""

from __future__ import annotations

import logging

import pytest

from contextplane.repeated_log import BURST, KEYS_MAX, RepeatedLog

LOGGER = "contextplane.test.repeated"


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    found = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    caplog.clear()
    return found


def test_first_at_once_repeats_summarised_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, LOGGER)
    repeated = RepeatedLog(logging.getLogger(LOGGER), "handshake failures", interval_s=10)
    for attempt in range(1000):
        repeated.event("10.0.0.1", attempt * 0.001, "failed from %s: %s", "10.0.0.1:1", attempt)
    repeated.event("10.0.0.2", 0.5, "failed from %s: %s", "10.0.0.2:1", "x")
    assert lines(caplog) == [
        *(f"failed from 10.0.0.1:1: {n}" for n in range(BURST)),
        "failed from 10.0.0.2:1: x",
    ]
    repeated.flush(5.0)  # the interval has not ended
    assert lines(caplog) == []
    repeated.flush(10.0)
    assert lines(caplog) == [
        f"{1000 - BURST} more handshake failures from 10.0.0.1 in the last 10 s"
    ]
    # A new interval starts with a line at once again.
    repeated.event("10.0.0.1", 30.0, "failed from %s: %s", "10.0.0.1:2", "again")
    assert lines(caplog) == ["failed from 10.0.0.1:2: again"]


def test_many_addresses_share_one_summary(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, LOGGER)
    repeated = RepeatedLog(logging.getLogger(LOGGER), "failures", interval_s=10)
    for n in range(KEYS_MAX + 500):
        repeated.event(f"host-{n}", 1.0, "failed from %s", f"host-{n}")
    assert len(lines(caplog)) == KEYS_MAX
    repeated.flush(11.0)
    assert lines(caplog) == ["500 more failures from other addresses in the last 10 s"]
