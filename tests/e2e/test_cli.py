"""`contextplane up`: starts, stops cleanly on Ctrl-C, names bad configuration."""

from __future__ import annotations

import shutil
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
    assert producer.flush(60) == 0, broker.log_tail()  # a liveness bound: a busy machine
    producer.close()  # not left reconnecting to the stopped broker
    assert broker.process is not None
    assert broker.log_tail(200).count("setting zookeeper.connect ignored (no effect: ") == 1
    broker.process.send_signal(signal.SIGINT)
    assert broker.process.wait(30) == 0
    # A clean stop uploads everything, so the next start has no WAL tail to replay.
    broker.start()
    broker.stop()
    assert "replayed" not in broker.log_tail(200)


ROOT = Path(__file__).resolve().parents[2]


def up(tmp_path: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "contextplane.cli.main", "up", "--data-dir", str(tmp_path), *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=cwd,
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


def test_a_sasl_listener_is_refused_not_served_in_plaintext(tmp_path: Path) -> None:
    config = tmp_path / "server.properties"
    config.write_text("listeners=SASL_PLAINTEXT://:9092\n")
    result = up(tmp_path, "--config", str(config))
    assert result.returncode == 2
    assert "GSSAPI is not available" in result.stderr


def test_an_unreadable_jwks_is_one_line_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "no-jwks.json"
    result = up(
        tmp_path,
        "--port", "0",
        "--set", "listeners=SASL_PLAINTEXT://127.0.0.1:0",
        "--set", "sasl.enabled.mechanisms=OAUTHBEARER",
        "--set", f"sasl.oauthbearer.jwks.endpoint.url={missing.as_uri()}",
        "--set", "sasl.oauthbearer.expected.issuer=https://idp.test",
        "--set", "sasl.oauthbearer.expected.audience=contextplane",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"contextplane: JWKS {missing.as_uri()} could not be read" in result.stderr


def test_out_of_range_and_conflicting_ports_are_refused(tmp_path: Path) -> None:
    result = up(tmp_path, "--port", "99999")
    assert result.returncode == 2
    assert "setting 'listener.port': 99999 is out of range: [0, 65535]" in result.stderr
    result = up(tmp_path, "--set", "num.partitions=-3")
    assert result.returncode == 2
    assert "setting 'num.partitions': -3 is out of range" in result.stderr
    result = up(tmp_path, "--port", "19093", "--set", "listener.port=19094")
    assert result.returncode == 2
    assert "--set listener.port=19094 and --port 19093 disagree" in result.stderr


def test_a_missing_config_file_names_the_path_it_looked_at(tmp_path: Path) -> None:
    result = up(tmp_path, "--config", "nonexist.properties", cwd=tmp_path)
    assert result.returncode == 2
    assert f"config file not found: {tmp_path}/nonexist.properties" in result.stderr


def test_scripts_up_sets_up_once_and_keeps_the_callers_directory(tmp_path: Path) -> None:
    """scripts/up in a copy of the repository whose scripts/setup and contextplane only
    record that they ran, and where."""
    clone = tmp_path / "clone"
    (clone / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "up", clone / "scripts" / "up")
    for name in ("pyproject.toml", "setup.py", "src/contextplane/protocol/record_walk.py"):
        (clone / name).parent.mkdir(parents=True, exist_ok=True)
        (clone / name).write_text("# " + name + "\n")
    log = tmp_path / "calls"
    setup = clone / "scripts" / "setup"
    setup.write_text(
        "#!/bin/sh\nset -e\necho setup >> " + str(log) + "\n"
        'cd "$(dirname "$0")/.."\nmkdir -p .venv/bin\n'
        'printf \'#!/bin/sh\\necho "contextplane $(pwd) $*" >> ' + str(log) + "\\n' "
        "> .venv/bin/contextplane\nchmod +x .venv/bin/contextplane\n"
    )
    setup.chmod(0o755)
    caller = tmp_path / "elsewhere"
    caller.mkdir()

    def run() -> None:
        subprocess.run(
            [str(clone / "scripts" / "up"), "--config", "broker.properties"],
            cwd=caller,
            check=True,
            timeout=30,
        )

    run()
    run()
    assert log.read_text().splitlines() == [
        "setup",
        f"contextplane {caller} up --config broker.properties",
        f"contextplane {caller} up --config broker.properties",
    ]
    (clone / "pyproject.toml").write_text("# changed\n")
    run()
    assert log.read_text().splitlines().count("setup") == 2
