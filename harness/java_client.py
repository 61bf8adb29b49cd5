"""Build and run the reference Java client (official kafka-clients) from harness/java_client/src.

    from harness import java_client
    java_client.build()                         # cached; recompiles when the source changes
    res = java_client.run(["admin", "--bootstrap", bs, "list-topics"], timeout=60)
    res.result["topics"]

    python -m harness.java_client build
    python -m harness.java_client produce --bootstrap 127.0.0.1:9092 --topic t --count 10

The tool prints one JSON object per line; see the header of ClientTool.java for commands.
Jars and classes live in ``$CONTEXTPLANE_CACHE/java-client-<version>`` (default
``~/.cache/contextplane``), never in the repository.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness._maven import cache_root, copy_dependencies, file_lock, java_tool

# Same line as the reference broker by default; override to test other client versions.
CLIENTS_VERSION = os.environ.get(
    "CONTEXTPLANE_KAFKA_CLIENTS_VERSION", os.environ.get("CONTEXTPLANE_KAFKA_VERSION", "4.4.0")
)
# kafka-clients 4.x depends on slf4j-api 1.7.36; the 1.7 simple binding logs to stderr.
SLF4J_VERSION = "1.7.36"
SOURCE = Path(__file__).resolve().parent / "java_client" / "src" / "ClientTool.java"
MAIN_CLASS = "ClientTool"


def client_deps(version: str = CLIENTS_VERSION) -> list[str]:
    return [
        f"org.apache.kafka:kafka-clients:{version}",
        f"org.slf4j:slf4j-simple:{SLF4J_VERSION}",
    ]


def client_home(version: str = CLIENTS_VERSION) -> Path:
    return cache_root() / f"java-client-{version}"


# kafka-clients leaves OAUTHBEARER's token handling libraries to the application (optional
# dependencies); these are the versions Kafka 4.4's distribution ships.
OAUTH_DEPS = (
    "com.fasterxml.jackson.core:jackson-databind:2.21.7",
    "org.bitbucket.b_c:jose4j:0.9.6",
)


def oauth_classpath(version: str = CLIENTS_VERSION) -> list[str]:
    """Extra classpath entries for a client that logs in with OAUTHBEARER (fetched once
    into a cache directory of their own, beside the client's jars)."""
    libs = copy_dependencies(cache_root() / f"java-client-{version}-oauth", OAUTH_DEPS)
    return [f"{libs}/*"]


def _stamp(version: str) -> str:
    # Source text + client version + javac path: any change forces a rebuild.
    h = hashlib.sha256(SOURCE.read_bytes())
    h.update(version.encode())
    h.update(java_tool("javac").encode())
    return h.hexdigest()


def build(version: str = CLIENTS_VERSION) -> Path:
    """Fetch kafka-clients + deps and compile ClientTool (skipped when up to date).

    Returns the classes directory.
    """
    home = client_home(version)
    libs = copy_dependencies(home, client_deps(version))
    classes = home / "classes"
    stamp_file = classes / ".source-sha256"
    stamp = _stamp(version)

    def fresh() -> bool:
        return (
            stamp_file.is_file()
            and stamp_file.read_text() == stamp
            and (classes / f"{MAIN_CLASS}.class").is_file()
        )

    if fresh():
        return classes
    with file_lock(home / ".build.lock"):
        if fresh():
            return classes
        staging = home / "classes.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        cmd = [
            java_tool("javac"),
            "--release",
            "17",
            "-nowarn",
            "-encoding",
            "UTF-8",
            "-cp",
            f"{libs}/*",
            "-d",
            str(staging),
            str(SOURCE),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"javac failed:\n{proc.stdout}\n{proc.stderr}")
        (staging / ".source-sha256").write_text(stamp)
        shutil.rmtree(classes, ignore_errors=True)
        staging.rename(classes)
    return classes


def command(
    args: Sequence[str],
    version: str = CLIENTS_VERSION,
    jvm_args: Sequence[str] = (),
    classpath: Sequence[str] = (),
) -> list[str]:
    """Full argv that runs the client (builds it first if needed); `classpath` is added
    after the client's own jars."""
    classes = build(version)
    libs = client_home(version) / "libs"
    return [
        java_tool("java"),
        "-Xmx512m",
        # Quiet by default: warnings and errors only, and on stderr so stdout stays JSON.
        "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
        "-Dorg.slf4j.simpleLogger.logFile=System.err",
        *jvm_args,
        "-cp",
        ":".join([str(classes), f"{libs}/*", *classpath]),
        MAIN_CLASS,
        *args,
    ]


@dataclass
class ClientResult:
    """Outcome of one client run; `lines` are the parsed JSON objects from stdout."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    lines: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def result(self) -> dict[str, Any] | None:
        """The final {"type": "result", ...} object, if any."""
        for line in reversed(self.lines):
            if line.get("type") == "result":
                return line
        return None

    @property
    def error(self) -> dict[str, Any] | None:
        for line in self.lines:
            if line.get("type") == "error":
                return line
        return None

    @property
    def records(self) -> list[list[Any]]:
        """Consumed records as [partition, offset, key, value, [[hkey, hvalue], ...]]."""
        return [line["record"] for line in self.lines if line.get("type") == "record"]

    def check(self) -> ClientResult:
        """Raise with the client's own error and stderr tail unless the run succeeded."""
        if not self.ok:
            raise RuntimeError(
                f"java client {self.argv[:1]} exited {self.returncode}: {self.error}\n"
                f"stderr tail:\n{self.stderr[-3000:]}"
            )
        return self


def _parse_lines(stdout: str) -> list[dict[str, Any]]:
    out = []
    for raw in stdout.splitlines():
        raw = raw.strip()
        if raw.startswith("{"):
            try:
                out.append(json.loads(raw))
            except ValueError:
                continue  # a stray non-JSON line must not hide the rest
    return out


def run(
    args: Sequence[str],
    timeout: float = 120.0,
    *,
    check: bool = False,
    version: str = CLIENTS_VERSION,
    jvm_args: Sequence[str] = (),
    classpath: Sequence[str] = (),
) -> ClientResult:
    """Run ClientTool with `args` (e.g. ["produce", "--bootstrap", ...]).

    Raises TimeoutError (with partial output) if the JVM runs longer than `timeout` seconds;
    with check=True also raises RuntimeError on a non-zero exit.
    """
    argv = command(args, version, jvm_args, classpath)
    t0 = time.monotonic()
    try:
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:

        def text(b: bytes | str | None) -> str:
            return b.decode(errors="replace") if isinstance(b, bytes) else (b or "")

        raise TimeoutError(
            f"java client {list(args)[:1]} timed out after {timeout}s\n"
            f"stdout tail:\n{text(exc.stdout)[-2000:]}\nstderr tail:\n{text(exc.stderr)[-3000:]}"
        ) from None
    res = ClientResult(
        argv=list(args),
        returncode=proc.returncode,
        stdout=proc.stdout,
        stderr=proc.stderr,
        seconds=time.monotonic() - t0,
        lines=_parse_lines(proc.stdout),
    )
    return res.check() if check else res


def main(argv: Sequence[str] | None = None) -> int:
    """`build` compiles and prints the classes dir; anything else is passed to the tool."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["build"]:
        try:
            print(build())
        except RuntimeError as exc:  # what could not be fetched or compiled, and why
            print(f"Java client: {exc}", file=sys.stderr)
            return 1
        return 0
    proc = subprocess.run(command(args), check=False)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
