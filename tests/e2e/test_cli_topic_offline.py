"""`contextplane topic describe` with a partition offline: the table all the same.

Two brokers on one PostgreSQL; broker 2 uploads nothing by itself, so what it
acknowledges stays in its WAL, and once it is killed -9 its written partitions stay
offline (not claimed by broker 1: test_cluster_failover.py). While broker 2 is stopped
(SIGSTOP: it takes connections, answers nothing), right after the kill (its lease not
lapsed, Metadata still naming it leader, its port refusing connections) and after the
lease lapsed (no leader), the command exits 0 and prints every partition: broker 1's
with their offsets, broker 2's with their offsets unknown ("-", null in JSON), and one
line on stderr naming them; within its 5 s offsets timeout, and without spinning: a
leader refusing connections is not handed to librdkafka, which reconnects to it without
back-off (before: 10.3 s, 9.6 s of CPU, per run). A `partitions move --wait` of such a
partition says what the move waits for when its timeout runs out (before: "still
moving").
"""

from __future__ import annotations

import resource
import signal
import time
from pathlib import Path

from confluent_kafka.admin import AdminClient

from contextplane.protocol.offsets_records import partition_for
from tests.e2e.test_cluster_failover import Acks, broker, broker_state, create, fixture
from tests.support.cli import Run, contextplane
from tests.support.postgres import PostgresServer
from tests.support.wait import wait_until

TOPIC = "offline-described"
# The CPU of a describe that asks nothing of a dead leader (~0.3 s measured), with room
# for a loaded machine; and its time, past the 5 s offsets timeout and a start.
CPU_MAX_S = 3.0
WALL_MAX_S = 9.0


def _children_cpu_s() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _group_led_by_1(bootstrap: str) -> str:
    """A group name whose coordinator (its __consumer_offsets partition's leader) is 1."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    offsets = admin.list_topics("__consumer_offsets", timeout=30).topics["__consumer_offsets"]
    leaders = {p.id: p.leader for p in offsets.partitions.values()}
    return next(
        name
        for name in (f"reset-{n}" for n in range(1000))
        if leaders[partition_for(name, len(leaders))] == 1
    )


def _timed(*args: str) -> tuple[Run, float, float]:
    """`contextplane ARGS` with its wall time and CPU (the program waited for is a child)."""
    cpu_s, started = _children_cpu_s(), time.monotonic()
    run = contextplane(*args)
    return run, time.monotonic() - started, _children_cpu_s() - cpu_s


def test_describe_lists_an_offline_partition_without_offsets(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url, objects = fixture(tmp_path, postgres_server)
    one = broker(tmp_path / "one", 1, url, objects).start()
    keeps = {
        "upload.interval.ms": "3600000",
        "upload.bytes": "1000000000",
        "controlled.shutdown.enable": "false",
        # Long enough for the stopped stage and the first killed one to run in the lease.
        "broker.session.timeout.ms": "15000",
    }
    two = broker(tmp_path / "two", 2, url, objects, **keeps).start()
    try:
        leaders = create(one.bootstrap, TOPIC, 4, url)
        on_two = sorted(p for p, node in leaders.items() if node == 2)
        on_one = sorted(p for p, node in leaders.items() if node == 1)
        acks = Acks(one.bootstrap)
        for partition in range(4):
            acks.send(TOPIC, partition, b"x")
        acks.flush()
        assert two.process is not None
        two.process.send_signal(signal.SIGSTOP)
        stages = ("stopped", "killed, lease live", "lease lapsed")
        for stage in stages:
            if stage == "killed, lease live":
                two.kill9()  # SIGKILL ends a stopped process too
            if stage == "lease lapsed":
                wait_until(lambda: broker_state(url, 2) == "expired", 40, "the lease lapsed")
            run, took_s, cpu_s = _timed(
                "topic", "describe", TOPIC, "--output", "json",
                "--bootstrap-server", one.bootstrap,
            )  # fmt: skip
            assert took_s < WALL_MAX_S and cpu_s < CPU_MAX_S, (stage, took_s, cpu_s)
            document = run.json()
            rows = {row["partition"]: row for row in document["partitions"]}
            assert sorted(rows) == [0, 1, 2, 3], stage
            for p in on_one:
                assert (rows[p]["log_start_offset"], rows[p]["high_watermark"]) == (0, 1), stage
            for p in on_two:
                assert (rows[p]["log_start_offset"], rows[p]["high_watermark"]) == (None, None)
                assert rows[p]["leader"] == (None if stage == "lease lapsed" else 2), stage
            assert "offline or not answering" in run.err, (stage, run.err)
            assert ", ".join(map(str, on_two)) in run.err, (stage, run.err)
            if stage != "stopped":
                # A move of such a partition says what it waits for when --wait runs out.
                move = contextplane(
                    "partitions", "move", f"{TOPIC}-{on_two[0]}", "--to", "1", "--wait",
                    "--timeout", "2", "--bootstrap-server", one.bootstrap,
                )  # fmt: skip
                assert move.status == 1, (stage, move.out, move.err)
                waits = (
                    "broker 2 leads it but takes no connection (stopped or killed)"
                    if stage == "killed, lease live"
                    else "the partition has no leader (offline)"
                )
                assert waits in move.err and "once that broker is back" in move.err, move.err
            if stage == "killed, lease live":
                # A reset needs every offset: it fails at once, naming the partition.
                reset, took_s, cpu_s = _timed(
                    "group", "reset-offsets", _group_led_by_1(one.bootstrap),
                    "--topic", TOPIC, "--to-earliest", "--bootstrap-server", one.bootstrap,
                )  # fmt: skip
                assert took_s < WALL_MAX_S and cpu_s < CPU_MAX_S, (took_s, cpu_s)
                assert reset.status == 1, (reset.out, reset.err)
                assert (
                    f"topic {TOPIC!r} partition {on_two[0]} offsets: leader 2 not reachable"
                ) in reset.err
                # Listing groups asks the brokers that take connections, at once.
                groups, took_s, cpu_s = _timed(
                    "group", "list", "--output", "json", "--bootstrap-server", one.bootstrap
                )
                assert took_s < WALL_MAX_S and cpu_s < CPU_MAX_S, (took_s, cpu_s)
                assert groups.status == 0, groups.err
                assert "broker 2 not reachable" in groups.err, groups.err
                assert isinstance(groups.json()["groups"], list)
                # Reading such a partition names its leader as gone (Metadata names it).
                read = contextplane(
                    "consume", TOPIC, "-p", str(on_two[0]), "--from-beginning",
                    "--timeout", "1", "--bootstrap-server", one.bootstrap,
                )  # fmt: skip
                assert read.status == 0, read.err
                assert "led by broker 2, which takes no connection" in read.err, read.err
        # Reading an offline partition says so rather than looking empty.
        read = contextplane(
            "consume", TOPIC, "-p", str(on_two[0]), "--from-beginning", "--timeout", "1",
            "--bootstrap-server", one.bootstrap,
        )  # fmt: skip
        assert read.status == 0, read.err
        assert f"partition {on_two[0]} without a leader (offline)" in read.err, read.err
        table = contextplane("topic", "describe", TOPIC, "--bootstrap-server", one.bootstrap)
        assert table.status == 0, table.err
        partition_rows = [line.split() for line in table.out.split("\n\n")[2].splitlines()[1:]]
        for row in partition_rows:
            if int(row[0]) in on_two:
                assert row[1] == "-" and row[-2:] == ["-", "-"], row
    finally:
        one.stop()
        if two.process is not None and two.process.poll() is None:
            two.process.send_signal(signal.SIGCONT)  # a stopped broker cannot stop
        two.stop()
