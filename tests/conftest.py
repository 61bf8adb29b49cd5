from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.broker import BrokerProcess


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    """A fresh broker per test, with fast group joins."""
    process = BrokerProcess(
        tmp_path / "broker", settings={"group.initial.rebalance.delay.ms": "0"}
    ).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def shared_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """One broker for a whole module of tests that use distinct topics."""
    data = tmp_path_factory.mktemp("shared") / "broker"
    process = BrokerProcess(data, settings={"group.initial.rebalance.delay.ms": "0"}).start()
    yield process
    process.stop()
