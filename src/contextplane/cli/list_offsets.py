"""ListOffsets for the CLI's commands (`topic describe`, `group describe`, `group
reset-offsets`), each partition's answer or why there is none, within a bound.

librdkafka's admin ListOffsets, handed a partition whose leader refuses connections (a
broker killed, its lease not lapsed yet, still named leader by Metadata), reconnects to
it without back-off until the request times out: its broker and main threads take a
core between them for the whole timeout (measured: 9.6 s of CPU in 10.3 s). So the
leaders are asked for a TCP connection first, all at once and briefly, and a partition
whose leader does not take one is answered as not answering without a request. The
others are asked one request per leader and offset kind, all in flight together, so a
leader that takes connections but does not answer holds up only its own partitions, for
one timeout.
"""

from __future__ import annotations

import concurrent.futures
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from contextplane.cli.kafka_client import exception_text
from contextplane.clock import SystemClock

# How long a leader has to take a TCP connection before its partitions are not asked.
CONNECT_PROBE_S = 2.0

Key = tuple[str, int]


@dataclass
class Offsets:
    """Per offset kind asked (in the order given), each partition's offset; and for each
    partition without one, why."""

    found: list[dict[Key, int]]
    missing: dict[Key, str] = field(default_factory=dict)


def list_offsets(
    admin: Any, partitions: Sequence[Any], specs: Sequence[Any], timeout_s: float
) -> Offsets:
    """The offsets `specs` name (earliest, latest, for a timestamp) of each of
    `partitions` (TopicPartitions) within about `timeout_s` (the leaders' probe, then
    the requests)."""
    from confluent_kafka import KafkaException

    offsets = Offsets([{} for _ in specs])
    if not partitions:
        return offsets
    clock = SystemClock()
    deadline_ms = clock.monotonic_ms() + timeout_s * 1000
    topics = {tp.topic for tp in partitions}
    # One topic's metadata where one is asked (`topic describe`), else the cluster's.
    metadata = admin.list_topics(next(iter(topics)) if len(topics) == 1 else None, timeout_s)
    by_leader: dict[int, list[Any]] = {}
    for tp in partitions:
        topic = metadata.topics.get(tp.topic)
        partition = topic.partitions.get(tp.partition) if topic is not None else None
        if partition is None:
            offsets.missing[(tp.topic, tp.partition)] = "not in the cluster's metadata"
        elif partition.leader < 0 or partition.leader not in metadata.brokers:
            offsets.missing[(tp.topic, tp.partition)] = "no leader"
        else:
            by_leader.setdefault(partition.leader, []).append(tp)
    taking = listening(
        {node: metadata.brokers[node] for node in by_leader}, min(CONNECT_PROBE_S, timeout_s)
    )
    futures: list[tuple[int, Any, Any]] = []
    for node, led in by_leader.items():
        if node not in taking:
            for tp in led:
                offsets.missing[(tp.topic, tp.partition)] = f"leader {node} not reachable"
            continue
        for index, spec in enumerate(specs):
            left_s = max(0.1, (deadline_ms - clock.monotonic_ms()) / 1000)
            asked = admin.list_offsets({tp: spec for tp in led}, request_timeout=left_s)
            futures += [(index, tp, future) for tp, future in asked.items()]
    for index, tp, future in futures:
        key = (tp.topic, tp.partition)
        # The requests carry the timeout; this bound only outlasts them.
        left_s = max(0.1, (deadline_ms - clock.monotonic_ms()) / 1000) + 5
        try:
            offset = future.result(timeout=left_s).offset
        except concurrent.futures.TimeoutError:
            offsets.missing[key] = f"no answer within {timeout_s:.0f} s"
            continue
        except KafkaException as exc:  # the partition's own error, named
            offsets.missing.setdefault(key, exception_text(exc))
            continue
        if offset == -1001:  # librdkafka's "invalid": the request did not reach the leader
            offsets.missing.setdefault(key, f"no answer within {timeout_s:.0f} s")
        else:
            offsets.found[index][key] = offset
    for found in offsets.found:
        for key in offsets.missing:
            found.pop(key, None)
    return offsets


def listening(brokers: dict[int, Any], timeout_s: float) -> set[int]:
    """The nodes of `brokers` (BrokerMetadata) that take a TCP connection within
    `timeout_s`, all tried at once."""
    if not brokers:
        return set()

    def takes(node: int) -> bool:
        broker = brokers[node]
        try:
            with socket.create_connection((broker.host, broker.port), timeout=timeout_s):
                return True
        except OSError:
            return False

    with concurrent.futures.ThreadPoolExecutor(max_workers=min(len(brokers), 16)) as pool:
        answers = dict(zip(brokers, pool.map(takes, brokers), strict=True))
    return {node for node, took in answers.items() if took}
