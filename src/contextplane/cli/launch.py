"""The `contextplane` program's entry point (the console script and `python -m
contextplane.cli.launch`).

kio registers Hypothesis strategies for its protocol types at import whenever Hypothesis
is installed, which it is wherever the test extra is (`scripts/test` and `scripts/up`
share `.venv`): 0.1–0.3 s of every start on a quiet machine, more on a busy one, for
nothing a broker uses. The program hides Hypothesis before anything imports kio; a test
run, which imports `contextplane.cli.main` itself, is unaffected.
"""

from __future__ import annotations

import sys


def run() -> int:
    if "hypothesis" not in sys.modules:
        sys.modules["hypothesis"] = None  # type: ignore[assignment]  # import fails: kio skips it
    from contextplane.cli.main import main

    return main()


if __name__ == "__main__":
    sys.exit(run())
