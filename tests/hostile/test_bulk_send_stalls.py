"""Clients that ask for large fetches and never read their sockets cannot hold the bulk
sender's threads (broker/bulk_sender.py): with one thread and two such clients, a third
client's large fetch is answered at once, through the thread, and the two get the rest
of their responses from the loop's path, which their not reading does not block."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from conformance import wire
from tests.hostile.observe import api_versions
from tests.hostile.support import MIB, create_topic
from tests.hostile.test_slow_consumer_memory import _send_large_fetch
from tests.support.broker import BrokerProcess
from tests.support.rawclient import RawClient
from tests.support.wait import wait_until

VALUE_BYTES = 900 * 1024
BATCHES = 16  # ~14 MiB, every fetch below asks for all of it
ANSWER_S = 30


def _probes(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line) for line in lines if line.endswith("}")]


def test_clients_that_never_read_do_not_hold_the_send_threads(tmp_path: Path) -> None:
    probes = tmp_path / "probes.jsonl"
    broker = BrokerProcess(
        tmp_path / "broker",
        settings={"response.send.threads": "1", "debug.probe.file": str(probes)},
    ).start()
    slow: list[RawClient] = []
    try:
        topic = "stalls"
        with RawClient(broker.bootstrap) as client:
            create_topic(client, topic)
            for _ in range(BATCHES):
                part = wire.produce(client, topic, wire.encode_batch([b"v" * VALUE_BYTES]))
                assert part.error_code == 0, part

        def uploaded() -> bool:
            lines = _probes(probes)
            counts = lines[-1].get("object_store", {}) if lines else {}
            return counts.get("upload_object_bytes", 0) >= BATCHES * VALUE_BYTES

        wait_until(uploaded, ANSWER_S, "every produced batch uploaded")
        for _ in range(2):
            client = RawClient(broker.bootstrap)
            client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            _send_large_fetch(client, topic)
            slow.append(client)

        with RawClient(broker.bootstrap) as other:
            other.sock.settimeout(ANSWER_S)
            api_versions(other, timeout_s=ANSWER_S)
            read = wire.fetch_one(other, topic, 0, partition_max_bytes=64 * MIB)
            assert read.error_code == 0, read
            assert len(read.records) >= BATCHES * VALUE_BYTES, len(read.records)
    finally:
        for client in slow:
            client.close()
        broker.stop()
    log = broker.log_tail(400)
    assert "Traceback" not in log, log
