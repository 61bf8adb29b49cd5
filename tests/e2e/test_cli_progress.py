"""The CLI's progress bars as a person at a terminal sees them: `produce` from a large
file and from a pipe, `mirror --once` in both modes, each run with stderr on a pseudo
terminal (python's `pty`), and the same commands with stderr a pipe or `--output json`
printing no progress at all, their stdout unchanged."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from tests.support.broker import BrokerProcess
from tests.support.cli import Run, contextplane, sigint_as_from_a_terminal

SETTINGS = {"auto.create.topics.enable": "false"}
# rich's colours, and its cursor moves and carriage returns between two drawings.
COLOURS = re.compile(r"\x1b\[[0-9;]*m")
MOVES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")


@pytest.fixture(scope="module")
def brokers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A source and a target contextplane broker process (bootstrap addresses)."""
    data = tmp_path_factory.mktemp("cli-progress")
    source = BrokerProcess(data / "source", settings=SETTINGS).start()
    try:
        target = BrokerProcess(data / "target", settings=SETTINGS).start()
        try:
            yield source.bootstrap, target.bootstrap
        finally:
            target.stop()
    finally:
        source.stop()


def create(bootstrap: str, name: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(30)


def in_terminal(*args: str, stdin: Path | None = None) -> tuple[Run, str]:
    """`contextplane ARGS` with stderr on a pseudo terminal 120 columns wide (stdout a
    pipe, stdin the file or nothing); the run and what the terminal showed, its escape
    codes removed."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    environment = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120"}
    environment.pop("NO_COLOR", None)
    with open(stdin or os.devnull, "rb") as source:
        child = subprocess.Popen(
            [sys.executable, "-m", "contextplane.cli.launch", *args],
            stdin=source,
            stdout=subprocess.PIPE,
            stderr=follower,
            env=environment,
            preexec_fn=sigint_as_from_a_terminal,
        )
    os.close(follower)
    shown = bytearray()
    try:
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: every writer of the terminal has closed it
                break
            if not chunk:
                break
            shown += chunk
        out, _ = child.communicate(timeout=120)
    finally:
        child.kill()
        os.close(leader)
    text = MOVES.sub("\n", COLOURS.sub("", shown.decode(errors="replace")))
    return Run(child.returncode, out.decode(), ""), text


def last_line_with(text: str, marker: str) -> str:
    lines = [line.strip() for line in text.splitlines() if marker in line]
    assert lines, text
    return lines[-1]


def test_produce_from_a_file_shows_bytes_read_and_records_sent(
    brokers: tuple[str, str], tmp_path: Path
) -> None:
    source, _ = brokers
    create(source, "bulk", 2)
    lines = tmp_path / "records.txt"
    lines.write_bytes(b"".join(b"key-%d:value %06d\n" % (n % 7, n) for n in range(20_000)))
    size = lines.stat().st_size
    run, shown = in_terminal(
        "produce", "bulk", "--key-separator", ":", "--bootstrap-server", source, stdin=lines
    )
    assert run.status == 0, shown
    assert run.out.rstrip().endswith("20000 of 20000 records written")
    final = last_line_with(shown, "produce bulk")
    # The last drawing: the whole file read (rich's kB are 1000 bytes), every record sent.
    assert "100%" in final and "20000 records sent" in final, final
    assert f"{size / 1000:.1f}/{size / 1000:.1f} kB" in final, final
    assert "━" in final

    # The same file with stderr a pipe, and with --output json on the terminal: no bar.
    piped = contextplane("produce", "bulk", "--bootstrap-server", source, stdin=lines.read_text())
    assert piped.status == 0 and piped.err == ""
    assert piped.out.rstrip().endswith("20000 of 20000 records written")
    document, shown = in_terminal(
        "produce", "bulk", "--output", "json", "--bootstrap-server", source, stdin=lines
    )
    assert document.json()["records"] == 20_000
    assert shown.strip() == ""


def test_produce_from_a_pipe_shows_records_sent_without_a_total(
    brokers: tuple[str, str], tmp_path: Path
) -> None:
    source, _ = brokers
    create(source, "streamed", 1)
    fifo = tmp_path / "stream"
    os.mkfifo(fifo)
    # A writer on the other end of a named pipe: stdin is not a regular file.
    writer = subprocess.Popen(
        ["sh", "-c", 'for i in $(seq 1 500); do echo "line $i"; done > "$1"', "sh", str(fifo)]
    )
    try:
        run, shown = in_terminal("produce", "streamed", "--bootstrap-server", source, stdin=fifo)
    finally:
        writer.wait(timeout=60)
    assert run.status == 0, shown
    assert run.out.rstrip().endswith("500 of 500 records written")
    final = last_line_with(shown, "produce streamed")
    assert "500 records sent" in final and "%" not in final, final


def produce(bootstrap: str, topic: str, partitions: int, each: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for n in range(each * partitions):
        producer.produce(topic, value=b"v%d" % n, partition=n % partitions)
    assert producer.flush(30) == 0


@pytest.mark.parametrize("mode", ["offsets", "copy"])
def test_mirror_once_shows_records_copied_against_the_source_ends(
    brokers: tuple[str, str], mode: str
) -> None:
    source, target = brokers
    topic = f"moved-{mode}"
    create(source, topic, 3)
    produce(source, topic, 3, 400)
    mirror = ("mirror", "--source-bootstrap-server", source, "--bootstrap-server", target)
    run, shown = in_terminal(*mirror, "--topics", topic, "--mode", mode, "--once")
    assert run.status == 0, shown
    final = last_line_with(shown, "mirror")
    assert "1200/1200 records" in final and "100%" in final, final
    assert "0 of 3 partitions behind" in final, final
    # The summary on stdout as ever: each partition at the source's end.
    assert summary(run, topic) == expected(topic, mode, copied=400)

    # Nothing new: a pipe gets no progress, only the summary on stdout.
    again = contextplane(*mirror, "--topics", topic, "--mode", mode, "--once")
    assert again.status == 0 and again.err == ""
    assert summary(again, topic) == expected(topic, mode, copied=0)


def summary(run: Run, topic: str) -> list[list[str]]:
    return [line.split() for line in run.out.splitlines() if line.startswith(f"{topic} ")]


def expected(topic: str, mode: str, copied: int) -> list[list[str]]:
    """Each partition's row: source end, mirrored end (copied to), [copied,] lag."""
    if mode == "offsets":
        return [[topic, str(p), "400", "400", "0"] for p in range(3)]
    return [[topic, str(p), "400", "400", str(copied), "0"] for p in range(3)]
