"""`contextplane up`: starts, stops cleanly on Ctrl-C, names bad configuration."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from confluent_kafka import Producer

from tests.support.broker import BrokerProcess
from tests.support.inprocess import InProcessBroker


def test_ctrl_c_stops_cleanly_and_restart_replays_nothing(tmp_path: Path) -> None:
    # Uploads only at shutdown: the restart replays nothing only if the stop uploaded.
    # A Kafka setting with no effect here is accepted and named once at start.
    settings = {"upload.interval.ms": "600000", "zookeeper.connect": "localhost:2181"}
    broker = BrokerProcess(tmp_path / "data", settings=settings).start()
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    for i in range(100):
        producer.produce("cli", value=str(i).encode())
    assert producer.flush(10) == 0
    assert broker.process is not None
    assert broker.log_tail(200).count("setting zookeeper.connect ignored (no effect: ") == 1
    broker.process.send_signal(signal.SIGINT)
    assert broker.process.wait(30) == 0
    # A clean stop uploads everything, so the next start has no WAL tail to replay.
    broker.start()
    broker.stop()
    assert "replayed" not in broker.log_tail(200)


def up(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "contextplane.cli.main", "up", "--data-dir", str(tmp_path), *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_bad_setting_is_named(tmp_path: Path) -> None:
    result = up(tmp_path, "--set", "num.partitions=lots")
    assert result.returncode == 2
    assert "'num.partitions': 'lots' is not a valid int" in result.stderr


def test_misspelt_setting_is_refused_with_the_closest_name(tmp_path: Path) -> None:
    result = up(tmp_path, "--set", "num.partiton=4")
    assert result.returncode == 2
    assert "unknown setting 'num.partiton'; did you mean 'num.partitions'?" in result.stderr
    config = tmp_path / "broker.properties"
    config.write_text("auto.create.topic.enable=false\n")
    result = up(tmp_path, "--config", str(config))
    assert result.returncode == 2
    assert "did you mean 'auto.create.topics.enable'?" in result.stderr


def test_port_in_use_is_reported(tmp_path: Path) -> None:
    first = InProcessBroker(tmp_path / "one").start()
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "contextplane.cli.main",
                "up",
                "--data-dir",
                str(tmp_path / "two"),
                "--port",
                str(first.port),
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 1
        assert "address already in use" in result.stderr
    finally:
        first.stop()
