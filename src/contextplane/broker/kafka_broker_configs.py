"""Apache Kafka 4.4's broker configs as dynamic broker configs (KIP-226) see them: which
may be updated without restart, at which level, and how Kafka validates a value
and its type (`kafka_broker_configs.tsv`, generated from Kafka's own jars), with Kafka's
messages."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from contextplane.java_numbers import (
    INT_MAX,
    INT_MIN,
    LONG_MAX,
    LONG_MIN,
    java_double,
    java_double_text,
    java_int,
)

STATIC = "static"
CLUSTER_WIDE = "cluster-wide"
PER_BROKER = "per-broker"
# DYNAMIC_SECURITY_CONFIGS: dynamic only per listener (`listener.name.<listener>.<name>`).
LISTENER = "listener"

_RANGES = {"SHORT": (-(2**15), 2**15 - 1), "INT": (INT_MIN, INT_MAX), "LONG": (LONG_MIN, LONG_MAX)}
_RANGE = re.compile(r"\[(-?[0-9.]+),\.\.\.(?:,(-?[0-9.]+))?\]")
_LISTENER_PREFIX = re.compile(r"listener\.name\.[^.]*\.(.*)")


@dataclass(frozen=True)
class KafkaBrokerConfig:
    name: str
    mode: str  # STATIC, CLUSTER_WIDE, PER_BROKER or LISTENER
    type: str = ""  # ConfigDef's type: INT, LONG, DOUBLE, BOOLEAN, STRING, LIST, ...
    validator: str = ""  # a dynamic config's validator as Kafka prints it: "[0,...]", "[a, b]"
    default: str | None = None  # Kafka's default as DescribeConfigs prints it; None: none
    described: bool = False  # listed by Kafka's DescribeConfigs of a broker

    def refusal(self, value: str) -> str | None:
        """Kafka's message refusing `value` for this config (ConfigDef.parseType and the
        validator's ensureValid), or None."""
        text = value.strip()
        prefix = f"Invalid value {value} for configuration {self.name}:"
        number: float | None = None
        if self.type in _RANGES:
            number = java_int(text)
            low, high = _RANGES[self.type]
            if number is None or not low <= number <= high:
                return f"{prefix} Not a number of type {self.type}"
        elif self.type == "DOUBLE":
            number = java_double(text)
            if number is None:
                return f"{prefix} Not a number of type DOUBLE"
        elif self.type == "BOOLEAN" and text.lower() not in ("true", "false"):
            return f"{prefix} Expected value to be either true or false"
        bounds = _RANGE.fullmatch(self.validator)
        if number is not None and bounds is not None:
            return _range_refusal(self.name, number, bounds[1], bounds[2])
        if self.validator.startswith("[") and bounds is None and self.type in ("STRING", "LIST"):
            allowed = self.validator[1:-1].split(", ")
            items = [i.strip() for i in text.split(",")] if self.type == "LIST" else [text]
            if self.type == "LIST" and "" in items and text:
                return f"Configuration '{self.name}' values must not be empty."
            for item in items if text or self.type == "STRING" else []:
                if item not in allowed:
                    return (
                        f"Invalid value {item} for configuration {self.name}: "
                        f"String must be one of: {', '.join(allowed)}"
                    )
        return None


def _range_refusal(name: str, number: float, low: str, high: str | None) -> str | None:
    """Range.ensureValid's message; the number as Java prints it."""
    shown = number if isinstance(number, int) else java_double_text(number)
    if number < float(low):
        return f"Invalid value {shown} for configuration {name}: Value must be at least {low}"
    if high is not None and number > float(high):
        return f"Invalid value {shown} for configuration {name}: Value must be no more than {high}"
    return None


def _load() -> dict[str, KafkaBrokerConfig]:
    # Beside this module (package data); not importlib.resources, which imports tempfile.
    text = Path(__file__).with_name("kafka_broker_configs.tsv").read_text()
    table: dict[str, KafkaBrokerConfig] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            fields = line.split("\t")
            default = None if fields[4] == "\\N" else fields[4]
            name, mode, type_, validator = fields[:4]
            described = fields[5] != "internal"
            table[name] = KafkaBrokerConfig(name, mode, type_, validator, default, described)
    return table


KAFKA_BROKER_CONFIGS = _load()


def base_name(name: str) -> str:
    """A listener config's base name (`listener.name.internal.ssl.keystore.type` is
    `ssl.keystore.type`); any other name itself."""
    match = _LISTENER_PREFIX.fullmatch(name)
    return match[1] if match else name


def mode_of(name: str) -> str | None:
    """How Kafka 4.4 lets `name` be updated; None for a name Kafka does not know (a
    custom config, which Kafka stores as given). A `listener.name.*` config is per broker."""
    if _LISTENER_PREFIX.fullmatch(name):
        return PER_BROKER
    config = KAFKA_BROKER_CONFIGS.get(name)
    return config.mode if config is not None else None
