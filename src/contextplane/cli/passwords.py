"""A password for a command: from the terminal (asked twice) or, with --password-stdin,
the first line of standard input; never from the command line, where other users of the
machine could read it."""

from __future__ import annotations

import getpass
import sys

# Longer than any password a person or a secret store hands over; a bound, so that a
# stream without a newline is not read whole into memory.
PASSWORD_MAX = 4096


def read_password(from_stdin: bool) -> str:
    """The password; ValueError when the two typed differ or it is longer than
    PASSWORD_MAX, EOFError when stdin is empty."""
    if from_stdin:
        line = sys.stdin.readline(PASSWORD_MAX + 2)  # room for "\r\n"
        if not line:
            raise EOFError
        password = line.rstrip("\r\n")
        if len(password) > PASSWORD_MAX:
            raise ValueError(f"the password is longer than {PASSWORD_MAX} characters")
        return password
    first = getpass.getpass("Password: ")
    if getpass.getpass("Password again: ") != first:
        raise ValueError("the passwords differ")
    return first
