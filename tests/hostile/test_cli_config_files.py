"""Properties files given to the CLI and the broker that are no properties files:
`--command-config /dev/zero` was read whole (15 GB of memory before the command was
stopped), a file of bytes that are not UTF-8 ended in a traceback. Each is now refused
after at most PROPERTIES_BYTES_MAX bytes read, with a message naming the flag (or the
file) and the problem, exit status 2 as for any other bad argument."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest

from contextplane.properties_file import PROPERTIES_BYTES_MAX

# A bound on the command's address space: a command reading /dev/zero whole fails on
# it instead of taking the machine's memory (the CLI with librdkafka needs far less).
ADDRESS_SPACE_MAX = 4 * 1024**3


def _bounded() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_MAX, ADDRESS_SPACE_MAX))


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "contextplane.cli.launch", *args],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=_bounded,
    )


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    large = tmp_path / "large.properties"
    large.write_text("# a comment line\n" * (PROPERTIES_BYTES_MAX // 17 + 1))
    binary = tmp_path / "binary.properties"
    binary.write_bytes(b"security.protocol=PLAINTEXT\nsasl.password=\xff\xfe\n")
    return {"large": large, "binary": binary, "zero": Path("/dev/zero")}


TOO_LARGE = f"larger than {PROPERTIES_BYTES_MAX} bytes: not a properties file"
PROBLEMS = {"large": TOO_LARGE, "zero": TOO_LARGE, "binary": "not UTF-8 text (byte 42)"}


@pytest.mark.parametrize("kind", ["large", "binary", "zero"])
def test_topic_list_names_a_command_config_that_is_no_properties_file(
    files: dict[str, Path], kind: str
) -> None:
    run = _run(
        "topic", "list", "--bootstrap-server", "127.0.0.1:1", "--command-config", str(files[kind])
    )
    assert run.returncode == 2, run.stderr
    assert run.stderr.strip() == f"contextplane topic list: --command-config: {PROBLEMS[kind]}"


@pytest.mark.parametrize("kind", ["binary", "zero"])
def test_mirror_names_a_source_command_config_that_is_no_properties_file(
    files: dict[str, Path], kind: str
) -> None:
    run = _run(
        "mirror",
        "--source-bootstrap-server",
        "127.0.0.1:1",
        "--bootstrap-server",
        "127.0.0.1:2",
        "--topics",
        "t",
        "--source-command-config",
        str(files[kind]),
    )
    assert run.returncode == 2, run.stderr
    assert run.stderr.strip().endswith(f"--source-command-config: {PROBLEMS[kind]}"), run.stderr


@pytest.mark.parametrize("kind", ["binary", "zero"])
def test_the_broker_names_a_config_file_that_is_no_properties_file(
    files: dict[str, Path], kind: str, tmp_path: Path
) -> None:
    run = _run("up", "--data-dir", str(tmp_path / "data"), "--config", str(files[kind]))
    assert run.returncode != 0
    assert run.stderr.strip().splitlines() == [
        f"contextplane: config file {files[kind].resolve()}: {PROBLEMS[kind]}"
    ], run.stderr
