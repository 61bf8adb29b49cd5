"""One outage, two log lines: the first failure a WARNING, the recovery an INFO naming
how many tries failed and for how long; the failures between write nothing."""

from __future__ import annotations

import logging

import pytest

from contextplane.clock import ManualClock
from contextplane.failure_episode import FailureEpisode


def test_an_outage_is_logged_once_when_it_begins_and_once_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock()
    episode = FailureEpisode(logging.getLogger("episode"), "lease renewal", "retrying", clock)
    caplog.set_level(logging.INFO, "episode")
    episode.worked()  # nothing was failing: nothing to say
    assert caplog.records == [] and not episode.failing
    for _ in range(5):
        episode.failed(ConnectionError("refused"))
        clock.advance(1_000)
    assert episode.failing and episode.failures == 5
    episode.worked()
    episode.worked()
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert lines == [
        ("WARNING", "lease renewal failed (ConnectionError('refused')); retrying"),
        ("INFO", "lease renewal works again (5 failed tries over 5000 ms)"),
    ]
    # A second outage is a new episode, counted from its own start.
    caplog.clear()
    episode.failed(TimeoutError())
    clock.advance(250)
    episode.worked()
    assert [r.getMessage() for r in caplog.records] == [
        "lease renewal failed (TimeoutError()); retrying",
        "lease renewal works again (1 failed tries over 250 ms)",
    ]
