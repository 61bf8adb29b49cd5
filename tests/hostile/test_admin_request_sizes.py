"""Operators' admin APIs asked about far more than there is: ElectLeaders naming 450,000
topics with no partitions (a 6 MB frame). Each name was a metadata store read: the
answer began after 44 s, past the time a client waits. Kafka answers each such topic
with an empty result, without looking it up; so does the broker now (9 s, mostly
decoding and encoding), and it keeps answering another client meanwhile."""

from __future__ import annotations

import time

import pytest

from contextplane.protocol.error_codes import ErrorCode
from tests.hostile.support import PROBE_ANSWER_S, Probe, create_topic
from tests.support.broker import BrokerProcess
from tests.support.rawclient import RawClient

ELECT_LEADERS = 43
# Kafka's clients give up on a request after request.timeout.ms (30 s by default).
CLIENT_WAITS_S = 30


@pytest.mark.parametrize(
    "empty_topics",
    [
        20_000,  # CI: the answer's shape, and the other client served meanwhile
        pytest.param(450_000, marks=[pytest.mark.slow, pytest.mark.long]),  # and its time
    ],
)
def test_elect_leaders_for_topics_without_partitions(
    hostile_broker: BrokerProcess, empty_topics: int
) -> None:
    probed = f"elect-probe-{empty_topics}"  # each case its own: the broker is shared
    with RawClient(hostile_broker.bootstrap) as client:
        create_topic(client, probed)
        topics = [{"topic": f"absent-{i:07d}", "partitions": []} for i in range(empty_topics)]
        # A real topic and one that does not exist, with partitions, among them.
        topics += [{"topic": probed, "partitions": [0]}, {"topic": "nx", "partitions": [3]}]
        client.sock.settimeout(300)
        probe = Probe(hostile_broker, probed)
        with probe.running():
            client.send(ELECT_LEADERS, 2, election_type=0, topic_partitions=topics, timeout=1000)
            sent = time.monotonic()
            client.sock.recv(4, 2)  # MSG_PEEK: the answer's first bytes
            answered_s = time.monotonic() - sent
            response = client.receive()
    assert response.error_code == ErrorCode.none
    results = {r.topic: r.partition_result for r in response.replica_election_results}
    assert len(results) == empty_topics + 2
    assert all(results[f"absent-{i:07d}"] == () for i in (0, empty_topics - 1))
    assert [(p.partition_id, p.error_code) for p in results[probed]] == [
        (0, ErrorCode.election_not_needed)
    ]
    assert [(p.partition_id, p.error_code, p.error_message) for p in results["nx"]] == [
        (3, ErrorCode.unknown_topic_or_partition, "No such topic as nx")
    ]
    if empty_topics > 100_000:  # 44 s before each name stopped costing a store read
        assert answered_s < CLIENT_WAITS_S, f"answered after {answered_s:.0f} s"
    assert not probe.failures, probe.failures
    assert probe.latencies and max(probe.latencies) < PROBE_ANSWER_S, max(probe.latencies)
