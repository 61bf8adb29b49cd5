"""A command whose stdout is closed early (`contextplane completion bash | head`) ends
quietly, as kcat and rpk do: no traceback, exit status 141 (128 + SIGPIPE, what a shell
shows for a C or Go program its pipe closed on). The pipe's read end is closed before the
command starts, so its first write fails, whatever the buffer sizes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.inprocess import InProcessBroker
from tests.support.mirror import create, produce

SIGPIPE_STATUS = 141


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[InProcessBroker]:
    running = InProcessBroker(tmp_path / "broker").start()
    yield running
    running.stop()


def into_closed_pipe(*args: str) -> tuple[int, str]:
    """`contextplane ARGS...` writing into a pipe nobody reads: its status and stderr."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "contextplane.cli.launch", *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write_end)
    return done.returncode, done.stderr


def test_completion_into_a_closed_pipe_ends_quietly() -> None:
    assert into_closed_pipe("completion", "bash") == (SIGPIPE_STATUS, "")


def test_consume_into_a_closed_pipe_ends_quietly(broker: InProcessBroker) -> None:
    create(broker.bootstrap, "lines", 1)
    produce(broker.bootstrap, "lines", 0, 50)
    status, err = into_closed_pipe(
        "consume", "lines", "--from-beginning", "-n", "50", "--bootstrap-server", broker.bootstrap
    )
    assert (status, err) == (SIGPIPE_STATUS, "")
