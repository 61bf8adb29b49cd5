"""The Apache Kafka side of a test run twice, against contextplane and against Apache Kafka
4.4, with the same expected answers: the Kafka run shows the expectation is Kafka's own.
It starts a JVM broker (and often the tools' JVMs) for each test, so CI leaves it out
(`long`) and runs the contextplane twin, which asserts the same answers; the full run
(`scripts/test -m "long or not long"`) runs both, as does `-m long` for the Kafka side
alone after a change to an expectation."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

KAFKA_TWIN_MARKS = (pytest.mark.slow, pytest.mark.long)


def kafka_twin(value: Any, id: str = "apache-kafka") -> Any:  # noqa: A002 - pytest's name
    """`value` as the Apache Kafka parameter of a twin test."""
    return pytest.param(value, id=id, marks=KAFKA_TWIN_MARKS)


@contextmanager
def twin_bootstrap(side: str, data_dir: Path) -> Iterator[str]:
    """The bootstrap address of one side of a twin: a contextplane broker
    ("contextplane") or Apache Kafka 4.4 (anything else), stopped after."""
    if side == "contextplane":
        from tests.support.inprocess import InProcessBroker

        broker = InProcessBroker(data_dir / "broker").start()
        try:
            yield broker.bootstrap
        finally:
            broker.stop()
        return
    from harness import kafka_reference

    kafka = kafka_reference.start(data_dir=data_dir / "kafka")
    try:
        yield kafka.bootstrap
    finally:
        kafka.stop()
