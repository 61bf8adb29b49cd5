"""The `contextplane` program's entry point (the console script and `python -m
contextplane.cli.launch`).

kio registers Hypothesis strategies for its protocol types at import whenever Hypothesis
is installed, which it is wherever the test extra is (`scripts/test` and `scripts/up`
share `.venv`): 0.1–0.3 s of every start on a quiet machine, more on a busy one, for
nothing a broker uses. The program hides Hypothesis before anything imports kio; a test
run, which imports `contextplane.cli.main` itself, is unaffected.

Before anything else is imported, the code `dataclasses` generates is served from the
table kept beside the bytecode (`dataclass_code.py`), which is written back once the
broker serves and at exit.

The commands that are Kafka clients of a running cluster (`CLIENT_COMMANDS`,
cli/client_commands.py) are parsed and run without importing the broker at all.

A command whose stdout is closed early (`contextplane completion bash | head`) ends
quietly with exit status 141, as kcat (C) and rpk (Go) do when SIGPIPE ends them: 128 +
SIGPIPE, which a shell's `pipefail` sees as the reader having stopped early.
"""

from __future__ import annotations

import atexit
import sys

from contextplane import dataclass_code

# cli/client_commands.py's COMMANDS (a test keeps the two the same): named here so that
# `contextplane up` imports nothing of theirs.
CLIENT_COMMANDS = frozenset(
    {
        "topic",
        "group",
        "config",
        "acl",
        "user",
        "quota",
        "mask",
        "produce",
        "consume",
        "evaluate",
        "trace",
        "replay",
        "mirror",
        "partitions",
    }
)


SIGPIPE_STATUS = 141


def run() -> int:
    try:
        try:
            return _run()
        finally:
            sys.stdout.flush()  # inside the handler: what is left is written here, not at exit
    except BrokenPipeError:
        # The reader has what it wanted; Python flushes stdout again at exit: nowhere now.
        from contextplane.cli.output import to_devnull  # only on this path: a light import

        to_devnull(sys.stdout.fileno())
        return SIGPIPE_STATUS


def _run() -> int:
    dataclass_code.install()
    atexit.register(dataclass_code.save)
    if "hypothesis" not in sys.modules:
        sys.modules["hypothesis"] = None  # type: ignore[assignment]  # import fails: kio skips it
    if sys.argv[1:2] and sys.argv[1] in CLIENT_COMMANDS:
        from contextplane.cli.client_commands import main as client_main

        return client_main()
    from contextplane.cli.main import main

    return main()


if __name__ == "__main__":
    sys.exit(run())
