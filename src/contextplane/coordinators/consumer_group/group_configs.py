"""Per-group configs of consumer groups (Kafka's GroupConfig, GROUP config resources of
DescribeConfigs and IncrementalAlterConfigs): `consumer.session.timeout.ms` and
`consumer.heartbeat.interval.ms`, each overriding its `group.consumer.*` broker setting for
one group.

Rules of this file:

* Values are checked as Kafka checks them: a known name, an INT, within the broker's
  `group.consumer.min/max.*` settings (`bounds`), the session above the heartbeat
  interval (each the group's or else the broker's); errors are INVALID_CONFIG with Kafka's
  messages. Stored values are loaded as they are, whatever the bounds are now.
* A group without an override uses the broker setting; overrides apply from the group's
  next heartbeat (the session timer a heartbeat restarts, the interval it answers).
* The consumer group configs, share groups' `share.auto.offset.reset` (STRING: `latest`
  or `earliest`) and KIP-1191's dead-letter configs `errors.deadletterqueue.topic.name`
  (STRING, a topic name or empty) and `errors.deadletterqueue.copy.record.enable`
  (BOOLEAN) are known; the other share and the streams groups' ones are refused as
  unknown until they are built.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from contextplane.coordinators.consumer_group import messages
from contextplane.coordinators.consumer_group.messages import ConsumerGroupConfig
from contextplane.errors import KafkaError
from contextplane.limits import INT_MAX
from contextplane.protocol.error_codes import ErrorCode

SESSION_TIMEOUT = "consumer.session.timeout.ms"
HEARTBEAT_INTERVAL = "consumer.heartbeat.interval.ms"
SHARE_AUTO_OFFSET_RESET = "share.auto.offset.reset"
# Kafka also takes "by_duration:<ISO-8601 duration>": not built (refused as invalid).
SHARE_AUTO_OFFSET_RESETS = ("latest", "earliest")
# KIP-1191: where a share group's undeliverable records are copied, and whether the copy
# carries the record's key and value (else only the context headers).
DLQ_TOPIC_NAME = "errors.deadletterqueue.topic.name"
DLQ_COPY_RECORD = "errors.deadletterqueue.copy.record.enable"
_BOOLEANS = ("true", "false")
_TOPIC_NAME_LENGTH_MAX = 249  # Kafka's Topic.MAX_NAME_LENGTH


@dataclass(frozen=True, slots=True)
class GroupConfigSpec:
    broker_setting: str  # the synonym a group without an override uses ("": none)
    minimum: int
    maximum: int
    documentation: str
    choices: tuple[str, ...] = ()  # a STRING config's values (empty: an INT config)
    kind: str = ""  # "string" (free text), "boolean"; "" for INT or a choice


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
    DLQ_TOPIC_NAME: GroupConfigSpec(
        "",
        0,
        0,
        "The name of the topic to be used as the dead-letter queue (DLQ) for records that "
        "exceed the delivery count limit or are rejected by a share consumer.",
        kind="string",
    ),
    DLQ_COPY_RECORD: GroupConfigSpec(
        "",
        0,
        0,
        "Whether the key and value of a record are copied into its DLQ record.",
        kind="boolean",
    ),
}


def is_string(spec: GroupConfigSpec) -> bool:
    """A STRING config (free text or a choice), as DescribeConfigs types it."""
    return bool(spec.choices) or spec.kind == "string"


def broker_value(name: str, config: ConsumerGroupConfig) -> int | str:
    if name == SESSION_TIMEOUT:
        return config.session_timeout_ms
    if name == SHARE_AUTO_OFFSET_RESET:
        return SHARE_AUTO_OFFSET_RESETS[0]  # Kafka's default, latest
    if name == DLQ_TOPIC_NAME:
        return ""  # no dead-letter topic
    if name == DLQ_COPY_RECORD:
        return "false"
    return config.heartbeat_interval_ms


def bounds(name: str, config: ConsumerGroupConfig) -> tuple[int, int]:
    """An INT config's range: the broker's group.consumer.min/max.* settings."""
    if name == SESSION_TIMEOUT:
        return config.min_session_timeout_ms, config.max_session_timeout_ms
    if name == HEARTBEAT_INTERVAL:
        return config.min_heartbeat_interval_ms, config.max_heartbeat_interval_ms
    spec = SPECS[name]
    return spec.minimum, spec.maximum


def checked(configs: Mapping[str, str], config: ConsumerGroupConfig | None) -> dict[str, int]:
    """The INT overrides as integers (the STRING ones checked, not returned), or
    KafkaError(INVALID_CONFIG) with Kafka's message. Without `config` (stored values,
    loaded at start) an INT is not held to the broker's current bounds."""
    values: dict[str, int] = {}
    for name, text in configs.items():
        spec = SPECS.get(name)
        if spec is None:
            raise KafkaError(ErrorCode.invalid_config, f"Unknown group config name: {name}")
        if spec.kind == "string":
            if len(text) > _TOPIC_NAME_LENGTH_MAX:
                raise KafkaError(
                    ErrorCode.invalid_config,
                    f"Invalid value for configuration {name}: a topic name is at most "
                    f"{_TOPIC_NAME_LENGTH_MAX} characters",
                )
            continue
        if spec.kind == "boolean":
            if text.strip().lower() not in _BOOLEANS:
                raise KafkaError(
                    ErrorCode.invalid_config,
                    f"Invalid value {text} for configuration {name}: Expected value to be "
                    "either true or false",
                )
            continue
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
        low, high = bounds(name, config) if config is not None else (1, INT_MAX)
        if not low <= value <= high:
            raise KafkaError(
                ErrorCode.invalid_config, f"{name} must be in the range {low} to {high} inclusive."
            )
        values[name] = value
    if config is not None and (SESSION_TIMEOUT in values or HEARTBEAT_INTERVAL in values):
        # Kafka 4.4: the group's session (its own or the broker's) must exceed its interval.
        session = values.get(SESSION_TIMEOUT, config.session_timeout_ms)
        if session <= values.get(HEARTBEAT_INTERVAL, config.heartbeat_interval_ms):
            raise KafkaError(
                ErrorCode.invalid_config,
                f"{SESSION_TIMEOUT} must be greater than {HEARTBEAT_INTERVAL}",
            )
    return values
