"""One connection's huge request does not stall the others (issue #8, F6): while a
Metadata for 50,000 made-up topics, a ListOffsets for 100,000 partitions, a
DescribeConfigs for 50,000 topics, a ConsumerGroupDescribe or a DescribeGroups for
200,000 groups is
decoded, handled and encoded, a probe on another connection is still answered (each
held the event loop for seconds before)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from contextplane.protocol.build import build
from contextplane.protocol.codec import request_schema
from tests.hostile.observe import api_versions
from tests.support.broker import BrokerProcess
from tests.support.rawclient import RawClient

METADATA, LIST_OFFSETS, DESCRIBE_CONFIGS, CONSUMER_GROUP_DESCRIBE = 3, 2, 32, 69
DESCRIBE_GROUPS = 15
# A liveness bound for a busy 2-core machine (the probe waited 4-13 s before).
PROBE_GAP_S = 2.5


def _metadata(client: RawClient) -> bytes:
    topics = [{"name": f"absent-{i:06d}", "topic_id": None} for i in range(50_000)]
    body = build(
        request_schema(METADATA, 12),
        topics=topics,
        allow_auto_topic_creation=False,
        include_topic_authorized_operations=False,
    )
    return client.frame(METADATA, 12, body)


def _list_offsets(client: RawClient) -> bytes:
    topics = [
        {
            "name": f"absent-{i}",
            "partitions": [
                {"partition_index": p, "current_leader_epoch": -1, "timestamp": -1}
                for p in range(10)
            ],
        }
        for i in range(10_000)
    ]
    body = build(request_schema(LIST_OFFSETS, 7), replica_id=-1, isolation_level=0, topics=topics)
    return client.frame(LIST_OFFSETS, 7, body)


def _describe_configs(client: RawClient) -> bytes:
    resources = [
        {"resource_type": 2, "resource_name": f"absent-{i}", "configuration_keys": None}
        for i in range(50_000)
    ]
    body = build(
        request_schema(DESCRIBE_CONFIGS, 4),
        resources=resources,
        include_synonyms=True,
        include_documentation=True,
    )
    return client.frame(DESCRIBE_CONFIGS, 4, body)


def _consumer_group_describe(client: RawClient) -> bytes:
    # It held the loop ~5 s when the groups were described in one call.
    body = build(
        request_schema(CONSUMER_GROUP_DESCRIBE, 1),
        group_ids=[f"absent-{i}" for i in range(200_000)],
        include_authorized_operations=True,
    )
    return client.frame(CONSUMER_GROUP_DESCRIBE, 1, body)


def _describe_groups(client: RawClient) -> bytes:
    body = build(
        request_schema(DESCRIBE_GROUPS, 5),
        groups=[f"absent-{i}" for i in range(200_000)],
        include_authorized_operations=True,
    )
    return client.frame(DESCRIBE_GROUPS, 5, body)


class _Probe:
    """ApiVersions on its own connection, over and over: the longest wait for an answer."""

    def __init__(self, bootstrap: str) -> None:
        self._client = RawClient(bootstrap, "probe")
        self._stop = threading.Event()
        self.worst_s = 0.0
        self.failure: str | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.worst_s = max(self.worst_s, api_versions(self._client, timeout_s=60))
                self._stop.wait(0.02)
        except Exception as exc:  # noqa: BLE001 - any failure of the probe is the finding
            self.failure = f"{type(exc).__name__}: {exc}"

    def __enter__(self) -> _Probe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(90)
        self._client.close()


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    process = BrokerProcess(tmp_path_factory.mktemp("loop") / "broker").start()
    try:
        yield process
    finally:
        process.stop()


@pytest.mark.parametrize(
    "request_frame",
    [_metadata, _list_offsets, _describe_configs, _consumer_group_describe, _describe_groups],
)
def test_probe_is_answered_while_a_huge_request_is_served(
    broker: BrokerProcess, request_frame: object
) -> None:
    with RawClient(broker.bootstrap) as client:
        client.sock.settimeout(120)
        frame = request_frame(client)  # type: ignore[operator]
        with _Probe(broker.bootstrap) as probe:
            client.send_raw(frame)
            response = client.read_frame()  # not decoded here: the client stays idle
        assert len(response) > 1000
        assert probe.failure is None, probe.failure
        assert probe.worst_s < PROBE_GAP_S, f"a probe waited {probe.worst_s:.1f} s"
        api_versions(client)
