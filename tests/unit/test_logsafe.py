"""Escaping client strings for logs."""

from __future__ import annotations

import logging

from contextplane.logsafe import EscapingFormatter, escape, escape_all


def test_escape_makes_one_printable_line() -> None:
    assert escape("orders") == "orders"
    assert escape("a\nb\r\tc") == r"a\nb\r\tc"
    assert escape("\x1b[2J\x00\x7f") == r"\x1b[2J\x00\x7f"
    assert escape("line\u2028sep\u2029\x85") == r"line\u2028sep\u2029\x85"
    assert escape("back\\slash") == r"back\\slash"  # an escape cannot be faked
    assert escape("ünïcode ✓") == "ünïcode ✓"
    assert escape(None) == "None"
    assert escape('say "hi"', quote=True) == r'"say \"hi\""'
    assert escape('say "hi"') == 'say "hi"'
    assert escape_all(["a\nb", "c"]) == r"a\nb, c"


def test_formatter_escapes_whatever_a_call_site_missed() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "group %s", ("g\nforged",), None)
    assert EscapingFormatter("%(message)s").format(record) == r"group g\nforged"
