"""Per-group configs of consumer groups (Kafka's GroupConfig, GROUP config resources of
DescribeConfigs and IncrementalAlterConfigs): `consumer.session.timeout.ms` and
`consumer.heartbeat.interval.ms`, each overriding its `group.consumer.*` broker setting for
one group.

Rules of this file:

* Values are checked as Kafka checks them: a known name, an INT, within the broker's
  `group.consumer.min/max.*` bounds; errors are INVALID_CONFIG with Kafka's messages.
* A group without an override uses the broker setting; overrides apply from the group's
  next heartbeat (the session timer a heartbeat restarts, the interval it answers).
* The consumer group configs and share groups' `share.auto.offset.reset` (STRING:
  `latest` or `earliest`) are known; the other share and the streams groups' ones are
  refused as unknown until they are built.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from contextplane.coordinators.consumer_group import messages
from contextplane.coordinators.consumer_group.messages import ConsumerGroupConfig
from contextplane.errors import KafkaError
from contextplane.protocol.error_codes import ErrorCode

SESSION_TIMEOUT = "consumer.session.timeout.ms"
HEARTBEAT_INTERVAL = "consumer.heartbeat.interval.ms"
SHARE_AUTO_OFFSET_RESET = "share.auto.offset.reset"
# Kafka also takes "by_duration:<ISO-8601 duration>": not built (refused as invalid).
SHARE_AUTO_OFFSET_RESETS = ("latest", "earliest")


@dataclass(frozen=True, slots=True)
class GroupConfigSpec:
    broker_setting: str  # the synonym a group without an override uses ("": none)
    minimum: int
    maximum: int
    documentation: str
    choices: tuple[str, ...] = ()  # a STRING config's values (empty: an INT config)


SPECS: dict[str, GroupConfigSpec] = {
    SESSION_TIMEOUT: GroupConfigSpec(
        "group.consumer.session.timeout.ms",
        messages.SESSION_TIMEOUT_MS_MIN,
        messages.SESSION_TIMEOUT_MS_MAX,
        "The timeout to detect client failures when using the consumer group protocol.",
    ),
    HEARTBEAT_INTERVAL: GroupConfigSpec(
        "group.consumer.heartbeat.interval.ms",
        messages.HEARTBEAT_INTERVAL_MS_MIN,
        messages.HEARTBEAT_INTERVAL_MS_MAX,
        "The heartbeat interval given to the members of a consumer group.",
    ),
    SHARE_AUTO_OFFSET_RESET: GroupConfigSpec(
        "",
        0,
        0,
        "The strategy to initialize the share-partition start offset.",
        SHARE_AUTO_OFFSET_RESETS,
    ),
}


def broker_value(name: str, config: ConsumerGroupConfig) -> int | str:
    if name == SESSION_TIMEOUT:
        return config.session_timeout_ms
    if name == SHARE_AUTO_OFFSET_RESET:
        return SHARE_AUTO_OFFSET_RESETS[0]  # Kafka's default, latest
    return config.heartbeat_interval_ms


def checked(configs: Mapping[str, str]) -> dict[str, int]:
    """The INT overrides as integers (the STRING ones checked, not returned), or
    KafkaError(INVALID_CONFIG) with Kafka's message."""
    values: dict[str, int] = {}
    for name, text in configs.items():
        spec = SPECS.get(name)
        if spec is None:
            raise KafkaError(ErrorCode.invalid_config, f"Unknown group config name: {name}")
        if spec.choices:
            if text.strip().lower() not in spec.choices:
                raise KafkaError(
                    ErrorCode.invalid_config,
                    f"Invalid value {text} for configuration {name}: the value must be "
                    f"either 'earliest', 'latest' or of the format "
                    f"'by_duration:<PnDTnHnMn.nS.>'.",
                )
            continue
        try:
            value = int(text.strip())
        except ValueError:
            raise KafkaError(
                ErrorCode.invalid_config,
                f"Invalid value {text} for configuration {name}: Not a number of type INT",
            ) from None
        if not spec.minimum <= value <= spec.maximum:
            raise KafkaError(
                ErrorCode.invalid_config,
                f"{name} must be in the range {spec.minimum} to {spec.maximum} inclusive.",
            )
        values[name] = value
    return values
