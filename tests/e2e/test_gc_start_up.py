"""The broker process freezes what start-up loaded out of the collector's scans."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.broker import BrokerProcess


def test_the_broker_freezes_its_start_up_heap(tmp_path: Path) -> None:
    broker = BrokerProcess(tmp_path / "broker").start()
    try:
        found = re.search(r"garbage collector: (\d+) start-up objects frozen", broker.log_tail(200))
    finally:
        broker.stop()
    assert found is not None
    assert int(found.group(1)) > 10_000  # imports alone leave more than this
