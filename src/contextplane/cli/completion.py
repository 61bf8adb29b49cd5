"""`contextplane completion bash|zsh|tcsh`: a completion script for the shell, made by
shtab from the same argparse parser the commands use, so it never lags behind them.

    eval "$(contextplane completion bash)"       # or save it where bash-completion looks
"""

from __future__ import annotations

import argparse
from typing import Any

SHELLS = ("bash", "zsh", "tcsh")


def add_parser(sub: Any) -> None:
    completion = sub.add_parser("completion", help="print a shell completion script")
    completion.add_argument("shell", choices=SHELLS)


def run(shell: str, parser: argparse.ArgumentParser) -> int:
    import shtab  # only this command needs it

    print(shtab.complete(parser, shell=shell))
    return 0
