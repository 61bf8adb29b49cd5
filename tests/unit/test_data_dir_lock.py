"""One broker per data directory (Kafka's `.lock`): a second broker on the same
directory refuses to start, the lock goes with the process, and `contextplane users`
will not change users under a running broker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from contextplane.broker.app import Broker
from contextplane.cli.main import main
from contextplane.settings import load_settings
from contextplane.storage.data_dir_lock import DataDirInUse, DataDirLock, in_use


def test_a_second_holder_is_refused_and_a_released_lock_is_free(tmp_path: Path) -> None:
    first = DataDirLock(tmp_path)
    first.acquire()
    assert in_use(tmp_path)
    with pytest.raises(DataDirInUse, match="in use by another broker"):
        DataDirLock(tmp_path).acquire()
    first.release()
    assert not in_use(tmp_path)
    again = DataDirLock(tmp_path)
    again.acquire()
    again.release()


def test_the_lock_goes_with_the_process(tmp_path: Path) -> None:
    # A process that dies holding it (kill -9 included) leaves the directory usable.
    code = (
        "import sys, pathlib\n"
        "from contextplane.storage.data_dir_lock import DataDirLock\n"
        "DataDirLock(pathlib.Path(sys.argv[1])).acquire()\n"
        "print('held', flush=True)\n"
        "sys.stdin.read()\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    assert in_use(tmp_path)
    holder.kill()
    holder.wait(10)
    assert not in_use(tmp_path)


def test_a_second_broker_on_one_data_directory_refuses_to_start(tmp_path: Path) -> None:
    settings = load_settings(overrides={"log.dirs": str(tmp_path), "listener.port": "0"})
    first = Broker(settings)
    with pytest.raises(DataDirInUse):
        Broker(settings)
    first._lock.release()
    Broker(settings)._lock.release()


def test_users_are_not_changed_under_a_running_broker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("pw\n"))
    assert main(["users", "add", "alice", "--data-dir", str(tmp_path), "--password-stdin"]) == 0
    lock = DataDirLock(tmp_path)
    lock.acquire()
    try:
        monkeypatch.setattr("sys.stdin", io.StringIO("pw\n"))
        args = ["users", "add", "bob", "--data-dir", str(tmp_path), "--password-stdin"]
        assert main(args) == 2
        assert main(["users", "remove", "alice", "--data-dir", str(tmp_path)]) == 2
        assert "a broker is running on" in capsys.readouterr().err
        assert main(["users", "list", "--data-dir", str(tmp_path)]) == 0  # reading is fine
        assert "User:alice" in capsys.readouterr().out
    finally:
        lock.release()


def test_listing_a_directory_that_is_not_a_data_directory_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["users", "list", "--data-dir", str(tmp_path)]) == 2
    assert "is not a data directory" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
