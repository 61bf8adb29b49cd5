"""The README's secured-broker walkthrough works from a fresh clone: its first command
creates `.venv` before any command uses it, it says where to run the commands before
the first one, and the secrets it writes are private to the user (umask 077) and
ignored by git."""

from __future__ import annotations

import re
import shutil
import stat
import subprocess
from pathlib import Path

from tests.support.readme import README, section, walkthrough

HEADING = "### A secured broker in a few commands"
SECRETS = ("ca.key", "broker.key", "broker-keystore.pem", "admin.properties")
# How the walkthrough's commands write them.
WRITES_SECRET = ("-keyout ", "> broker-keystore.pem", "> admin.properties")
# Files the walkthrough writes that only the reader's own environment needs.
WRITTEN = SECRETS + ("ca.srl", "broker.csr", "broker.crt")


def _blocks() -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```$", section(HEADING), re.MULTILINE | re.DOTALL)


def test_the_first_command_creates_the_environment_the_others_use() -> None:
    shell = walkthrough(HEADING).shell
    uses_venv = [i for i, command in enumerate(shell) if ".venv/" in command]
    assert uses_venv, "the walkthrough no longer runs .venv's tools: update this test"
    assert shell[0] == "scripts/setup", shell[0]
    text = section(HEADING)
    assert text.index("from the repository's directory") < text.index("```sh")


def test_every_block_that_writes_a_secret_first_sets_umask_077() -> None:
    blocks = _blocks()
    writers = [b for b in blocks if any(write in b for write in WRITES_SECRET)]
    assert len(writers) == 2, "ca.key and the keystore, then admin.properties"
    for block in writers:
        commands = [c for c in block.splitlines() if c and not c.startswith("#")]
        first_secret = min(i for i, c in enumerate(commands) if any(name in c for name in SECRETS))
        assert "umask 077" in commands[:first_secret], block


def test_the_readme_openssl_commands_write_keys_only_the_user_reads(tmp_path: Path) -> None:
    assert shutil.which("openssl") is not None, "openssl makes the README's certificates"
    readme = walkthrough(HEADING)
    script = "\n".join(
        readme.commands("umask ")[:1]
        + readme.commands("openssl ")
        + readme.commands("cat broker.key ")
    )
    done = subprocess.run(
        ["bash", "-c", f"umask 022\n{script}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    for name in ("ca.key", "broker.key", "broker-keystore.pem"):
        mode = stat.S_IMODE((tmp_path / name).stat().st_mode)
        assert mode == 0o600, f"{name}: {mode:o}"


def test_the_files_the_walkthrough_writes_are_ignored_by_git() -> None:
    root = README.parent
    done = subprocess.run(
        ["git", "check-ignore", "--no-index", *WRITTEN],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=30,
    )
    ignored = set(done.stdout.split())
    assert ignored == set(WRITTEN), f"not in .gitignore: {sorted(set(WRITTEN) - ignored)}"
