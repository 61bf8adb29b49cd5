"""A share group's own configs (KIP-932 GROUP config resources) as Kafka 4.4 reads them:
`share.auto.offset.reset` (`earliest`, `latest` or `by_duration:<ISO-8601 duration>`) and
`share.isolation.level`, and the values a share group runs with: its override (an INT one
capped to the broker's current bounds, as Kafka's GroupConfig.evaluate caps it), else the
broker's `group.share.*` setting.

`by_duration:` takes what Java's `Duration.parse` takes (`PnDTnHnMn.nS`, signs allowed on
each part, letters in either case, the fraction at most 9 digits) and refuses a negative
duration, as Kafka's ShareGroupAutoOffsetResetStrategy does; the prefix is lower case.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from contextplane.java_numbers import java_int, java_trim

AUTO_OFFSET_RESET = "share.auto.offset.reset"
ISOLATION_LEVEL = "share.isolation.level"
SESSION_TIMEOUT = "share.session.timeout.ms"
HEARTBEAT_INTERVAL = "share.heartbeat.interval.ms"
RECORD_LOCK_DURATION = "share.record.lock.duration.ms"
DELIVERY_COUNT_LIMIT = "share.delivery.count.limit"
PARTITION_MAX_RECORD_LOCKS = "share.partition.max.record.locks"
RENEW_ACKNOWLEDGE = "share.renew.acknowledge.enable"
ASSIGNMENT_INTERVAL = "share.assignment.interval.ms"
# Accepted and described as Kafka 4.4's (an internal config there); nothing to offload to.
ASSIGNOR_OFFLOAD = "share.assignor.offload.enable"
# The INT configs a share group runs with, each bounded by `group.share.min/max.*`.
INT_CONFIGS = (
    SESSION_TIMEOUT,
    HEARTBEAT_INTERVAL,
    RECORD_LOCK_DURATION,
    DELIVERY_COUNT_LIMIT,
    PARTITION_MAX_RECORD_LOCKS,
    ASSIGNMENT_INTERVAL,
)

EARLIEST, LATEST, BY_DURATION = "earliest", "latest", "by_duration:"
READ_COMMITTED, READ_UNCOMMITTED = "read_committed", "read_uncommitted"
ISOLATION_LEVELS = (READ_COMMITTED, READ_UNCOMMITTED)  # Kafka's order in its message

# java.time.Duration's pattern (its Lazy.PATTERN), matched case-insensitively in ASCII
# only, as Java's CASE_INSENSITIVE without UNICODE_CASE: 'ſ' (U+017F) is no 's'.
_DURATION = re.compile(
    r"([-+]?)P(?:([-+]?[0-9]+)D)?"
    r"(T(?:([-+]?[0-9]+)H)?(?:([-+]?[0-9]+)M)?(?:([-+]?[0-9]+)(?:[.,]([0-9]{0,9}))?S)?)?",
    re.IGNORECASE | re.ASCII,
)
_LONG_MAX = 2**63 - 1
# Longer text is no duration Java parses into a long of seconds.
_DURATION_TEXT_MAX = 200


def duration_ms(text: str) -> int | None:
    """An ISO-8601 duration in ms as Java's Duration.parse reads it (negative allowed),
    or None when Java would refuse it."""
    if len(text) > _DURATION_TEXT_MAX:
        return None
    match = _DURATION.fullmatch(text)
    if match is None or match.group(3) is not None and match.group(3).upper() == "T":
        return None  # a T with no time part, as Java refuses
    sign, days, hours, minutes, seconds, fraction = match.group(1, 2, 4, 5, 6, 7)
    if days is None and hours is None and minutes is None and seconds is None:
        return None
    total = 0
    for part, unit in ((days, 86_400), (hours, 3_600), (minutes, 60), (seconds, 1)):
        if part is not None:
            total += int(part) * unit
            if abs(int(part) * unit) > _LONG_MAX or abs(total) > _LONG_MAX:
                return None  # Java's Math.multiplyExact / addExact overflow
    nanos = int(fraction.ljust(9, "0")) if fraction else 0
    if seconds is not None and seconds.startswith("-"):
        nanos = -nanos
    # Exact in nanoseconds, so a sub-millisecond negative duration stays negative (Java's
    # isNegative): whole milliseconds towards zero, but -1 rather than 0 for it.
    exact = (total * 1_000_000_000 + nanos) * (-1 if sign == "-" else 1)
    if exact < 0:
        return -(-exact // 1_000_000) or -1
    return exact // 1_000_000


@dataclass(frozen=True, slots=True)
class OffsetReset:
    """Where a share partition the group never fetched starts."""

    strategy: str  # EARLIEST, LATEST or BY_DURATION
    duration_ms: int = 0  # BY_DURATION: records newer than now minus this


def offset_reset(text: str) -> OffsetReset | None:
    """`share.auto.offset.reset`'s value, or None when Kafka refuses it."""
    if text in (EARLIEST, LATEST):
        return OffsetReset(text)
    if text.startswith(BY_DURATION):
        millis = duration_ms(text[len(BY_DURATION) :])
        if millis is not None and millis >= 0:
            return OffsetReset(BY_DURATION, millis)
    return None


def reset_refusal(text: str) -> str:
    """Kafka's message for a `share.auto.offset.reset` it refuses."""
    return (
        f"Invalid value {text} for configuration {AUTO_OFFSET_RESET}: Invalid value `{text}` "
        f"for configuration {AUTO_OFFSET_RESET}. The value must be either 'earliest', "
        "'latest' or of the format 'by_duration:<PnDTnHnMn.nS>'."
    )


def isolation_refusal(text: str) -> str:
    return (
        f"Invalid value {text} for configuration {ISOLATION_LEVEL}: String must be one of: "
        + ", ".join(ISOLATION_LEVELS)
    )


@dataclass(frozen=True, slots=True)
class ShareGroupValues:
    """What one share group runs with: its overrides, else the broker's settings."""

    session_timeout_ms: int
    heartbeat_interval_ms: int
    record_lock_duration_ms: int
    offset_reset: OffsetReset
    read_committed: bool
    delivery_count_limit: int = 5
    partition_max_record_locks: int = 2_000
    renew_enabled: bool = True
    assignment_interval_ms: int = 1_000


def share_group_values(
    overrides: Mapping[str, str],
    defaults: Mapping[str, int],
    bounds: Mapping[str, tuple[int, int]],
) -> ShareGroupValues:
    """The group's values from its stored (already checked) overrides: `defaults` and
    `bounds` map each of `INT_CONFIGS` to the broker's setting and its current
    `group.share.min/max.*` (an override outside them is capped; the broker's own
    value never is)."""

    def number(name: str) -> int:
        value = java_int(overrides.get(name, ""))
        if value is None:
            return defaults[name]
        low, high = bounds[name]
        return min(max(value, low), high)

    # Stored as given: read trimmed, as Kafka reads them.
    reset = offset_reset(java_trim(overrides.get(AUTO_OFFSET_RESET, LATEST)))
    return ShareGroupValues(
        number(SESSION_TIMEOUT),
        number(HEARTBEAT_INTERVAL),
        number(RECORD_LOCK_DURATION),
        reset or OffsetReset(LATEST),
        java_trim(overrides.get(ISOLATION_LEVEL, "")) == READ_COMMITTED,
        number(DELIVERY_COUNT_LIMIT),
        number(PARTITION_MAX_RECORD_LOCKS),
        java_trim(overrides.get(RENEW_ACKNOWLEDGE, "true")).lower() != "false",
        number(ASSIGNMENT_INTERVAL),
    )


def capped(
    overrides: Mapping[str, str], bounds: Mapping[str, tuple[int, int]]
) -> Iterator[tuple[str, int, str, int]]:
    """Each INT override outside `bounds`: (name, value, "minimum" or "maximum", the
    value it is capped to)."""
    for name in INT_CONFIGS:
        value = java_int(overrides.get(name, ""))
        if value is None:
            continue
        low, high = bounds[name]
        if value < low:
            yield name, value, "minimum", low
        elif value > high:
            yield name, value, "maximum", high
