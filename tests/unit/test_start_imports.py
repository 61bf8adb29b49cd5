"""What the program's start imports: libraries only some configurations use are loaded
when used, so every start does not pay for them (RFC 0003 slice 8, restart)."""

from __future__ import annotations

import subprocess
import sys

# Loaded only where an OAUTHBEARER listener checks a token or a JWKS is read.
NOT_AT_START = ("jwt", "cryptography", "urllib.request", "http.client")

PROGRAM = """
import sys
sys.modules["hypothesis"] = None  # as cli/launch.py does
import contextplane.cli.main
import contextplane.broker.app
print(",".join(name for name in sys.argv[1:] if name in sys.modules))
"""


def test_the_broker_start_leaves_oauthbearer_libraries_unloaded() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROGRAM, *NOT_AT_START],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.stdout.strip() == "", f"imported at start: {out.stdout.strip()}"
