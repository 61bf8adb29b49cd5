"""APPEND to a long LIST config costs time in proportion to the items, not their product:
it runs on the event loop, and 100,000 items plus an APPEND of 5,000 once held every
other connection for 6 s (1,000,000 plus 20,000: minutes)."""

from __future__ import annotations

import threading
from types import SimpleNamespace

from contextplane.broker.handlers.configs import APPEND, SUBTRACT, _append_or_subtract
from contextplane.settings import Settings

NAME = "leader.replication.throttled.replicas"


def _change(operation: int, value: str) -> SimpleNamespace:
    return SimpleNamespace(name=NAME, config_operation=operation, value=value)


def test_append_and_subtract_keep_order_and_drop_repeats() -> None:
    current = {NAME: "0:1,1:1"}
    assert _append_or_subtract(current, _change(APPEND, "1:1, 2:1,2:1"), Settings()) == (
        "0:1,1:1,2:1"
    )
    assert _append_or_subtract(current, _change(SUBTRACT, "0:1"), Settings()) == "1:1"


def test_append_to_a_long_list_is_not_quadratic() -> None:
    current = {NAME: ",".join(f"{p}:1" for p in range(200_000))}
    appended = ",".join(f"{p}:2" for p in range(100_000))
    result: list[str] = []
    worker = threading.Thread(
        target=lambda: result.append(
            _append_or_subtract(current, _change(APPEND, appended), Settings())
        ),
        daemon=True,
    )
    worker.start()
    # A liveness bound: linear work takes well under a second; the quadratic version
    # (2 * 10^10 comparisons) takes hours.
    worker.join(60)
    assert result, "APPEND of 100,000 items to 200,000 did not finish within 60 s"
    assert result[0].count(",") == 299_999
