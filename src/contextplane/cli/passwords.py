"""A password for a command: from the terminal (asked twice) or, with --password-stdin,
the first line of standard input; never from the command line, where other users of the
machine could read it."""

from __future__ import annotations

import getpass
import sys


def read_password(from_stdin: bool) -> str:
    """The password; ValueError when the two typed differ, EOFError when stdin is empty."""
    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            raise EOFError
        return line.rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Password again: ") != first:
        raise ValueError("the passwords differ")
    return first
