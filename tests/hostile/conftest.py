from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.broker import BrokerProcess


@pytest.fixture(scope="module")
def hostile_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """One broker with default settings for a module of attacks on distinct topics."""
    process = BrokerProcess(tmp_path_factory.mktemp("hostile") / "broker").start()
    yield process
    process.stop()
