"""protocol/crc.py: the crc32c package's native CRC-32C, loaded without the package."""

from __future__ import annotations

import subprocess
import sys

from contextplane.protocol.crc import crc32c

PROGRAM = """
import sys
from contextplane.protocol.crc import crc32c
assert crc32c(b"123456789") == 0xE3069283
print("crc32c" in sys.modules, "importlib.metadata" in sys.modules)
import crc32c as package
assert package.crc32c is crc32c, "the package reuses the extension already loaded"
"""


def test_the_castagnoli_check_value_and_a_continued_checksum() -> None:
    assert crc32c(b"123456789") == 0xE3069283  # the CRC catalogue's check value
    assert crc32c(b"56789", crc32c(b"1234")) == 0xE3069283
    assert crc32c(memoryview(b"x123456789")[1:]) == 0xE3069283


def test_the_package_and_its_metadata_lookup_stay_unloaded() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROGRAM], check=True, capture_output=True, text=True, timeout=60
    )
    assert out.stdout.split() == ["False", "False"]
