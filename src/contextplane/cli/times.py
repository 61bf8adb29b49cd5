"""The times the client commands take on their command line: an ISO 8601 moment
(`--to-datetime`, `--from-timestamp`), epoch milliseconds, and Java's ISO 8601 duration
(`--by-duration`, as `kafka-consumer-groups.sh` parses it with `Duration.parse`). Each
refuses what it cannot read with ConfigError naming the option (exit status 2)."""

from __future__ import annotations

import datetime
import re

from contextplane.cli.kafka_client import ConfigError

# java.time.Duration.parse's grammar: [-+]P[nD][T[nH][nM][n[.f]S]], case-insensitive,
# each number signed; at most 18 digits a number keeps the arithmetic within a long.
_DURATION = re.compile(
    r"([-+]?)P(?:([-+]?\d{1,18})D)?"
    r"(T(?:([-+]?\d{1,18})H)?(?:([-+]?\d{1,18})M)?(?:([-+]?\d{1,18})(?:[.,](\d{0,9}))?S)?)?",
    re.IGNORECASE,
)
# A duration longer than this reaches before the epoch from any present time.
_MAX_DURATION_MS = 10**15


def parse_datetime_ms(text: str, option: str) -> int:
    """Milliseconds since the epoch of an ISO 8601 time (UTC unless it says)."""
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{option} {text!r}: not an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return int(moment.timestamp() * 1000)


def parse_timestamp_ms(text: str, option: str) -> int:
    """Epoch milliseconds (digits only, as kcat's `s@TS` takes them) or an ISO 8601 time."""
    if text.isdigit():
        if len(text) > 15:  # past the year 33,000: not a record's time
            raise ConfigError(f"{option} {text!r}: milliseconds out of range")
        return int(text)
    try:
        return parse_datetime_ms(text, option)
    except ConfigError:
        raise ConfigError(
            f"{option} {text!r}: neither epoch milliseconds nor an ISO 8601 time"
        ) from None


def parse_duration_ms(text: str, option: str = "--by-duration") -> int:
    """Milliseconds of a Java ISO 8601 duration (`P1D`, `PT1H30M`, `PT0.5S`, `-PT1H`):
    days, hours, minutes and seconds, as `Duration.parse` reads them (no weeks, months or
    years, a `T` only before a time part, at least one part)."""
    match = _DURATION.fullmatch(text)
    if match is None or match.group(3) == "T" or not any(match.group(i) for i in (2, 4, 5, 6)):
        raise ConfigError(
            f"{option} {text!r}: not an ISO 8601 duration PnDTnHnMnS (e.g. PT1H30M, P1D)"
        )
    sign, days, _, hours, minutes, seconds, fraction = match.groups()
    seconds_text = seconds or "0"
    millis = int(((fraction or "") + "000")[:3])
    whole = (
        int(days or 0) * 86_400_000
        + int(hours or 0) * 3_600_000
        + int(minutes or 0) * 60_000
        + int(seconds_text) * 1000
        + (-millis if seconds_text.startswith("-") else millis)
    )
    whole = -whole if sign == "-" else whole
    if abs(whole) > _MAX_DURATION_MS:
        raise ConfigError(f"{option} {text!r}: longer than the time since 1970")
    return whole
