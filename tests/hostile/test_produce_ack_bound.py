"""A produce whose acknowledgement never comes (a dirty mark or a disk sync that hangs)
is answered all the same: REQUEST_TIMED_OUT once the request's timeout (at least
`ACK_WAIT_MIN_MS`) has passed, as Kafka's purgatory answers acks=all, and the
connection and the broker go on serving."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from contextplane.broker.handlers.produce import ACK_WAIT_MIN_MS
from contextplane.protocol.error_codes import ErrorCode
from contextplane.storage.partition import PartitionLog
from tests.e2e.test_protocol import create, produce
from tests.support.inprocess import InProcessBroker
from tests.support.rawclient import RawClient, record_batch


def test_an_acknowledgement_that_never_comes_is_answered_timed_out(tmp_path: Path) -> None:
    broker = InProcessBroker(tmp_path / "broker").start()
    try:
        with RawClient(broker.bootstrap) as client:
            assert create(client, "stuck").error_code == 0
            assert produce(client, "stuck", record_batch([b"first"])).error_code == 0
            assert broker.broker is not None and broker.broker.storage is not None
            appender = broker.broker.storage._appender
            real = appender._before_ack

            def never(partition: PartitionLog) -> asyncio.Future[None]:
                return asyncio.get_running_loop().create_future()

            appender._before_ack = never
            started = time.monotonic()
            answer = produce(client, "stuck", record_batch([b"stuck"]))  # timeout=5000
            waited = time.monotonic() - started
            assert answer.error_code == ErrorCode.request_timed_out
            assert answer.base_offset == -1
            assert waited >= ACK_WAIT_MIN_MS / 1000 * 0.9
            appender._before_ack = real
            answer = produce(client, "stuck", record_batch([b"after"]))
            assert (answer.error_code, answer.base_offset) == (0, 2)
    finally:
        broker.stop()
