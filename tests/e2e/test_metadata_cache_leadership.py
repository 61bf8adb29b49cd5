"""Metadata of many partitions: a leadership change (here, claiming a new topic's
partition) re-encodes only the topics whose leadership it changed, not every topic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conformance import wire
from contextplane.broker.metadata_cache import MetadataCache
from contextplane.metadata.records import TopicRecord
from tests.support.inprocess import InProcessBroker
from tests.support.rawclient import RawClient

BIG = 2_000


def test_creating_a_topic_re_encodes_only_its_own_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoded: list[str] = []
    encode = MetadataCache._encode

    def counted(
        self: MetadataCache, version: int, zone: str, build: Any, records: list[TopicRecord]
    ) -> None:
        encoded.extend(r.name for r in records)
        encode(self, version, zone, build, records)

    monkeypatch.setattr(MetadataCache, "_encode", counted)
    broker = InProcessBroker(tmp_path).start()
    try:
        with RawClient(broker.bootstrap) as client:
            client.sock.settimeout(60)
            wire.create_topic(client, "big", BIG)
            assert wire.wait_for_topic(client, "big", BIG, timeout=60)
            wire.metadata(client, None)  # every topic's entry is cached now
            encoded.clear()
            wire.create_topic(client, "small", 1)
            assert wire.wait_for_topic(client, "small", 1)
            response = wire.metadata(client, None)
    finally:
        broker.stop()
    assert set(encoded) == {"small"}, f"{len(encoded)} topic entries encoded: {set(encoded)}"
    big = next(t for t in response.topics if t.name == "big")
    assert len(big.partitions) == BIG
    assert all(p.error_code == 0 and p.leader_id >= 0 for p in big.partitions)
