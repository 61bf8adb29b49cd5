"""One connection's expensive requests cannot stall everyone: while other connections
loop (and pipeline) full Metadata requests over 20,000 partitions, a probe on another
connection is still answered promptly. A liveness bound, not a performance claim: the
figures are measured by `bench/metadata_fairness.py`."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from tests.hostile.observe import api_versions
from tests.support.broker import BrokerProcess
from tests.support.rawclient import RawClient
from tests.support.wait import wait_until

METADATA, CREATE_TOPICS, DELETE_TOPICS, CREATE_PARTITIONS = 3, 19, 20, 37
TOPICS, PARTITIONS = 20, 1000


def _create(client: RawClient, names: list[str], partitions: int) -> None:
    client.sock.settimeout(120)
    response = client.request(
        CREATE_TOPICS,
        7,
        topics=[
            {
                "name": name,
                "num_partitions": partitions,
                "replication_factor": -1,
                "assignments": [],
                "configs": [],
            }
            for name in names
        ],
        timeout=60_000,
        validate_only=False,
    )
    assert all(t.error_code == 0 for t in response.topics), response


def _full_metadata(client: RawClient) -> None:
    client.send(
        METADATA,
        12,
        topics=None,
        allow_auto_topic_creation=False,
        include_topic_authorized_operations=False,
    )


@pytest.fixture(scope="module")
def big_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    broker = BrokerProcess(tmp_path_factory.mktemp("fair") / "broker").start()
    with RawClient(broker.bootstrap) as client:
        # Five topics a request: one may create at most 10,000 partitions (Kafka's bound).
        for first in range(0, TOPICS, 5):
            _create(client, [f"t{i}" for i in range(first, first + 5)], PARTITIONS)
    yield broker
    broker.stop()


def test_probe_is_answered_while_others_loop_full_metadata(big_broker: BrokerProcess) -> None:
    stop = threading.Event()
    answered = [0]
    failures: list[BaseException] = []

    def load(pipelined: int) -> None:
        try:
            with RawClient(big_broker.bootstrap) as client:
                client.sock.settimeout(120)
                while not stop.is_set():
                    for _ in range(pipelined):
                        _full_metadata(client)
                    for _ in range(pipelined):
                        client._pending.pop(0)
                        client.read_frame()  # not decoded: the load is on the broker
                        answered[0] += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            failures.append(exc)

    loaders = [threading.Thread(target=load, args=(n,)) for n in (1, 1, 1, 8)]
    for thread in loaders:
        thread.start()
    try:
        with RawClient(big_broker.bootstrap) as probe:
            wait_until(lambda: answered[0] >= 8, 30, "the load starts")
            latencies = []
            for _ in range(20):
                latencies.append(api_versions(probe))
                time.sleep(0.02)  # pacing: samples spread over the load, not a wait
    finally:
        stop.set()
        for thread in loaders:
            thread.join(120)
    assert not failures, failures
    # Before the change the median probe waited seconds behind the Metadata encoding.
    assert sorted(latencies)[len(latencies) // 2] < 0.5, latencies
    assert max(latencies) < 3.0, latencies


def _partition_counts(client: RawClient) -> dict[str, int]:
    response = client.request(
        METADATA,
        12,
        topics=None,
        allow_auto_topic_creation=False,
        include_topic_authorized_operations=False,
    )
    # The broker's internal topics (__consumer_offsets, the audit topics) are not counted.
    return {t.name: len(t.partitions) for t in response.topics if not t.is_internal}


def test_metadata_follows_topic_changes(big_broker: BrokerProcess) -> None:
    with RawClient(big_broker.bootstrap) as client:
        client.sock.settimeout(60)
        assert len(_partition_counts(client)) == TOPICS
        _create(client, ["changing"], 2)
        assert _partition_counts(client)["changing"] == 2
        grown = client.request(
            CREATE_PARTITIONS,
            3,
            topics=[{"name": "changing", "count": 5, "assignments": None}],
            timeout_ms=5000,
            validate_only=False,
        )
        assert grown.results[0].error_code == 0
        assert _partition_counts(client)["changing"] == 5
        named = client.request(
            METADATA,
            12,
            topics=[{"name": "changing"}, {"name": "absent"}],
            allow_auto_topic_creation=False,
            include_topic_authorized_operations=False,
        )
        assert [(t.name, t.error_code, len(t.partitions)) for t in named.topics] == [
            ("changing", 0, 5),
            ("absent", 3, 0),
        ]
        deleted = client.request(DELETE_TOPICS, 6, topics=[{"name": "changing"}], timeout_ms=5000)
        assert deleted.responses[0].error_code == 0
        assert "changing" not in _partition_counts(client)
        _create(client, ["changing"], 1)
        assert _partition_counts(client)["changing"] == 1
