"""`contextplane group reset-offsets` by duration, by shift, to the current offset and
for all the group's topics, and `contextplane consume` of chosen partitions and from a
time, run as a user runs them against a contextplane broker process and against Apache
Kafka 4.4 from the harness, with the same expected offsets and records on both: the
commands are clients of any Kafka cluster. On Apache Kafka, Kafka's own
kafka-consumer-groups.sh is asked the same dry runs and must plan the same offsets."""

from __future__ import annotations

import datetime
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from contextplane.clock import SystemClock
from harness import kafka_reference
from tests.support.broker import BrokerProcess, free_port
from tests.support.cli import Run, contextplane, one_error_line
from tests.support.kafka_tools import kafka_tool_command
from tests.support.wait import wait_until

HOUR_MS = 3_600_000
# The time the records are stamped relative to, taken once: a reset by duration counts
# back from the command's own now, which is later by the test's run time (seconds), far
# less than the half hour between a duration asked and the nearest record.
NOW_MS = SystemClock().wall_ms()


@dataclass(frozen=True)
class Cluster:
    kind: str  # "contextplane" or "kafka"
    bootstrap: str


@pytest.fixture(
    scope="module", params=["contextplane", pytest.param("kafka", marks=pytest.mark.slow)]
)
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    if request.param == "contextplane":
        data = tmp_path_factory.mktemp("cli-reset") / "data"
        settings = {"auto.create.topics.enable": "false", "group.initial.rebalance.delay.ms": "0"}
        broker = BrokerProcess(data, settings=settings).start()
        yield Cluster("contextplane", broker.bootstrap)
        broker.stop()
    else:
        kafka = kafka_reference.start(data_dir=tmp_path_factory.mktemp("kafka"), timeout=180)
        yield Cluster("kafka", kafka.bootstrap)
        kafka.stop()


def create(bootstrap: str, name: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(30)


def produce(bootstrap: str, topic: str, records: list[tuple[int, int]]) -> None:
    """(partition, timestamp ms) per record; values `p<partition>-<n>`."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for n, (partition, timestamp) in enumerate(records):
        producer.produce(
            topic, f"p{partition}-{n}".encode(), partition=partition, timestamp=timestamp
        )
    assert producer.flush(30) == 0


def commit(bootstrap: str, group: str, offsets: dict[tuple[str, int], int]) -> None:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    to_commit = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]

    def committed_once() -> bool:
        try:  # a coordinator just elected (Kafka's first group) answers NOT_COORDINATOR
            consumer.commit(offsets=to_commit, asynchronous=False)
        except Exception:  # noqa: BLE001 - retried until the bound below
            return False
        return True

    wait_until(committed_once, 60, f"group {group} commits")
    consumer.close()


def committed(bootstrap: str, group: str) -> dict[tuple[str, int], int]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    request = [ConsumerGroupTopicPartitions(group)]
    result = admin.list_consumer_group_offsets(request)[group].result(30)
    return {(tp.topic, tp.partition): tp.offset for tp in result.topic_partitions}


def reset(bootstrap: str, group: str, *how: str) -> Run:
    return contextplane("group", "reset-offsets", group, *how, "--bootstrap-server", bootstrap)


def planned(bootstrap: str, group: str, *how: str) -> dict[tuple[str, int], int]:
    document = reset(bootstrap, group, *how, "--output", "json").json()
    return {(o["topic"], o["partition"]): o["offset"] for o in document["offsets"]}


@pytest.fixture(scope="module")
def loaded(cluster: Cluster) -> str:
    """clicks-0: five records an hour apart, the last an hour ago; clicks-1: three records
    ten hours ago; views-0: four records now. Group `analytics` has committed clicks-0 at
    4, clicks-1 at 1 and views-0 at 2."""
    bootstrap = cluster.bootstrap
    create(bootstrap, "clicks", 2)
    create(bootstrap, "views", 1)
    produce(
        bootstrap,
        "clicks",
        [(0, NOW_MS - (5 - i) * HOUR_MS) for i in range(5)] + [(1, NOW_MS - 10 * HOUR_MS)] * 3,
    )
    produce(bootstrap, "views", [(0, NOW_MS)] * 4)
    commit(bootstrap, "analytics", {("clicks", 0): 4, ("clicks", 1): 1, ("views", 0): 2})
    return bootstrap


def test_reset_by_shift_duration_and_for_all_topics_moves_the_same_offsets(loaded: str) -> None:
    start = {("clicks", 0): 4, ("clicks", 1): 1, ("views", 0): 2}
    assert committed(loaded, "analytics") == start
    # Every partition the group committed, shifted back 3: below the log start is the start.
    assert planned(loaded, "analytics", "--all-topics", "--shift-by", "-3") == {
        ("clicks", 0): 1,
        ("clicks", 1): 0,
        ("views", 0): 0,
    }
    assert committed(loaded, "analytics") == start  # a dry run
    table = reset(loaded, "analytics", "--all-topics", "--shift-by", "-3", "--dry-run")
    assert table.rows() == [
        ["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"],
        ["analytics", "clicks", "0", "1"],
        ["analytics", "clicks", "1", "0"],
        ["analytics", "views", "0", "0"],
    ]
    assert committed(loaded, "analytics") == start
    # Forward past the log end: the end.
    executed = reset(loaded, "analytics", "--all-topics", "--shift-by", "10", "--execute")
    assert executed.status == 0, executed.err
    assert committed(loaded, "analytics") == {
        ("clicks", 0): 5,
        ("clicks", 1): 3,
        ("views", 0): 4,
    }
    # Two and a half hours back: clicks-0's record of two hours ago (offset 3); clicks-1
    # has none that late, so its log end; views is not in scope.
    planned_by_duration = planned(
        loaded, "analytics", "--topic", "clicks", "--by-duration", "PT2H30M", "--execute"
    )
    assert planned_by_duration == {("clicks", 0): 3, ("clicks", 1): 3}
    assert committed(loaded, "analytics") == {
        ("clicks", 0): 3,
        ("clicks", 1): 3,
        ("views", 0): 4,
    }
    # A day back: every record is that late, so each partition's first.
    assert planned(loaded, "analytics", "--topic", "clicks", "--by-duration", "P1D") == {
        ("clicks", 0): 0,
        ("clicks", 1): 0,
    }
    # A negative duration is a time to come, as Duration.parse reads it: the log ends
    # (argparse takes a value starting with "-" after "=").
    assert planned(loaded, "analytics", "--topic", "clicks", "--by-duration=-PT1H") == {
        ("clicks", 0): 5,
        ("clicks", 1): 3,
    }
    # Several --topic, one with chosen partitions.
    several = ("--topic", "clicks:1", "--topic", "views", "--shift-by", "-2", "--execute")
    assert planned(loaded, "analytics", *several) == {("clicks", 1): 1, ("views", 0): 2}
    assert planned(loaded, "analytics", "--all-topics", "--to-current") == {
        ("clicks", 0): 3,
        ("clicks", 1): 1,
        ("views", 0): 2,
    }


def test_a_shift_needs_a_committed_offset_and_an_unknown_group_is_reset(loaded: str) -> None:
    commit(loaded, "half", {("clicks", 0): 2})
    shifted = reset(loaded, "half", "--topic", "clicks", "--shift-by", "1")
    assert one_error_line(shifted, status=2) == (
        "contextplane group reset-offsets: Cannot shift offset for partition clicks-1 since "
        "there is no current committed offset"
    )
    # To the current offset: the log end where the group has none, as Kafka's tool.
    assert planned(loaded, "half", "--topic", "clicks", "--to-current") == {
        ("clicks", 0): 2,
        ("clicks", 1): 3,
    }
    # A group that does not exist (Dead) is given offsets, as Kafka's tool gives them.
    assert planned(loaded, "newcomer", "--all-topics", "--to-earliest", "--execute") == {}
    assert planned(loaded, "newcomer", "--topic", "views", "--to-latest", "--execute") == {
        ("views", 0): 4
    }
    assert committed(loaded, "newcomer") == {("views", 0): 4}


def test_a_group_with_a_member_is_refused_with_kafkas_message(loaded: str) -> None:
    member = Consumer({"bootstrap.servers": loaded, "group.id": "busy"})
    member.subscribe(["views"])

    def assigned() -> bool:
        member.poll(0.1)
        return bool(member.assignment())

    wait_until(assigned, 60, "the member has its partition")
    try:
        refused = reset(loaded, "busy", "--all-topics", "--to-earliest", "--execute")
        assert one_error_line(refused) == (
            "contextplane group reset-offsets: Assignments can only be reset if the group "
            "'busy' is inactive, but the current state is Stable."
        )
    finally:
        member.close()


def consume(bootstrap: str, *args: str) -> list[str]:
    printed = contextplane(
        "consume", *args, "--format", "%p %o %v", "--bootstrap-server", bootstrap
    )
    assert printed.status == 0, printed.err
    return printed.out.splitlines()


def iso(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).isoformat()


def test_consume_reads_the_chosen_partitions_from_a_time(loaded: str) -> None:
    # Partition 1 only, from its start.
    assert consume(loaded, "clicks", "-p", "1", "--from-beginning", "-n", "3") == [
        "1 0 p1-5",
        "1 1 p1-6",
        "1 2 p1-7",
    ]
    # Both partitions from three and a half hours ago: clicks-0 from offset 2 (the record
    # of three hours ago); clicks-1 has nothing that late and starts at its end.
    since = NOW_MS - 7 * HOUR_MS // 2
    lines = consume(
        loaded, "clicks", "-p", "0", "-p", "1", "--from-timestamp", str(since), "-n", "3"
    )
    assert lines == ["0 2 p0-2", "0 3 p0-3", "0 4 p0-4"]
    # The same moment in ISO 8601, one partition.
    assert consume(loaded, "clicks", "-p", "0", "--from-timestamp", iso(since), "-n", "1") == [
        "0 2 p0-2"
    ]
    # Every partition from eleven hours ago: all eight records.
    every = consume(loaded, "clicks", "--from-timestamp", iso(NOW_MS - 11 * HOUR_MS), "-n", "8")
    assert sorted(every) == sorted(
        [f"0 {i} p0-{i}" for i in range(5)] + [f"1 {i} p1-{5 + i}" for i in range(3)]
    )
    missing = contextplane(
        "consume", "clicks", "-p", "7", "--from-beginning", "--bootstrap-server", loaded
    )
    assert one_error_line(missing) == (
        "contextplane consume: topic 'clicks' has no partition 7 (it has 2)"
    )


def test_consume_from_a_time_past_every_record_waits_at_the_log_end(loaded: str) -> None:
    later = NOW_MS + HOUR_MS
    reader = subprocess.Popen(
        [
            *contextplane_command(),
            "consume",
            "views",
            "-p",
            "0",
            "--from-timestamp",
            str(later),
            "-n",
            "1",
            "--format",
            "%o %v",
            "--bootstrap-server",
            loaded,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Whether this record lands before or after the reader asks for the offset of
    # `later`, the reader's first record is it: found by time, or the next at the end.
    produce(loaded, "views", [(0, later + 1000)])
    out, err = reader.communicate(timeout=120)
    assert reader.returncode == 0, err
    assert out.splitlines() == ["4 p0-0"]


def contextplane_command() -> list[str]:
    return [sys.executable, "-m", "contextplane.cli.launch"]


def kafka_tool(bootstrap: str, *args: str) -> list[str]:
    """kafka-consumer-groups.sh's output lines (Kafka 4.4's ConsumerGroupCommand)."""
    command = kafka_tool_command("consumer.group.ConsumerGroupCommand", bootstrap, *args)
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.splitlines()


def kafka_plan(lines: list[str]) -> dict[tuple[str, int], int]:
    rows = [line.split() for line in lines if line.strip()]
    start = rows.index(["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"])
    return {(row[1], int(row[2])): int(row[3]) for row in rows[start + 1 :]}


def test_dry_runs_plan_what_kafkas_own_tool_plans(cluster: Cluster, loaded: str) -> None:
    """The plans are fixed by the records; on Apache Kafka, kafka-consumer-groups.sh is
    asked the same dry runs and must plan the same offsets."""
    commit(loaded, "compared", {("clicks", 0): 4, ("clicks", 1): 1, ("views", 0): 2})
    for how, expected in (
        (
            ("--all-topics", "--shift-by", "-3"),
            {("clicks", 0): 1, ("clicks", 1): 0, ("views", 0): 0},
        ),
        (
            ("--topic", "clicks", "--topic", "views:0", "--by-duration", "PT2H30M"),
            {("clicks", 0): 3, ("clicks", 1): 3, ("views", 0): 0},
        ),
        (("--topic", "clicks", "--shift-by", "7"), {("clicks", 0): 5, ("clicks", 1): 3}),
    ):
        assert planned(loaded, "compared", *how) == expected, how
        if cluster.kind == "kafka":
            lines = kafka_tool(loaded, "--reset-offsets", "--group", "compared", *how, "--dry-run")
            assert kafka_plan(lines) == expected, (how, lines)


def test_bad_arguments_are_named_with_exit_status_2() -> None:
    nobody = f"127.0.0.1:{free_port()}"
    cases = [
        (
            ("group", "reset-offsets", "g", "--all-topics", "--by-duration", "P1W"),
            "contextplane group reset-offsets: --by-duration 'P1W': not an ISO 8601 duration "
            "PnDTnHnMnS (e.g. PT1H30M, P1D)",
        ),
        (
            ("consume", "t", "-p", "0", "-g", "g"),
            "contextplane consume: -p/--partition and -g/--group cannot be given together",
        ),
        (
            ("consume", "t", "--from-timestamp", "yesterday"),
            "contextplane consume: --from-timestamp 'yesterday': neither epoch milliseconds "
            "nor an ISO 8601 time",
        ),
    ]
    for args, line in cases:
        assert one_error_line(contextplane(*args, "--bootstrap-server", nobody), status=2) == line
    for args, text in [
        (("group", "reset-offsets", "g", "--to-earliest"), "one of the arguments --topic"),
        (
            ("group", "reset-offsets", "g", "--all-topics", "--topic", "t", "--to-earliest"),
            "argument --topic: not allowed with argument --all-topics",
        ),
        (
            ("group", "reset-offsets", "g", "--all-topics", "--to-earliest", "--shift-by", "1"),
            "argument --shift-by: not allowed with argument --to-earliest",
        ),
        (
            (
                "group",
                "reset-offsets",
                "g",
                "--all-topics",
                "--to-latest",
                "--execute",
                "--dry-run",
            ),
            "argument --dry-run: not allowed with argument --execute",
        ),
        (("consume", "t", "-p", "-1"), "not a partition number: '-1'"),
        (
            ("consume", "t", "-o", "3", "--from-timestamp", "0"),
            "argument --from-timestamp: not allowed with argument -o/--offset",
        ),
    ]:
        run = contextplane(*args, "--bootstrap-server", nobody)
        assert run.status == 2 and text in run.err, (args, run.err)
