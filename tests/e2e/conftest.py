"""Fixtures shared by the end-to-end tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.inprocess import InProcessBroker


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., InProcessBroker]]:
    """Start in-process brokers with the given settings (each in its own directory); all
    are stopped when the test ends."""
    started: list[InProcessBroker] = []

    def starter(**settings: str) -> InProcessBroker:
        broker = InProcessBroker(tmp_path / f"broker{len(started)}", settings=settings).start()
        started.append(broker)
        return broker

    yield starter
    for broker in started:
        broker.stop()
