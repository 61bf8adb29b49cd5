"""The client side of SCRAM (RFC 5802), for tests that speak it byte by byte: the one
`contextplane mirror` logs in with."""

from __future__ import annotations

from contextplane.security.scram_client import ScramClient

__all__ = ["ScramClient"]
