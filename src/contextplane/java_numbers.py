"""Numbers in config text read as Kafka's ConfigDef reads them (Java's String.trim, then
Integer.parseInt, Long.parseLong or Double.parseDouble), so a value Kafka refuses is
refused here too, and one it takes is taken."""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from decimal import Decimal

INT_MIN, INT_MAX = -(2**31), 2**31 - 1
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1
# Integer.parseInt's shape: a sign, then digits of any script (Character.digit), and
# nothing else: Python's int() would also take '_' separators and inner Unicode spaces.
_JAVA_INT = re.compile(r"[-+]?\d+")
# Double.parseDouble's grammar (Double.valueOf's documented regex): ASCII digits only, an
# optional f/F/d/D suffix, hexadecimal with a binary exponent, NaN and Infinity as
# spelled; Python's float() also takes '_', Unicode digits and spaces, "nan", "inf".
_JAVA_DOUBLE = re.compile(
    r"[+-]?(?:NaN|Infinity|(?:"
    r"(?P<decimal>(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)"
    r"|(?P<hex>0[xX](?:[0-9a-fA-F]+\.?|[0-9a-fA-F]*\.[0-9a-fA-F]+)[pP][+-]?[0-9]+)"
    r")[fFdD]?)",
    re.ASCII,
)
# Past any long: more significant digits than this are out of range whatever the sign.
_DIGITS_MAX = 20


def java_trim(text: str) -> str:
    """Java's String.trim, which Kafka's ConfigDef applies to every value: each char up
    to U+0020 off both ends (NUL and the other controls too), no Unicode space."""
    start, end = 0, len(text)
    while start < end and text[start] <= " ":
        start += 1
    while end > start and text[end - 1] <= " ":
        end -= 1
    return text[start:end]


def java_int(text: str) -> int | None:
    """`text` trimmed and read as Java's parseInt/parseLong read digits (the range is the
    caller's), or None when Java would refuse it."""
    trimmed = java_trim(text)
    if not _JAVA_INT.fullmatch(trimmed):
        return None
    sign = -1 if trimmed[0] == "-" else 1
    # Leading zeros are allowed in any number (Java reads them); int() would refuse a
    # string past Python's digit limit, so the size is judged on the significant digits.
    digits = "".join(str(unicodedata.decimal(c)) for c in trimmed.lstrip("+-")).lstrip("0")
    if len(digits) > _DIGITS_MAX:
        return sign * 10**_DIGITS_MAX
    return sign * int(digits or "0")


def java_double(text: str) -> float | None:
    """`text` trimmed and read as Java's Double.parseDouble reads it, or None when Java
    would refuse it (NaN is a double: Kafka's Range.between lets it through)."""
    trimmed = java_trim(text)
    match = _JAVA_DOUBLE.fullmatch(trimmed)
    if match is None:
        return None
    if match["hex"] is not None:
        try:
            number = float.fromhex(match["hex"])
        except OverflowError:  # Java's is Infinity
            number = math.inf
        return -number if trimmed.startswith("-") else number
    if match["decimal"] is not None:
        number = float(match["decimal"])
        return -number if trimmed.startswith("-") else number
    return float(trimmed.replace("Infinity", "inf"))


# Produce reads a topic's integer configs for every batch: a config's few texts are
# parsed once, not per batch.
@functools.lru_cache(maxsize=4096)
def stored_int(value: str | int) -> int:
    """A stored integer config (or its default, already a number) as Kafka reads it:
    int() refuses a text Java reads, such as leading zeros past Python's 4,300-digit
    limit. A text stored before the checks were Java's (`1_000`) is read as int() read
    it then; ValueError for one neither reads."""
    if isinstance(value, int):
        return value
    number = java_int(value)
    return int(value) if number is None else number


def stored_double(value: str | float) -> float:
    """A stored DOUBLE config (or its default, already a number) as Kafka reads it:
    float() refuses what Java reads, such as `0.5d`. A text stored before the check was
    Java's (`0.2_5`) is read as float() read it then; ValueError for one neither reads."""
    if isinstance(value, float | int):
        return float(value)
    number = java_double(value)
    return float(value) if number is None else number


def java_double_text(number: float) -> str:
    """`number` as Java's Double.toString prints it, which is how Kafka shows a DOUBLE
    config: the shortest digits that read back (at least two), plain from 10^-3 up to
    10^7 (`0.5`, `123.0`), else `1.7976931348623157E308` (Python's repr: `1e+308`).
    Java 17's older algorithm sometimes prints a digit more; Java 19+ prints these."""
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    sign = "-" if math.copysign(1.0, number) < 0 else ""
    magnitude = abs(number)
    if magnitude == 0.0:
        return f"{sign}0.0"
    _, digit_tuple, exponent = Decimal(repr(magnitude)).as_tuple()
    if len(digit_tuple) == 1:  # Java prints at least two digits: the nearest two
        _, digit_tuple, exponent = Decimal(f"{magnitude:.1e}").as_tuple()
    assert isinstance(exponent, int)  # a finite number
    # The power of ten of the first digit, then the digits without trailing zeros.
    power = len(digit_tuple) - 1 + exponent
    digits = "".join(map(str, digit_tuple)).rstrip("0")
    if 1e-3 <= magnitude < 1e7:
        if power >= 0:
            whole, fraction = digits[: power + 1].ljust(power + 1, "0"), digits[power + 1 :]
        else:
            whole, fraction = "0", "0" * (-power - 1) + digits
        return f"{sign}{whole}.{fraction or '0'}"
    return f"{sign}{digits[0]}.{digits[1:] or '0'}E{power}"
