"""The Java 4.x client with transactions v2 (KIP-890) against zombies and crashes: a
second producer with the same transactional.id fences the first (its late send and
its commit fail, its open transaction is aborted), and a broker killed with SIGKILL
while a transaction is open comes back with the transaction still open, which the same
producer then commits. Each EndTxn bumps the epoch, which DescribeTransactions shows."""

from __future__ import annotations

import queue
import subprocess
import threading
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic

from harness import java_client
from harness._maven import java_tool
from tests.support.broker import BrokerProcess
from tests.support.rawclient import RawClient
from tests.support.topic_read import read_values

TIMEOUT_S = 60  # liveness bound of each client call (a restart included)
PROGRAM = Path(__file__).parent / "java" / "TransactionsV2Fencing.java"
# What the fenced producer's send and commit may fail with (the client's names for
# INVALID_PRODUCER_EPOCH and PRODUCER_FENCED, and its fatal state after either).
FENCED = {"InvalidProducerEpochException", "ProducerFencedException", "KafkaException"}


def _start(
    mode: str, bootstrap: str, topic: str, tid: str
) -> tuple[subprocess.Popen[str], queue.Queue[str | None]]:
    java_client.build()
    libs = java_client.client_home() / "libs"
    process = subprocess.Popen(
        [java_tool("java"), "-cp", f"{libs}/*", str(PROGRAM), mode, bootstrap, topic, tid],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.strip())
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return process, lines


def _line(process: subprocess.Popen[str], lines: queue.Queue[str | None]) -> str | None:
    try:
        return lines.get(timeout=120)
    except queue.Empty:
        process.kill()
        raise AssertionError("the Java program said nothing more") from None


def _finish(process: subprocess.Popen[str], lines: queue.Queue[str | None]) -> list[str]:
    """The rest of what the program said, once it has exited (its output read to the
    end: the pump puts None last)."""
    process.wait(timeout=120)
    said = []
    while (line := lines.get(timeout=30)) is not None:
        said.append(line)
    assert process.stderr is not None
    assert process.returncode == 0, process.stderr.read()[-3000:]
    return said


def _state(bootstrap: str, tid: str) -> tuple[str, int]:
    with RawClient(bootstrap) as client:
        state = client.request(65, 0, transactional_ids=[tid]).transaction_states[0]
        return state.transaction_state, state.producer_epoch


def _topic(bootstrap: str, name: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, 1, 1)])[name].result(TIMEOUT_S)


def test_a_second_java_producer_fences_the_first(tmp_path: Path) -> None:
    broker = BrokerProcess(tmp_path / "broker").start()
    try:
        topic, tid = "v2-zombie", "v2-zombie-id"
        _topic(broker.bootstrap, topic)
        process, lines = _start("zombie", broker.bootstrap, topic, tid)
        said = [str(_line(process, lines)), str(_line(process, lines))]
        said += _finish(process, lines)
        sent, committed = said[0].removeprefix("A send: "), said[1].removeprefix("A commit: ")
        assert sent in FENCED and committed in FENCED, said
        assert said[-1] == "done"
        # a-open (aborted by the fence), its ABORT marker, b, its COMMIT marker.
        assert read_values(broker.bootstrap, topic, 4) == [b"b"]
        # B: InitProducerId after the fence's bump, then its commit bumped once more.
        state, epoch = _state(broker.bootstrap, tid)
        assert state == "CompleteCommit" and epoch == 3
    finally:
        broker.stop()


def test_kill9_while_a_java_v2_transaction_is_open(tmp_path: Path) -> None:
    broker = BrokerProcess(tmp_path / "broker", settings={"upload.interval.ms": "100"}).start()
    try:
        topic, tid = "v2-crash", "v2-crash-id"
        _topic(broker.bootstrap, topic)
        process, lines = _start("crash", broker.bootstrap, topic, tid)
        assert _line(process, lines) == "sent"
        broker.kill9()
        broker.start()
        assert _state(broker.bootstrap, tid) == ("Ongoing", 0)  # durable, still open
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
        assert _finish(process, lines) == ["done"]
        values = read_values(broker.bootstrap, topic, 5)  # four records, one marker
        assert values == [b"r0", b"r1", b"r2", b"r3"]
        assert _state(broker.bootstrap, tid) == ("CompleteCommit", 1)  # EndTxn v5 bumped
        broker.kill9()
        broker.start()
        assert read_values(broker.bootstrap, topic, 5) == [b"r0", b"r1", b"r2", b"r3"]
        assert _state(broker.bootstrap, tid) == ("CompleteCommit", 1)
    finally:
        broker.stop()
