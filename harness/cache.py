"""Where everything the tests fetch or build lives: one root, so an empty root is a fresh
machine.

`$CONTEXTPLANE_CACHE` (default `~/.cache/contextplane`) holds the Kafka jars, the Java
client, the client test suites, and the package caches their tools would otherwise keep in
the home directory: Maven's local repository (`m2/`) and Go's module cache (`go/mod/`).
Nothing is read from `~/.m2` or `~/go`, so a run with an empty cache directory exercises
exactly what a fresh machine does (`tests/conformance/test_prepare_from_empty.py`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def cache_root() -> Path:
    """Root of everything the harness downloads or builds (kept out of the repository)."""
    env = os.environ.get("CONTEXTPLANE_CACHE")
    root = Path(env) if env else Path.home() / ".cache" / "contextplane"
    root.mkdir(parents=True, exist_ok=True)
    return root


def maven_repo() -> Path:
    """Maven's local repository for the harness (instead of ~/.m2/repository)."""
    return cache_root() / "m2"


def go_env() -> dict[str, str]:
    """Environment for `go` commands: modules cached under the cache root, writable so that
    a cache directory can be deleted like any other."""
    env = dict(os.environ)
    env["GOMODCACHE"] = str(cache_root() / "go" / "mod")
    flags = env.get("GOFLAGS", "").split()
    for flag in ("-mod=mod", "-modcacherw"):
        if flag not in flags:
            flags.append(flag)
    env["GOFLAGS"] = " ".join(flags)
    return env


def tail(text: str, lines: int = 15) -> str:
    """The last lines of a tool's output, for an error message that shows the cause."""
    plain = _ANSI.sub("", text)
    return "\n".join(line for line in plain.strip().splitlines()[-lines:] if line.strip())
