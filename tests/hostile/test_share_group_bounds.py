"""What a hostile share consumer (KIP-932) can send: a heartbeat subscribing to 100,000
topic names that do not exist (the assignor compared every name with every other one,
holding the event loop for minutes), a member naming a million (each other member's join
then read them all again: 4 s of the event loop per join); a ShareFetch over batches of
a million tiny records each (every offset read became a Python int, hundreds of MB for one request);
share sessions and members under ids of 1 MiB (each was kept, 2,000 sessions of them:
2 GiB; now refused by the decoder, as Kafka's, which bounds a string at 32,767 bytes).
Another client is answered throughout and the broker's memory stays bounded."""

from __future__ import annotations

import uuid
from typing import Any

from tests.hostile import bombs
from tests.hostile.support import (
    PROBE_ANSWER_S,
    RSS_GROWTH_MAX_MIB,
    Probe,
    create_topic,
    proc_status_kib,
    produce,
    reset_peak_rss,
)
from tests.support.broker import BrokerProcess
from tests.support.rawclient import RawClient

METADATA, SHARE_HEARTBEAT, SHARE_FETCH = 3, 76, 78
SUBSCRIBED_NAMES = 100_000
CROWDED_NAMES, JOINS = 1_000_000, 10
# 10 batches of a million records: under 10 MB of zstd, ten million offsets.
BATCHES, RECORDS_PER_BATCH = 10, 1_000_000
MAX_RECORDS = 500
# Share sessions asked for under 1 MiB member ids: 250 MiB kept before.
HUGE_ID_SESSIONS = 250


def _topic_id(client: RawClient, topic: str) -> uuid.UUID:
    response = client.request(METADATA, 12, topics=None, allow_auto_topic_creation=False)
    return next(t.topic_id for t in response.topics if t.name == topic)


def _share_fetch_fields(
    epoch: int, topic_id: uuid.UUID | None, member_id: str = "member-a"
) -> dict[str, Any]:
    topics = [{"topic_id": topic_id, "partitions": [{"partition_index": 0}]}] if topic_id else []
    return {
        "group_id": "tiny-records",
        "member_id": member_id,
        "share_session_epoch": epoch,
        "max_wait": 0,
        "min_bytes": 1,
        "max_bytes": 50 << 20,
        "max_records": MAX_RECORDS,
        "batch_size": MAX_RECORDS,
        "topics": topics,
        "forgotten_topics_data": [],
    }


def _share_fetch(
    client: RawClient, epoch: int, topic_id: uuid.UUID | None, member_id: str = "member-a"
) -> Any:
    return client.request(SHARE_FETCH, 1, **_share_fetch_fields(epoch, topic_id, member_id))


def test_a_heartbeat_naming_100000_topics_does_not_hold_the_loop(
    hostile_broker: BrokerProcess,
) -> None:
    with RawClient(hostile_broker.bootstrap) as client:
        create_topic(client, "share-probe")
        client.sock.settimeout(300)
        probe = Probe(hostile_broker, "share-probe")
        with probe.running():
            response = client.request(
                SHARE_HEARTBEAT,
                1,
                group_id="wide",
                member_id="member-a",
                member_epoch=0,
                subscribed_topic_names=[f"absent-{i:06d}" for i in range(SUBSCRIBED_NAMES)],
            )
        assert (response.error_code, response.member_epoch) == (0, 2)  # from 1, as Kafka
    assert not probe.failures, probe.failures
    assert probe.latencies and max(probe.latencies) < PROBE_ANSWER_S, max(probe.latencies)


def test_joins_beside_a_member_naming_a_million_topics_are_cheap(
    hostile_broker: BrokerProcess,
) -> None:
    def join(client: RawClient, member: str, names: list[str]) -> Any:
        return client.request(
            SHARE_HEARTBEAT,
            1,
            group_id="crowded",
            member_id=member,
            member_epoch=0,
            subscribed_topic_names=names,
        )

    with RawClient(hostile_broker.bootstrap) as client:
        create_topic(client, "crowded-probe")
        client.sock.settimeout(300)
        names = [f"absent-{i:07d}" for i in range(CROWDED_NAMES)]
        assert join(client, "wide", names).error_code == 0
        probe = Probe(hostile_broker, "crowded-probe")
        with probe.running():
            joined = [join(client, f"member-{i}", ["crowded-probe"]) for i in range(JOINS)]
        assert [j.error_code for j in joined] == [0] * JOINS
        # A new target is computed at most once per share.assignment.interval.ms (1 s, as
        # in Kafka), so how many of the joins it covers depends on their pace (the group
        # starts at epoch 1 and the wide member's join made it 2, as in Kafka).
        epochs = [j.member_epoch for j in joined]
        assert epochs == sorted(epochs) and 2 <= epochs[-1] <= JOINS + 2, epochs
    assert not probe.failures, probe.failures
    assert probe.latencies and max(probe.latencies) < PROBE_ANSWER_S, max(probe.latencies)


def test_a_share_fetch_over_million_record_batches_stays_bounded(
    hostile_broker: BrokerProcess,
) -> None:
    pid = hostile_broker.process.pid  # type: ignore[union-attr]
    batch = bombs.keyless_records(RECORDS_PER_BATCH)
    with RawClient(hostile_broker.bootstrap) as client:
        create_topic(client, "tiny-records")
        topic_id = _topic_id(client, "tiny-records")
        # The share partition starts at the log's end (share.auto.offset.reset=latest).
        opened = _share_fetch(client, 0, topic_id)
        assert opened.error_code == 0
        for _ in range(BATCHES):
            assert produce(client, "tiny-records", batch)[0] == 0
        before = proc_status_kib(pid, "VmRSS")
        reset_peak_rss(pid)
        client.sock.settimeout(120)
        fetched = _share_fetch(client, 1, None)
        growth_mib = (proc_status_kib(pid, "VmHWM") - before) / 1024
    assert fetched.error_code == 0
    acquired = [
        (a.first_offset, a.last_offset, a.delivery_count)
        for t in fetched.responses
        for p in t.partitions
        for a in p.acquired_records
    ]
    assert acquired == [(0, MAX_RECORDS - 1, 1)]
    assert growth_mib < RSS_GROWTH_MAX_MIB, f"peak RSS grew {growth_mib:.0f} MiB"


def test_ids_of_a_mebibyte_are_refused_not_kept(hostile_broker: BrokerProcess) -> None:
    """The decoder refuses them from their length, as Kafka's readers do (a string of at
    most 32,767 bytes), and closes the connection."""
    pid = hostile_broker.process.pid  # type: ignore[union-attr]
    huge = "x" * (1 << 20)
    before = proc_status_kib(pid, "VmRSS")
    reset_peak_rss(pid)
    for index in range(HUGE_ID_SESSIONS):
        # Each would have opened a share session of its own, under its 1 MiB member id.
        with RawClient(hostile_broker.bootstrap) as client:
            client.send(SHARE_FETCH, 1, **_share_fetch_fields(0, None, f"{index}-{huge}"))
            assert client.closed_by_broker(timeout_s=30), index
    for fields in (
        {"group_id": huge, "member_id": "m", "subscribed_topic_names": ["t"]},
        {"group_id": "g", "member_id": huge, "subscribed_topic_names": ["t"]},
        {"group_id": "g", "member_id": "m", "subscribed_topic_names": [huge]},
    ):
        with RawClient(hostile_broker.bootstrap) as client:
            client.send(SHARE_HEARTBEAT, 1, member_epoch=0, **fields)
            assert client.closed_by_broker(timeout_s=30), fields
    growth_mib = (proc_status_kib(pid, "VmRSS") - before) / 1024
    assert growth_mib < RSS_GROWTH_MAX_MIB, f"RSS grew {growth_mib:.0f} MiB"
    with RawClient(hostile_broker.bootstrap) as client:
        assert _share_fetch(client, 0, None, "after-the-refusals").error_code == 0
