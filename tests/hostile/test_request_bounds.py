"""What one request may ask for: partitions created (CreateTopics, CreatePartitions),
topics auto-created (Metadata), bytes fetched (Fetch), and partitions listed more than
once (Fetch, Produce). Each bound and answer is Kafka 4.4's, checked against it: its
controller refuses more than 10,000 partitions or 10,000 metadata records per request
with POLICY_VIOLATION, its broker caps a Fetch response at fetch.max.bytes, and it
collects Fetch and Produce partitions into a map keyed by topic-partition."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from conformance import wire
from contextplane.protocol.error_codes import ErrorCode
from tests.hostile.support import PROBE_ANSWER_S, Probe, create_topic, proc_status_kib
from tests.support.broker import BrokerProcess
from tests.support.rawclient import RawClient

INT32_MAX = 2**31 - 1
POLICY_VIOLATION = int(ErrorCode.policy_violation)
TOO_MANY_PARTITIONS = "Excessively large number of partitions per request."
TOO_MANY_RECORDS = "Unable to perform excessively large batch operation."
TOO_MANY_ADDED = "Excessively large number of additional partitions per request."
# A Fetch response is capped here (a small fetch.max.bytes keeps the test cheap).
FETCH_MAX_BYTES = 256 * 1024
# Liveness bound on the broker's RSS growth while a refused request is handled: the
# refused requests used to allocate gigabytes.
RSS_GROWTH_MAX_KIB = 64 * 1024


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    process = BrokerProcess(
        tmp_path_factory.mktemp("bounds") / "broker",
        settings={"fetch.max.bytes": str(FETCH_MAX_BYTES)},
    ).start()
    yield process
    process.stop()


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _answers(response: Any) -> list[tuple[int, str | None]]:
    return [(int(t.error_code), t.error_message) for t in response.topics]


def _create_partitions(
    client: RawClient, counts: list[tuple[str, int]], validate_only: bool
) -> list[tuple[int, str | None]]:
    response = client.request(
        wire.CREATE_PARTITIONS,
        3,
        topics=[{"name": n, "count": c, "assignments": None} for n, c in counts],
        timeout=10000,
        validate_only=validate_only,
    )
    return [(int(r.error_code), r.error_message) for r in response.results]


def _rss_kib(broker: BrokerProcess) -> int:
    assert broker.process is not None
    return proc_status_kib(broker.process.pid, "VmRSS")


def test_create_topics_is_bounded_per_request(broker: BrokerProcess) -> None:
    with RawClient(broker.bootstrap) as client:
        a, b = _name("ct"), _name("ct")
        # Over 10,000 partitions in all: every topic of the request is refused.
        refused = wire.create_topics(
            client, [{"name": a, "partitions": INT32_MAX}, {"name": b}], validate_only=True
        )
        assert _answers(refused) == [(POLICY_VIOLATION, TOO_MANY_PARTITIONS)] * 2
        split = wire.create_topics(
            client,
            [{"name": a, "partitions": 10_000}, {"name": b, "partitions": 1}],
            validate_only=True,
        )
        assert _answers(split) == [(POLICY_VIOLATION, TOO_MANY_PARTITIONS)] * 2
        # 10,000 partitions pass the partition bound, but with the topic's own record
        # they are 10,001 metadata records: Kafka's batch bound.
        at_bound = wire.create_topics(
            client, [{"name": a, "partitions": 10_000}], validate_only=True
        )
        assert _answers(at_bound) == [(POLICY_VIOLATION, TOO_MANY_RECORDS)]
        fits = wire.create_topics(client, [{"name": a, "partitions": 9_999}], validate_only=True)
        assert _answers(fits) == [(0, None)]
        # Not validate_only: nothing is created, and memory stays flat.
        with Probe(broker, _probe_topic(client)).running() as probe:
            before = _rss_kib(broker)
            real = wire.create_topics(client, [{"name": a, "partitions": INT32_MAX}])
            assert _answers(real) == [(POLICY_VIOLATION, TOO_MANY_PARTITIONS)]
            assert _rss_kib(broker) - before < RSS_GROWTH_MAX_KIB
        _assert_probe_answered(probe)
        missing = wire.metadata(client, [a])
        assert int(missing.topics[0].error_code) == int(ErrorCode.unknown_topic_or_partition)


def test_create_partitions_is_bounded_per_request(broker: BrokerProcess) -> None:
    with RawClient(broker.bootstrap) as client:
        a, b = _name("cp"), _name("cp")
        assert _answers(wire.create_topics(client, [{"name": a}, {"name": b}])) == [(0, None)] * 2
        # 10,000 partitions added is the bound, 10,001 is over it, over the whole request.
        assert _create_partitions(client, [(a, 10_001)], True) == [(0, None)]
        assert _create_partitions(client, [(a, 10_002)], True) == [
            (POLICY_VIOLATION, TOO_MANY_ADDED)
        ]
        assert (
            _create_partitions(client, [(a, 5_001), (b, 5_002)], True)
            == [(POLICY_VIOLATION, TOO_MANY_ADDED)] * 2
        )
        before = _rss_kib(broker)
        assert _create_partitions(client, [(a, INT32_MAX)], False) == [
            (POLICY_VIOLATION, TOO_MANY_ADDED)
        ]
        assert _rss_kib(broker) - before < RSS_GROWTH_MAX_KIB
        assert len(wire.metadata(client, [a]).topics[0].partitions) == 1


def test_metadata_auto_creates_at_most_one_batch(broker: BrokerProcess) -> None:
    prefix = _name("auto")
    with RawClient(broker.bootstrap) as client:
        # 5,001 one-partition topics are 10,002 metadata records: Kafka's controller
        # refuses the CreateTopics its broker sends, and none is created.
        over = [f"{prefix}-x{i}" for i in range(5_001)]
        answered = wire.metadata(client, over, auto_create=True)
        codes = Counter(int(t.error_code) for t in answered.topics)
        assert codes == {int(ErrorCode.unknown_topic_or_partition): 5_001}
        still = wire.metadata(client, over[:10])
        assert all(t.error_code == ErrorCode.unknown_topic_or_partition for t in still.topics)
        # 5,000 is what one request may create: all of them, in one metadata transaction,
        # while another connection is answered.
        fits = [f"{prefix}-y{i}" for i in range(5_000)]
        with Probe(broker, _probe_topic(client)).running() as probe:
            created = wire.metadata(client, fits, auto_create=True)
        _assert_probe_answered(probe)
        assert Counter(int(t.error_code) for t in created.topics) == {0: 5_000}
        assert {t.name for t in wire.metadata(client, fits[-3:]).topics} == set(fits[-3:])


def test_fetch_response_is_capped_by_fetch_max_bytes_and_lists_a_partition_once(
    broker: BrokerProcess,
) -> None:
    topic = _name("fetch")
    partitions = 4
    value = b"v" * (150 * 1024)
    with RawClient(broker.bootstrap) as client:
        assert wire.create_topic(client, topic, partitions).error_code == 0
        assert wire.wait_for_topic(client, topic, partitions)
        for index in range(partitions):
            for _ in range(2):
                part = wire.produce(client, topic, wire.encode_batch([value]), partition=index)
                assert part.error_code == 0
        # Each partition once, max_bytes and partition_max_bytes at 2^31-1: fetch.max.bytes
        # caps the response (one 150 KiB batch of partition 0; KIP-74's first batch).
        once = wire.fetch(
            client, [(topic, i, 0, INT32_MAX) for i in range(partitions)], max_bytes=INT32_MAX
        )
        read = [len(wire.decode_batches(p.records)) for t in once.responses for p in t.partitions]
        assert read == [1, 0, 0, 0]
        # Every partition listed 10 times: each answered once, the same cap.
        wanted = [(topic, i, 0, INT32_MAX) for _ in range(10) for i in range(partitions)]
        response = wire.fetch(client, wanted, max_bytes=INT32_MAX)
        entries = [p for t in response.responses for p in t.partitions]
        assert [p.partition_index for p in entries] == list(range(partitions))
        sizes = [len(p.records or b"") for p in entries]
        # fetch.max.bytes caps the response: here one 150 KiB batch of partition 0.
        assert 0 < sum(sizes) <= FETCH_MAX_BYTES, sizes
        assert [len(wire.decode_batches(p.records)) for p in entries] == [1, 0, 0, 0]
        # The last entry of a partition listed twice is the one read (Kafka's map).
        twice = wire.fetch(client, [(topic, 1, 0), (topic, 1, 1)], max_bytes=INT32_MAX)
        (only,) = twice.responses[0].partitions
        assert [b.base_offset for b in wire.decode_batches(only.records)] == [1]
        # A batch larger than fetch.max.bytes still comes back alone: consumers progress.
        big = _name("fetch-big")
        create_topic(client, big)
        large = wire.encode_batch([b"w" * (FETCH_MAX_BYTES + 100_000)])
        assert wire.produce(client, big, large).error_code == 0
        alone = wire.fetch_one(client, big, 0, max_bytes=INT32_MAX, partition_max_bytes=1)
        assert len(wire.decode_batches(alone.records)) == 1


def test_produce_appends_a_partition_listed_many_times_once(broker: BrokerProcess) -> None:
    topic = _name("produce")
    with RawClient(broker.bootstrap) as client:
        create_topic(client, topic)
        batches = [wire.encode_batch([b"%d" % i]) for i in range(2_000)]
        response = client.request(
            wire.PRODUCE,
            9,
            transactional_id=None,
            acks=-1,
            timeout=10000,
            topic_data=[
                {
                    "name": topic,
                    "partition_data": [{"index": 0, "records": b} for b in batches],
                }
            ],
        )
        (answer,) = [p for t in response.responses for p in t.partition_responses]
        assert (answer.index, answer.error_code, answer.base_offset) == (0, 0, 0)
        assert wire.list_offsets(client, topic, -1, 0).offset == 1
        (read,) = wire.decode_batches(wire.fetch_one(client, topic, 0).records)
        assert read.records[0]["value"] == "1999"  # the last entry, as Kafka's map keeps


def _probe_topic(client: RawClient) -> str:
    topic = _name("probe")
    create_topic(client, topic)
    return topic


def _assert_probe_answered(probe: Probe) -> None:
    assert not probe.failures, probe.failures
    assert probe.latencies, "the probe never got an answer"
    assert max(probe.latencies) < PROBE_ANSWER_S, f"probe waited {max(probe.latencies):.2f}s"
