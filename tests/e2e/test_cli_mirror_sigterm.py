"""`contextplane mirror` stopped by SIGTERM (what systemd and Kubernetes send) ends as
Ctrl-C does: progress saved, the summary printed, exit status 130; in both modes,
between two contextplane brokers."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from contextplane.cli import mirror_state
from tests.support.inprocess import InProcessBroker
from tests.support.mirror import create, produce
from tests.support.wait import wait_until


@pytest.fixture
def brokers(tmp_path: Path) -> Iterator[tuple[InProcessBroker, InProcessBroker]]:
    source = InProcessBroker(tmp_path / "source").start()
    target = InProcessBroker(tmp_path / "target").start()
    yield source, target
    target.stop()
    source.stop()


def _mirror(source: str, target: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "contextplane.cli.launch",
            "mirror",
            "--source-bootstrap-server",
            source,
            "--bootstrap-server",
            target,
            "--topics",
            "clicks",
            "--output",
            "json",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _terminate(running: subprocess.Popen[str]) -> tuple[str, str]:
    try:
        running.send_signal(signal.SIGTERM)
        return running.communicate(timeout=60)
    finally:
        running.kill()


def test_sigterm_saves_progress_and_prints_the_summary(
    brokers: tuple[InProcessBroker, InProcessBroker],
) -> None:
    source, target = brokers
    create(source.bootstrap, "clicks", 1)
    create(target.bootstrap, "clicks", 1)
    produce(source.bootstrap, "clicks", 0, 200)
    running = _mirror(source.bootstrap, target.bootstrap)
    wait_until(lambda: _log_end(target.bootstrap, "clicks") == 200, 60, "the mirror")
    out, err = _terminate(running)
    assert running.returncode == 130, err
    summary = json.loads(out)
    assert summary["partitions"] == [
        {"topic": "clicks", "partition": 0, "source_end": 200, "mirrored_end": 200, "lag": 0}
    ]
    assert mirror_state.read({"bootstrap.servers": target.bootstrap}) == {("clicks", 0): 200}


def test_sigterm_ends_a_copy_mirror_with_its_summary(
    brokers: tuple[InProcessBroker, InProcessBroker],
) -> None:
    source, target = brokers
    create(source.bootstrap, "clicks", 1)
    create(target.bootstrap, "clicks", 1)
    produce(source.bootstrap, "clicks", 0, 200)
    running = _mirror(source.bootstrap, target.bootstrap, "--mode", "copy")
    # Copied in transactions: the log end passes 200 with the commit markers.
    wait_until(lambda: _log_end(target.bootstrap, "clicks") > 200, 60, "the copy")
    out, err = _terminate(running)
    assert running.returncode == 130, err
    summary = json.loads(out)
    assert summary["mode"] == "copy"
    assert [(p["topic"], p["partition"], p["source_end"]) for p in summary["partitions"]] == [
        ("clicks", 0, 200)
    ]


def _log_end(bootstrap: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks"})
    try:
        return int(consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1])
    finally:
        consumer.close()
