"""A response already encoded as frame parts, with what the broker's metrics need of it.

Responses written by hand (Produce, Fetch, cached ApiVersions and Metadata entries) reach
the connection as bytes, which are not read back: the handler that encodes one knows its
error codes and throttle time, and hands them along here (`broker/response_facts.py`
reads them; a response entity is read directly)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class Encoded(list[Any]):
    """Frame parts (a plain list to the connection), with `errors`: error code ->
    occurrences, counted as Kafka's `errorCounts()` counts the response's, and
    `throttle_ms`: the throttle time the response reports. Made by `encoded`."""

    __slots__ = ("errors", "throttle_ms")
    errors: dict[int, int]
    throttle_ms: int


def encoded(parts: Iterable[Any], errors: dict[int, int], throttle_ms: int) -> Encoded:
    """Half the cost of an `__init__` calling list's (this runs for every Produce)."""
    frame = Encoded(parts)
    frame.errors = errors
    frame.throttle_ms = throttle_ms
    return frame


def count_error(errors: dict[int, int], code: int, times: int = 1) -> None:
    errors[code] = errors.get(code, 0) + times
