"""Safe logs: every client-supplied string is escaped (administrative changes are
written by security/audit.py with the same escaping).

A client chooses topic names, group ids, member ids, client ids, config values and more;
written raw, a newline in one of them forges a log line and an escape sequence rewrites a
terminal. `escape` makes any string one printable line; `audit` writes one line per
administrative change in one format, naming the client and its address (an authorizer's
principal joins them there).
"""

from __future__ import annotations

import logging

_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\", '"': '\\"'}


def _escape_char(char: str, quote: bool) -> str:
    if char in _SHORT_ESCAPES and (quote or char != '"'):
        return _SHORT_ESCAPES[char]
    if char.isprintable() or char == '"':
        return char
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def escape(value: object, quote: bool = False) -> str:
    """`value` as one line of printable text: backslash, control and other non-printable
    characters (line and paragraph separators included) become backslash escapes, so
    the text cannot end a log line or carry terminal escapes. With `quote`, the result is
    wrapped in double quotes (inner ones escaped), for key="value" fields.
    None is `None`."""
    text = "None" if value is None else str(value)
    if text.isprintable() and "\\" not in text and not (quote and '"' in text):
        escaped = text
    else:
        escaped = "".join(_escape_char(char, quote) for char in text)
    return f'"{escaped}"' if quote else escaped


def quoted_bounded(value: object, limit: int = 128) -> str:
    """A client's value (a user name, a token claim) quoted in a log line or an audit
    reason: cut to `limit` characters (saying how long it was), escaped, quoted."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) > limit:
        text = f"{text[:limit]}...({len(text)} chars)"
    return escape(text, quote=True)


def escape_all(values: object) -> str:
    """Several client strings (member ids, ...) as one comma-separated, escaped list."""
    if isinstance(values, str | bytes) or not hasattr(values, "__iter__"):
        return escape(values)
    return ", ".join(escape(value) for value in values)


def escape_controls(text: str) -> str:
    """Only the characters that break a line or drive a terminal, for a whole formatted
    message (a backstop: call sites escape client strings with `escape`)."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else _escape_char(char, False) for char in text)


class EscapingFormatter(logging.Formatter):
    """Escapes control characters in every message: whatever a call site forgot to escape
    cannot forge a line. Tracebacks, added after the message, keep their lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        record.message = escape_controls(record.message)
        return super().formatMessage(record)


def log_to_stderr(level: str) -> None:
    """A command's logging: one escaped line per record on stderr, at `level` — control
    characters in any message are escaped, so no client string can forge a line."""
    handler = logging.StreamHandler()
    handler.setFormatter(EscapingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
