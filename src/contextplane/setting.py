"""One row of the settings table: kept apart so that each area's rows (security, audit,
transactions, ...) can live in their own module and `settings_table` only joins them."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Setting"]


@dataclass(frozen=True)
class Setting:
    """One row of the settings table. Its type and default are those of the field."""

    name: str  # Kafka's name where Kafka has one
    attr: str  # the Settings field it sets
    unit: str
    meaning: str
    aliases: tuple[str, ...] = ()  # also accepted, after `name` in precedence
    # A given value is multiplied by this (log.retention.hours sets retention_ms); a
    # negative one stays -1 (no limit), as Kafka converts it.
    scale: int = 1
    # The README's default when the field's own default needs words (derived values).
    default_text: str | None = None
    # Accepted range of an int setting, as given (before `scale`), checked for every source.
    low: int | None = None
    high: int | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)
