"""Java properties files as java.util.Properties reads them: the one format Kafka's
server.properties and client configs use."""

from __future__ import annotations


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
