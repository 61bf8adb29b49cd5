"""Java properties files as java.util.Properties reads them: the one format Kafka's
server.properties and client configs use."""

from __future__ import annotations

import errno
from pathlib import Path

# Far past any real server.properties or client config (a few KiB): a larger "file" is
# a mistake such as /dev/zero, which read whole would take all of memory.
PROPERTIES_BYTES_MAX = 1024 * 1024


class PropertiesSyntaxError(ValueError):
    """A line the format cannot read (a malformed \\uxxxx escape)."""


_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def _unescape(text: str, number: int) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "\\" or i + 1 == len(text):
            out.append(char)
            i += 1
            continue
        escaped = text[i + 1]
        if escaped == "u":
            digits = text[i + 2 : i + 6]
            if len(digits) != 4 or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise PropertiesSyntaxError(f"line {number}: malformed \\uxxxx escape")
            out.append(chr(int(digits, 16)))
            i += 6
            continue
        out.append(_ESCAPES.get(escaped, escaped))
        i += 2
    return "".join(out)


def _ends_in_continuation(line: str) -> bool:
    """An odd number of trailing backslashes continues the line (Java's rule)."""
    return (len(line) - len(line.rstrip("\\"))) % 2 == 1


class PropertiesFileError(OSError):
    """A file that is no properties file; shown as its reason alone, as a strerror."""

    def __str__(self) -> str:
        return str(self.strerror)


def read_properties_text(path: Path) -> str:
    """A properties file's text; OSError for one that cannot be read, and
    PropertiesFileError for one larger than PROPERTIES_BYTES_MAX or not UTF-8 text."""
    with path.open("rb") as file:
        data = file.read(PROPERTIES_BYTES_MAX + 1)
    if len(data) > PROPERTIES_BYTES_MAX:
        raise PropertiesFileError(
            errno.EFBIG, f"larger than {PROPERTIES_BYTES_MAX} bytes: not a properties file"
        )
    try:
        return data.decode()
    except UnicodeDecodeError as exc:
        raise PropertiesFileError(errno.EILSEQ, f"not UTF-8 text (byte {exc.start})") from None


def properties_lines(text: str) -> list[tuple[int, str, str]]:
    """(line number, name, value) of each entry, by java.util.Properties' rules: `=`, `:`
    or whitespace ends the name; `#` and `!` start comments; a trailing `\\` continues
    the line; escapes as in Java."""
    entries: list[tuple[int, str, str]] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        number = index + 1
        line = lines[index].lstrip(" \t\f")
        index += 1
        if not line or line.startswith(("#", "!")):
            continue
        while _ends_in_continuation(line) and index < len(lines):
            line = line[:-1] + lines[index].lstrip(" \t\f")
            index += 1
        if _ends_in_continuation(line):
            line = line[:-1]
        end = 0
        while end < len(line) and line[end] not in "=: \t\f":
            end += 2 if line[end] == "\\" else 1
        name = line[:end]
        rest = line[end:].lstrip(" \t\f")
        if rest[:1] in ("=", ":"):
            rest = rest[1:].lstrip(" \t\f")
        entries.append((number, _unescape(name, number), _unescape(rest, number).rstrip()))
    return entries


def parse_properties(text: str) -> dict[str, str]:
    return {name: value for _, name, value in properties_lines(text)}
