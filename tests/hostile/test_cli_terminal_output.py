"""What a producer's bytes do to the terminal of whoever reads the topic with the CLI. A
record whose key, value and header carry terminal escapes (OSC 52 sets the clipboard,
ESC [2J clears the screen, a carriage return overwrites the line, U+202E reverses the
text) is shown by `consume` on a terminal with those characters as backslash escapes,
lines and tabs kept; piped, the same record is written byte for byte, as kcat writes it.
A group id of the same kind is escaped by `group list` either way."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import confluent_kafka as ck
import pytest

from tests.support.cli import contextplane
from tests.support.inprocess import InProcessBroker
from tests.support.mirror import create

TOPIC = "screens"
KEY = b"k\x1b]52;c;cm0gLXJmIH4=\x07"
VALUE = b"first line\nsecond\tcell\x1b[2J\rforged\xe2\x80\xae\xff"
HEADER = ("h\x1b[31m", b"\x1b]0;retitled\x07")
GROUP = "g\x1b[2J\x1b]52;c;ZXZpbA==\x07"
FORMAT = "%k|%v|%h"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessBroker]:
    process = InProcessBroker(tmp_path_factory.mktemp("tty") / "broker").start()
    create(process.bootstrap, TOPIC, 1)
    producer = ck.Producer({"bootstrap.servers": process.bootstrap})
    producer.produce(TOPIC, key=KEY, value=VALUE, headers=[HEADER])
    assert producer.flush(30) == 0
    try:
        yield process
    finally:
        process.stop()


def _consume_args(broker: InProcessBroker) -> list[str]:
    return [
        "consume",
        TOPIC,
        "--bootstrap-server",
        broker.bootstrap,
        "--from-beginning",
        "-n",
        "1",
        "-f",
        FORMAT,
    ]


def _on_a_terminal(args: list[str]) -> bytes:
    """What `contextplane ARGS` writes to stdout when stdout is a terminal."""
    leader, follower = pty.openpty()
    child = subprocess.Popen(
        [sys.executable, "-m", "contextplane.cli.launch", *args],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=subprocess.DEVNULL,
    )
    os.close(follower)
    shown = b""
    try:
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(leader)
        assert child.wait(60) == 0, shown
    return shown


def test_consume_on_a_terminal_shows_escapes_as_text(broker: InProcessBroker) -> None:
    shown = _on_a_terminal(_consume_args(broker))
    assert b"\x1b" not in shown and b"\x07" not in shown, shown
    assert "\u202e".encode() not in shown, shown
    # The terminal turns "\n" into "\r\n"; the record's own carriage return is escaped.
    assert shown.count(b"\r") == shown.count(b"\n"), shown
    assert b"k\\x1b]52;c;cm0gLXJmIH4=\\x07|first line\r\nsecond\tcell\\x1b[2J\\rforged" in shown
    assert b"\\u202e\\xff|h\\x1b[31m=\\x1b]0;retitled\\x07" in shown, shown


def test_consume_piped_writes_the_bytes_as_they_are(broker: InProcessBroker) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "contextplane.cli.launch", *_consume_args(broker)],
        capture_output=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    header = HEADER[0].encode() + b"=" + HEADER[1]
    assert run.stdout == KEY + b"|" + VALUE + b"|" + header + b"\n"


def test_group_list_escapes_a_group_id_that_drives_a_terminal(
    broker: InProcessBroker, tmp_path: Path
) -> None:
    member = ck.Consumer({"bootstrap.servers": broker.bootstrap, "group.id": GROUP})
    member.commit(offsets=[ck.TopicPartition(TOPIC, 0, 1)], asynchronous=False)
    member.close()
    run = contextplane("group", "list", "--bootstrap-server", broker.bootstrap)
    assert run.status == 0, run.err
    assert "\x1b" not in run.out and "\x07" not in run.out, run.out
    assert "g\\x1b[2J\\x1b]52;c;ZXZpbA==\\x07" in run.out, run.out
