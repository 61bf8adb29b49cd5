"""A share group's own configs over the wire: DescribeConfigs and IncrementalAlterConfigs
answered as Apache Kafka 4.4 answers them (the same requests to both), and each config
taking effect: the heartbeat interval a member is told, its session expiring, the lock
on the records it acquires, where a new share partition starts (`by_duration:`), how
often a record is delivered, whether a lock may be renewed; and a stored override outside
the bounds of a broker restarted with narrower ones capped to them, as Kafka caps it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from kio.schema.errors import ErrorCode

from harness import kafka_reference
from tests.groups.support import Broker, Wire
from tests.groups.test_share_group_wire import (
    RELEASE,
    RENEW,
    SHARE_ACK,
    _ack,
    _acquired,
    _beat,
    _fetch,
    _one,
    _produce,
    _topic_ids,
)
from tests.support.wait import wait_until

DESCRIBE_CONFIGS, INCREMENTAL_ALTER_CONFIGS, GROUP_RESOURCE = 32, 44, 32
CREATE_TOPICS, SHARE_DESCRIBE = 19, 77
SET, DELETE = 0, 1
SOURCE_DEFAULT = 5
SHARE_CONFIGS = [
    "errors.deadletterqueue.copy.record.enable",
    "errors.deadletterqueue.topic.name",
    "share.assignment.interval.ms",
    "share.assignor.offload.enable",
    "share.auto.offset.reset",
    "share.delivery.count.limit",
    "share.heartbeat.interval.ms",
    "share.isolation.level",
    "share.partition.max.record.locks",
    "share.record.lock.duration.ms",
    "share.renew.acknowledge.enable",
    "share.session.timeout.ms",
]


def _describe(wire: Wire, group: str) -> dict[str, Any]:
    response = wire.call(
        DESCRIBE_CONFIGS,
        4,
        resources=[
            {
                "resource_type": GROUP_RESOURCE,
                "resource_name": group,
                "configuration_keys": SHARE_CONFIGS,
            }
        ],
        include_synonyms=True,
        include_documentation=True,
    )
    (result,) = response.results
    assert result.error_code == ErrorCode.none, result
    return {
        c.name: (
            c.value,
            c.config_source,
            c.config_type,
            c.read_only,
            c.is_sensitive,
            [(s.name, s.value, s.source) for s in c.synonyms],
            c.documentation,
        )
        for c in result.configs
    }


def _alter(wire: Wire, group: str, *changes: tuple[str, int, str | None]) -> tuple[int, Any]:
    response = wire.call(
        INCREMENTAL_ALTER_CONFIGS,
        1,
        resources=[
            {
                "resource_type": GROUP_RESOURCE,
                "resource_name": group,
                "configs": [
                    {"name": n, "config_operation": op, "value": v} for n, op, v in changes
                ],
            }
        ],
        validate_only=False,
    )
    (result,) = response.responses
    return result.error_code, result.error_message


# Alterations of one group, in order: accepted ones change what the next describe shows.
ALTERATIONS: list[tuple[tuple[str, int, str | None], ...]] = [
    (("share.record.lock.duration.ms", SET, "14999"),),
    (("share.record.lock.duration.ms", SET, "60001"),),
    (("share.record.lock.duration.ms", SET, "abc"),),
    (("share.session.timeout.ms", SET, "44000"),),
    (("share.session.timeout.ms", SET, "61000"),),
    (("share.heartbeat.interval.ms", SET, "4000"),),
    (("share.heartbeat.interval.ms", SET, "16000"),),
    (("share.isolation.level", SET, "READ_COMMITTED"),),
    (("share.isolation.level", SET, "bogus"),),
    (("share.auto.offset.reset", SET, "by_duration:-PT1H"),),
    (("share.auto.offset.reset", SET, "BY_DURATION:PT1H"),),
    (("share.auto.offset.reset", SET, "by_duration:"),),
    (("share.auto.offset.reset", SET, "Earliest"),),
    (("share.auto.offset.reset", SET, "by_duration:P1DT2H3M4.5S"),),
    (
        ("share.session.timeout.ms", SET, "50000"),
        ("share.heartbeat.interval.ms", SET, "6000"),
        ("share.record.lock.duration.ms", SET, "20000"),
        ("share.isolation.level", SET, "read_committed"),
        ("share.auto.offset.reset", SET, "by_duration:PT1H"),
    ),
    (("share.record.lock.duration.ms", 2, "1"),),  # APPEND: not a LIST
    (("share.isolation.level", DELETE, None),),
    (("share.record.lock.duration.ms", SET, "999"),),  # below the ConfigDef's floor
    (("share.session.timeout.ms", SET, "0"),),
    (("share.delivery.count.limit", SET, "1"),),
    (("share.delivery.count.limit", SET, "11"),),
    (("share.delivery.count.limit", SET, " 7 "),),
    (("share.partition.max.record.locks", SET, "99"),),
    (("share.partition.max.record.locks", SET, "4001"),),
    (("share.partition.max.record.locks", SET, "150"),),
    (("share.heartbeat.interval.ms", SET, " 6000 "),),
    (("share.renew.acknowledge.enable", SET, "maybe"),),
    (("share.renew.acknowledge.enable", SET, "FALSE"),),
    (("errors.deadletterqueue.topic.name", SET, "__dlq"),),
    (("errors.deadletterqueue.copy.record.enable", SET, "True"),),
    (("share.partition.max.record.locks", DELETE, None),),
    (("share.assignment.interval.ms", SET, "-1"),),
    (("share.assignment.interval.ms", SET, "15001"),),
    (("share.assignment.interval.ms", SET, "1.5"),),
    (("share.assignment.interval.ms", SET, " 500 "),),
    (("share.assignor.offload.enable", SET, "nope"),),
    (("share.assignor.offload.enable", SET, " FALSE "),),
]


def _conversation(port: int) -> list[Any]:
    """Everything a client sees of one group's share configs through the alterations."""
    seen: list[Any] = []
    with Wire(port) as wire:
        seen.append(_describe(wire, "configured"))
        for changes in ALTERATIONS:
            seen.append((changes, _alter(wire, "configured", *changes)))
        seen.append(_settled(wire, "configured"))
    return seen


def _settled(wire: Wire, group: str) -> dict[str, Any]:
    """The group's configs once two reads 0.5 s apart agree (at most 10 s): Kafka's
    broker applies a group config change when the controller's record reaches it, which
    a loaded machine can delay past the next DescribeConfigs."""
    deadline = time.monotonic() + 10
    last = _describe(wire, group)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = _describe(wire, group)
        if now == last:
            break
        last = now
    return last


@pytest.mark.slow  # starts Apache Kafka
def test_share_group_configs_as_apache_kafka_answers(tmp_path: Path) -> None:
    kafka = kafka_reference.start(data_dir=tmp_path / "kafka", timeout=120)
    try:
        expected = _conversation(int(kafka.bootstrap.rsplit(":", 1)[1]))
    finally:
        kafka.stop()
    broker = Broker(tmp_path / "contextplane").start()
    try:
        got = _conversation(broker.port)
    finally:
        broker.stop()
    # One known difference: Kafka 4.4 lists its internal `share.assignor.offload.enable`
    # only once a group overrides it; contextplane lists it with its default too.
    unset = got[0].pop("share.assignor.offload.enable")
    assert unset[:2] == ("true", SOURCE_DEFAULT)
    assert got == expected


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A broker whose own share settings are far longer than any test waits (10 min
    sessions, 1 h locks), with bounds that let a group ask for short ones: what expires
    here within a test's liveness bound does so by the group's configs."""
    process = Broker(
        tmp_path_factory.mktemp("share-configs") / "broker",
        settings={
            "group.share.session.timeout.ms": "600000",
            "group.share.record.lock.duration.ms": "3600000",
            "group.share.min.session.timeout.ms": "1000",
            "group.share.min.heartbeat.interval.ms": "100",
            "group.share.min.record.lock.duration.ms": "1000",
        },
    ).start()
    try:
        with Wire(process.port) as wire:
            response = wire.call(
                CREATE_TOPICS,
                7,
                topics=[
                    {"name": name, "num_partitions": 1, "replication_factor": 1}
                    for name in ("timed", "locked", "dated", "limited", "unrenewed")
                ],
                timeout=10_000,
            )
            assert all(t.error_code == ErrorCode.none for t in response.topics)
        yield process
    finally:
        process.stop()


@pytest.fixture
def wire(broker: Broker) -> Iterator[Wire]:
    with Wire(broker.port) as connection:
        yield connection


def _members(wire: Wire, group: str) -> int:
    described = wire.call(SHARE_DESCRIBE, 1, group_ids=[group], include_authorized_operations=False)
    return len(described.groups[0].members)


def test_heartbeat_interval_and_session_timeout_are_the_groups(broker: Broker, wire: Wire) -> None:
    timed = _topic_ids(wire)["timed"]
    assert _alter(
        wire,
        "timed",
        ("share.session.timeout.ms", SET, "2000"),
        ("share.heartbeat.interval.ms", SET, "500"),
    ) == (ErrorCode.none, None)
    joined = _beat(wire, "timed", "quiet", 0, ["timed"])
    assert joined.error_code == ErrorCode.none
    assert joined.heartbeat_interval.total_seconds() == 0.5
    assert _fetch(wire, "timed", "quiet", 0, _one(timed)).error_code == ErrorCode.none
    _produce(broker, "timed", 1)
    assert _acquired(_fetch(wire, "timed", "quiet", 1, [], wait_ms=5_000)) == [(0, 0, 1)]
    # It never heartbeats again: the group's 2 s session (the broker's is 10 min) ends it.
    wait_until(lambda: _members(wire, "timed") == 0, 60, "the quiet member expired", poll_s=0.2)
    # As in Kafka 4.4, the expiry leaves its share session and its record (locked for the
    # broker's hour) alone; the session's close gives the record to another member.
    assert _beat(wire, "timed", "keen", 0, ["timed"]).error_code == ErrorCode.none
    assert _acquired(_fetch(wire, "timed", "keen", 0, _one(timed))) == []
    assert _ack(wire, "timed", "quiet", -1, []).error_code == ErrorCode.none
    assert _acquired(_fetch(wire, "timed", "keen", 1, [], wait_ms=5_000)) == [(0, 0, 2)]
    # The broker's own interval for a group without configs.
    other = _beat(wire, "untimed", "m", 0, ["timed"])
    assert other.heartbeat_interval.total_seconds() == 5


def test_the_groups_assignment_interval_batches_its_targets(wire: Wire) -> None:
    """Within the group's `share.assignment.interval.ms` of its last target a joiner is
    in the group at the new group epoch but assigned nothing, its epoch the assignment
    epoch; the first heartbeat once the interval allows (here: set to 0) computes it."""
    # a is dealt its partition at once: no interval to wait for before the next target.
    assert _alter(wire, "batched", ("share.assignment.interval.ms", SET, "0")) == (
        ErrorCode.none,
        None,
    )
    a = _beat(wire, "batched", "a", 0, ["timed"])
    assert (a.member_epoch, a.assignment.topic_partitions) == (2, ())  # not initialized yet
    a = _beat(wire, "batched", "a", 2)
    assert (a.member_epoch, len(a.assignment.topic_partitions)) == (3, 1)
    assert _alter(wire, "batched", ("share.assignment.interval.ms", SET, "15000")) == (
        ErrorCode.none,
        None,
    )
    b = _beat(wire, "batched", "b", 0, ["timed"])
    assert (b.error_code, b.member_epoch, b.assignment.topic_partitions) == (0, 3, ())
    described = wire.call(
        SHARE_DESCRIBE, 1, group_ids=["batched"], include_authorized_operations=False
    ).groups[0]
    assert (described.group_epoch, described.assignment_epoch) == (4, 3)
    assert _beat(wire, "batched", "b", 3).assignment is None  # still not due
    assert _alter(wire, "batched", ("share.assignment.interval.ms", SET, "0")) == (
        ErrorCode.none,
        None,
    )
    b = _beat(wire, "batched", "b", 3)
    assert b.member_epoch == 4
    assert [(t.partitions) for t in b.assignment.topic_partitions] == [(0,)]


def test_records_are_locked_for_the_groups_duration(broker: Broker, wire: Wire) -> None:
    locked = _topic_ids(wire)["locked"]
    assert _alter(wire, "lockers", ("share.record.lock.duration.ms", SET, "1000")) == (
        ErrorCode.none,
        None,
    )
    for member in ("a", "b"):
        assert _beat(wire, "lockers", member, 0, ["locked"]).error_code == ErrorCode.none
    opened = _fetch(wire, "lockers", "a", 0, _one(locked))
    assert opened.acquisition_lock_timeout.total_seconds() == 1
    assert _fetch(wire, "lockers", "b", 0, _one(locked)).error_code == ErrorCode.none
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    producer.produce("locked", value=b"job", partition=0)
    assert producer.flush(10) == 0
    assert _acquired(_fetch(wire, "lockers", "a", 1, [], wait_ms=5_000)) == [(0, 0, 1)]
    # a neither acknowledges nor leaves: after the group's 1 s lock (the broker's is an
    # hour) the record is b's, delivered a second time.
    epoch = 1
    again: list[tuple[int, int, int]] = []
    deadline = time.monotonic() + 60
    while not again and time.monotonic() < deadline:
        again = _acquired(_fetch(wire, "lockers", "b", epoch, [], wait_ms=1_000))
        epoch += 1
    assert again == [(0, 0, 2)]


def test_by_duration_starts_at_the_first_record_that_recent(broker: Broker, wire: Wire) -> None:
    dated = _topic_ids(wire)["dated"]
    now_ms = int(time.time() * 1000)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    for age_minutes in (180, 120, 30, 10):  # offsets 0-3
        stamp = now_ms - age_minutes * 60_000
        producer.produce("dated", value=b"x", partition=0, timestamp=stamp)
    assert producer.flush(10) == 0
    for group, reset, first in (("hour", "by_duration:PT1H", 2), ("day", "by_duration:P1D", 0)):
        assert _alter(wire, group, ("share.auto.offset.reset", SET, reset)) == (
            ErrorCode.none,
            None,
        )
        assert _beat(wire, group, "m", 0, ["dated"]).error_code == ErrorCode.none
        assert _acquired(_fetch(wire, group, "m", 0, _one(dated))) == [(first, 3, 1)]
    # Nothing that recent: the end of the log, as latest.
    assert _alter(wire, "minute", ("share.auto.offset.reset", SET, "by_duration:PT1M")) == (
        ErrorCode.none,
        None,
    )
    assert _beat(wire, "minute", "m", 0, ["dated"]).error_code == ErrorCode.none
    assert _acquired(_fetch(wire, "minute", "m", 0, _one(dated))) == []


def _produce_one(broker: Broker, topic: str) -> None:
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    producer.produce(topic, value=b"job", partition=0)
    assert producer.flush(10) == 0


def test_a_record_is_delivered_as_often_as_the_groups_limit(broker: Broker, wire: Wire) -> None:
    """The broker allows 5 deliveries; the group's `share.delivery.count.limit=2`
    archives the record at its second release."""
    limited = _topic_ids(wire)["limited"]
    assert _alter(wire, "twice", ("share.delivery.count.limit", SET, "2")) == (
        ErrorCode.none,
        None,
    )
    assert _beat(wire, "twice", "m", 0, ["limited"]).error_code == ErrorCode.none
    assert _fetch(wire, "twice", "m", 0, _one(limited)).error_code == ErrorCode.none
    _produce_one(broker, "limited")
    assert _acquired(_fetch(wire, "twice", "m", 1, [], wait_ms=5_000)) == [(0, 0, 1)]
    released = _ack(wire, "twice", "m", 2, _one(limited, (0, 0, RELEASE)))
    assert released.responses[0].partitions[0].error_code == ErrorCode.none
    assert _acquired(_fetch(wire, "twice", "m", 3, [])) == [(0, 0, 2)]
    released = _ack(wire, "twice", "m", 4, _one(limited, (0, 0, RELEASE)))
    assert released.responses[0].partitions[0].error_code == ErrorCode.none
    # Archived: nothing is offered again (the broker's own limit would allow 3 more).
    assert _acquired(_fetch(wire, "twice", "m", 5, [])) == []


def test_a_group_without_renew_may_not_renew_a_lock(broker: Broker, wire: Wire) -> None:
    """`share.renew.acknowledge.enable=false`: a RENEW is refused with Kafka's
    INVALID_RECORD_STATE and the record stays acquired, to be acknowledged."""
    unrenewed = _topic_ids(wire)["unrenewed"]
    assert _alter(wire, "no-renew", ("share.renew.acknowledge.enable", SET, "false")) == (
        ErrorCode.none,
        None,
    )
    assert _beat(wire, "no-renew", "m", 0, ["unrenewed"]).error_code == ErrorCode.none
    assert _fetch(wire, "no-renew", "m", 0, _one(unrenewed)).error_code == ErrorCode.none
    _produce_one(broker, "unrenewed")
    assert _acquired(_fetch(wire, "no-renew", "m", 1, [], wait_ms=5_000)) == [(0, 0, 1)]
    renew = wire.call(
        SHARE_ACK,
        2,
        group_id="no-renew",
        member_id="m",
        share_session_epoch=2,
        is_renew_ack=True,
        topics=_one(unrenewed, (0, 0, RENEW)),
    )
    assert renew.responses[0].partitions[0].error_code == ErrorCode.invalid_record_state
    # Allowed again: the same renew is accepted.
    assert _alter(wire, "no-renew", ("share.renew.acknowledge.enable", DELETE, None)) == (
        ErrorCode.none,
        None,
    )
    renew = wire.call(
        SHARE_ACK,
        2,
        group_id="no-renew",
        member_id="m",
        share_session_epoch=3,
        is_renew_ack=True,
        topics=_one(unrenewed, (0, 0, RENEW)),
    )
    assert renew.responses[0].partitions[0].error_code == ErrorCode.none


def test_a_stored_override_is_capped_to_a_restarted_brokers_bounds(tmp_path: Path) -> None:
    """Set within wide bounds, then the broker restarts with Kafka's default ones
    (locks 15-60 s): the group's 2 s lock runs as 15 s, with Kafka's warning, and its
    alteration is checked against the new bounds."""
    process = Broker(
        tmp_path / "broker",
        settings={
            "group.share.min.record.lock.duration.ms": "1000",
            "group.share.max.delivery.count.limit": "25",
        },
    ).start()
    try:
        with Wire(process.port) as wire:
            created = wire.call(
                CREATE_TOPICS,
                7,
                topics=[{"name": "capped", "num_partitions": 1, "replication_factor": 1}],
                timeout=10_000,
            )
            assert created.topics[0].error_code == ErrorCode.none
            assert _alter(
                wire,
                "capped",
                ("share.record.lock.duration.ms", SET, "2000"),
                ("share.delivery.count.limit", SET, "20"),
            ) == (ErrorCode.none, None)
        process.settings = {"group.initial.rebalance.delay.ms": "0"}
        process.restart()
        warnings = "\n".join(process.log_since(0))  # each start logs afresh
        assert (
            "The group config 'share.record.lock.duration.ms' for group 'capped' has value "
            "2000 which is below the broker's allowed minimum 15000. The effective value "
            "will be capped to 15000." in warnings
        )
        assert (
            "The group config 'share.delivery.count.limit' for group 'capped' has value 20 "
            "which exceeds the broker's allowed maximum 10. The effective value will be "
            "capped to 10." in warnings
        )
        with Wire(process.port) as wire:
            capped = _topic_ids(wire)["capped"]
            assert _beat(wire, "capped", "m", 0, ["capped"]).error_code == ErrorCode.none
            opened = _fetch(wire, "capped", "m", 0, _one(capped))
            assert opened.error_code == ErrorCode.none
            assert opened.acquisition_lock_timeout.total_seconds() == 15
            # The stored value stands until altered, and the next alteration is checked
            # against the bounds the broker has now.
            assert _alter(wire, "capped", ("share.delivery.count.limit", SET, "20")) == (
                ErrorCode.invalid_config,
                "share.delivery.count.limit must be in the range 2 to 10 inclusive.",
            )
    finally:
        process.stop()
