"""DOUBLE config values printed as Kafka prints them (Java's Double.toString), not as
Python's repr: `kafka-configs.sh --describe --all` showed the broker's
`log.cleaner.io.max.bytes.per.second` as 1.7976931348623157e+308 where Kafka shows
1.7976931348623157E308. Each expected text below is what Java 17 printed for the value."""

from __future__ import annotations

import math

import pytest

from contextplane.java_numbers import java_double_text

JAVA = [
    (1.7976931348623157e308, "1.7976931348623157E308"),
    (0.5, "0.5"),
    (1e7, "1.0E7"),
    (9999999.0, "9999999.0"),
    (123.0, "123.0"),
    (1e-3, "0.001"),
    (9.99e-4, "9.99E-4"),
    (1e-4, "1.0E-4"),
    (-2.5e-10, "-2.5E-10"),
    (0.0, "0.0"),
    (-0.0, "-0.0"),
    (1e21, "1.0E21"),
    (1.0, "1.0"),
    (100.25, "100.25"),
    (5e-324, "4.9E-324"),  # at least two digits: the nearest two, not 5.0
    (math.nan, "NaN"),
    (-math.inf, "-Infinity"),
    (12345678.9, "1.23456789E7"),
    (0.1 + 0.2, "0.30000000000000004"),
]


@pytest.mark.parametrize(("number", "java"), JAVA)
def test_printed_as_java_prints_it(number: float, java: str) -> None:
    assert java_double_text(number) == java


def test_the_text_reads_back_to_the_same_double() -> None:
    for exponent in range(-320, 309, 7):
        number = 1.2345678901234567 * 10.0**exponent
        assert float(java_double_text(number)) == number
