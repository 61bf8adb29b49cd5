"""A failed round of a background job: an outage of a service the broker depends on is one
log line; any other failure keeps its traceback, which is what finds the bug."""

from __future__ import annotations

import asyncio
import logging

import pytest

from contextplane.metadata.store import MetadataStoreUnavailable
from contextplane.tasks import repeat_every

log = logging.getLogger("round-failures")


def rounds_logged(failure: Exception, caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    rounds = 0

    async def job() -> None:
        nonlocal rounds
        rounds += 1
        raise failure

    async def main() -> None:
        task = asyncio.create_task(repeat_every(0.001, job, "test pass", log))
        while rounds < 3:
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with caplog.at_level(logging.WARNING, logger=log.name):
        asyncio.run(main())
    return [r for r in caplog.records if r.name == log.name]


def test_an_outage_is_one_line_per_round(caplog: pytest.LogCaptureFixture) -> None:
    lines = rounds_logged(MetadataStoreUnavailable("no answer within 5000 ms"), caplog)
    assert len(lines) >= 3
    assert all(r.exc_info is None for r in lines)
    assert lines[0].getMessage() == "test pass failed: no answer within 5000 ms"


def test_a_bug_keeps_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    lines = rounds_logged(KeyError("surprise"), caplog)
    assert len(lines) >= 3
    assert all(r.exc_info is not None for r in lines)
