"""The README's "Who may use the schema registry" loopback trial runs as printed (only the
ports changed): its `contextplane up` with HTTP Basic and the authorizer, then the user,
the subject grant and the two curl calls (alice's list, and 401 without a login)."""

from __future__ import annotations

import re
import shlex
import signal
import subprocess
from pathlib import Path

from tests.support.readme import README, section
from tests.support.wait import wait_until

HEADING = "## Who may use the schema registry"


def test_the_readme_registry_login_trial_runs_as_printed(tmp_path: Path) -> None:
    blocks = re.findall(r"^```sh\n(.*?)^```$", section(HEADING), re.M | re.S)
    up_block, client_block = blocks[0], blocks[1]
    up = shlex.split(up_block.replace("\\\n", " "))
    assert up[:4] == [".venv/bin/contextplane", "up", "--registry-port", "8081"], up
    # Free ports, a data directory of the test's own, and no console.
    up[3:4] = ["0", "--port", "0", "--data-dir", str(tmp_path / "data")]
    up += ["--set", "http.port=-1"]
    log_path = tmp_path / "up.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(up, cwd=README.parent, stdout=log, stderr=subprocess.STDOUT)
    try:

        def ports() -> tuple[str, str] | None:
            assert process.poll() is None, log_path.read_text()
            text = log_path.read_text()
            broker = re.search(r"broker ready on (\S+)", text)
            registry = re.search(r"schema registry ready on (\S+) \(http\)", text)
            return (broker[1], registry[1]) if broker and registry else None

        bootstrap, registry = wait_until(ports, 60, "the broker and its registry")
        # Each command, then its exit status on a line of its own (curl's output ends with no
        # newline); R as the README's earlier block sets it.
        commands = client_block.replace("\\\n", " ").replace("127.0.0.1:9092", bootstrap)
        script = f"R=http://{registry}\n" + "\n".join(
            f"{line}\nprintf '\\nexit=%s\\n' $?" for line in commands.splitlines() if line.strip()
        )
        shell = subprocess.run(
            ["bash", "-c", script], cwd=README.parent, capture_output=True, text=True, timeout=120
        )
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0, log_path.read_text()
    out = shell.stdout
    assert re.findall(r"^exit=(\d+)$", out, re.M) == ["0"] * 6, out + shell.stderr
    assert "User:alice  *     WRITE      ALLOW       SUBJECT" in out, out
    assert '[]\nexit=0\n{"error_code":401,"message":"Unauthorized"}\nexit=0' in out, out
