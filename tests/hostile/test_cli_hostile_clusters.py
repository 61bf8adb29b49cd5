"""The CLI against a cluster that answers slowly on purpose: a source whose Metadata
answer to `contextplane mirror` comes a byte at a time (each byte well within the
per-read timeout) is given up on at the request's deadline, as Kafka's clients do at
request.timeout.ms, with a message naming the source, instead of being waited on for
as long as it trickles."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from contextplane.cli.wire import REQUEST_TIMEOUT_S
from tests.hostile.trickling_proxy import TricklingProxy
from tests.support.cli import one_error_line
from tests.support.inprocess import InProcessBroker
from tests.support.mirror import create, mirror_once, produce, two_brokers

METADATA = 3


@pytest.fixture
def brokers(tmp_path: Path) -> Iterator[tuple[InProcessBroker, InProcessBroker]]:
    with two_brokers(tmp_path) as pair:
        yield pair


def test_mirror_gives_up_on_a_source_that_trickles_its_answer(
    brokers: tuple[InProcessBroker, InProcessBroker],
) -> None:
    source, target = brokers
    create(source.bootstrap, "orders", 1)
    produce(source.bootstrap, "orders", 0, 3)
    proxy = TricklingProxy(source.bootstrap, METADATA, b"contextplane-mirror", gap_s=0.5)
    try:
        # The answer trickles for over a minute; the liveness bound is well past the
        # request's deadline and well short of the trickle's end.
        run = mirror_once(
            proxy.bootstrap, target.bootstrap, "orders", timeout_s=REQUEST_TIMEOUT_S + 25
        )
    finally:
        proxy.close()
    assert proxy.trickled.is_set()
    error = one_error_line(run)
    assert "source" in error and proxy.bootstrap in error, error
    assert "no complete answer" in error, error
