"""Per-group configs (Kafka's GroupConfig, GROUP config resources of DescribeConfigs and
IncrementalAlterConfigs): the consumer groups' `consumer.session.timeout.ms`,
`consumer.heartbeat.interval.ms`, `consumer.assignment.interval.ms` and
`consumer.assignor.offload.enable`, the share groups' `share.session.timeout.ms`,
`share.heartbeat.interval.ms`, `share.record.lock.duration.ms`, `share.delivery.count.limit`,
`share.partition.max.record.locks`, `share.renew.acknowledge.enable`,
`share.assignment.interval.ms`, `share.assignor.offload.enable`, `share.auto.offset.reset`
and `share.isolation.level` (`share_group_configs.py` reads the share ones), and KIP-1191's
dead-letter configs; each INT one overrides its `group.*` broker setting for one group.

Rules of this file:

* Values are checked as Kafka checks them: a known name, an INT at least its ConfigDef
  floor (`GroupConfigSpec.floor`) and within the broker's bounds
  (`group.consumer.min/max.*` and `group.share.min/max.*` settings, named by
  `GroupConfigSpec.bounds`), a session timeout above its heartbeat interval (each the
  group's or else the broker's), a STRING among its values; errors are INVALID_CONFIG with
  Kafka's messages; a dead-letter topic name starting with `__` is refused.
* Stored values, consumer and share alike, are loaded as they are (`checked(configs,
  None)`): bounds changed since hold for the next alteration, never refuse a start. A
  share group's INT overrides outside the current bounds are capped to them when used
  (`share_values`), as Kafka's GroupConfig.evaluate caps them, with its warning at load.
* A group without an override uses the broker setting; overrides apply from the group's
  next heartbeat (the session timer a heartbeat restarts, the interval it answers), a
  lock duration from the next records acquired, the reset and isolation level from the
  next ShareFetch.
* Kafka 4.4's streams groups' configs are refused as unknown: streams groups are not
  built.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from contextplane.coordinators import share_group_configs as share
from contextplane.coordinators.consumer_group import messages
from contextplane.errors import KafkaError
from contextplane.limits import INT_MAX
from contextplane.protocol.error_codes import ErrorCode
from contextplane.settings import Settings

SESSION_TIMEOUT = "consumer.session.timeout.ms"
HEARTBEAT_INTERVAL = "consumer.heartbeat.interval.ms"
ASSIGNMENT_INTERVAL = "consumer.assignment.interval.ms"
# Accepted and described as Kafka 4.4's (an internal config there); nothing to offload to.
ASSIGNOR_OFFLOAD = "consumer.assignor.offload.enable"
SHARE_AUTO_OFFSET_RESET = share.AUTO_OFFSET_RESET
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
    kind: str = ""  # "string" (free text), "boolean", "reset"; "" for INT or a choice
    # The broker settings bounding an INT (`group.*.min/max.*`; empty: fixed bounds).
    bounds: tuple[str, str] = ("", "")
    default: str = ""  # the value without an override, when no broker setting gives it
    floor: int = 1  # an INT's ConfigDef validator (`atLeast`), checked before the bounds
    internal: bool = False  # Kafka's defineInternal: an override is described as given


SPECS: dict[str, GroupConfigSpec] = {
    SESSION_TIMEOUT: GroupConfigSpec(
        "group.consumer.session.timeout.ms",
        messages.SESSION_TIMEOUT_MS_MIN,
        messages.SESSION_TIMEOUT_MS_MAX,
        "The timeout to detect client failures when using the consumer group protocol.",
        bounds=("group.consumer.min.session.timeout.ms", "group.consumer.max.session.timeout.ms"),
    ),
    HEARTBEAT_INTERVAL: GroupConfigSpec(
        "group.consumer.heartbeat.interval.ms",
        messages.HEARTBEAT_INTERVAL_MS_MIN,
        messages.HEARTBEAT_INTERVAL_MS_MAX,
        "The heartbeat interval given to the members of a consumer group.",
        bounds=(
            "group.consumer.min.heartbeat.interval.ms",
            "group.consumer.max.heartbeat.interval.ms",
        ),
    ),
    ASSIGNMENT_INTERVAL: GroupConfigSpec(
        "group.consumer.assignment.interval.ms",
        0,
        0,
        "The interval between assignment updates for a consumer group.",
        bounds=(
            "group.consumer.min.assignment.interval.ms",
            "group.consumer.max.assignment.interval.ms",
        ),
        floor=0,
    ),
    ASSIGNOR_OFFLOAD: GroupConfigSpec(
        "group.consumer.assignor.offload.enable",
        0,
        0,
        "Whether to offload consumer group assignment to a group coordinator background thread.",
        kind="boolean",
        internal=True,
    ),
    share.SESSION_TIMEOUT: GroupConfigSpec(
        "group.share.session.timeout.ms",
        0,
        0,
        "The timeout to detect client failures when using the share group protocol.",
        bounds=("group.share.min.session.timeout.ms", "group.share.max.session.timeout.ms"),
    ),
    share.HEARTBEAT_INTERVAL: GroupConfigSpec(
        "group.share.heartbeat.interval.ms",
        0,
        0,
        "The heartbeat interval given to the members of a share group.",
        bounds=("group.share.min.heartbeat.interval.ms", "group.share.max.heartbeat.interval.ms"),
    ),
    share.RECORD_LOCK_DURATION: GroupConfigSpec(
        "group.share.record.lock.duration.ms",
        0,
        0,
        "The record acquisition lock duration in milliseconds for share groups.",
        bounds=(
            "group.share.min.record.lock.duration.ms",
            "group.share.max.record.lock.duration.ms",
        ),
        floor=1_000,
    ),
    share.DELIVERY_COUNT_LIMIT: GroupConfigSpec(
        "group.share.delivery.count.limit",
        0,
        0,
        "The maximum number of delivery attempts for a record delivered to a share group.",
        bounds=("group.share.min.delivery.count.limit", "group.share.max.delivery.count.limit"),
        floor=2,
    ),
    share.PARTITION_MAX_RECORD_LOCKS: GroupConfigSpec(
        "group.share.partition.max.record.locks",
        0,
        0,
        "Share-group record lock limit per share-partition.",
        bounds=(
            "group.share.min.partition.max.record.locks",
            "group.share.max.partition.max.record.locks",
        ),
        floor=100,
    ),
    share.RENEW_ACKNOWLEDGE: GroupConfigSpec(
        "",
        0,
        0,
        "Whether the renew acknowledge type is enabled for the share group.",
        kind="boolean",
        default="true",
    ),
    share.ASSIGNMENT_INTERVAL: GroupConfigSpec(
        "group.share.assignment.interval.ms",
        0,
        0,
        "The interval between assignment updates for a share group.",
        bounds=(
            "group.share.min.assignment.interval.ms",
            "group.share.max.assignment.interval.ms",
        ),
        floor=0,
    ),
    share.ASSIGNOR_OFFLOAD: GroupConfigSpec(
        "group.share.assignor.offload.enable",
        0,
        0,
        "Whether to offload share group assignment to a group coordinator background thread.",
        kind="boolean",
        internal=True,
    ),
    SHARE_AUTO_OFFSET_RESET: GroupConfigSpec(
        "",
        0,
        0,
        "The strategy to initialize the share-partition start offset. <ul><li>earliest: "
        "automatically reset the offset to the earliest offset</li><li>latest: "
        "automatically reset the offset to the latest offset</li><li>by_duration:&lt;"
        "duration&gt;: automatically reset the offset to a configured duration from the "
        "current timestamp. &lt;duration&gt; must be specified in ISO8601 format "
        "(PnDTnHnMn.nS). Negative duration is not allowed.</li><li>anything else: throw "
        "exception to the share consumer.</li></ul>",
        kind="reset",
        default=share.LATEST,
    ),
    share.ISOLATION_LEVEL: GroupConfigSpec(
        "",
        0,
        0,
        'Controls how to read records written transactionally. If set to "read_committed", '
        "the share group will only deliver transactional records which have been committed. "
        'If set to "read_uncommitted", the share group will return all messages, even '
        "transactional messages which have been aborted. Non-transactional records will be "
        "returned unconditionally in either mode.",
        share.ISOLATION_LEVELS,
        default=share.READ_UNCOMMITTED,
    ),
    DLQ_TOPIC_NAME: GroupConfigSpec(
        "",
        0,
        0,
        "The name of the topic to be used as the dead-letter queue (DLQ) topic for this "
        "share group. If blank (the default), the group does not have a DLQ topic.",
        kind="string",
    ),
    DLQ_COPY_RECORD: GroupConfigSpec(
        "",
        0,
        0,
        "When writing onto the dead-letter queue topic, whether to copy the original record "
        "onto the DLQ topic, or just write a record containing the context information "
        "headers.",
        kind="boolean",
        default="false",
    ),
}


# (session timeout, heartbeat interval) pairs Kafka checks one against the other.
_SESSION_PAIRS = (
    (SESSION_TIMEOUT, HEARTBEAT_INTERVAL),
    (share.SESSION_TIMEOUT, share.HEARTBEAT_INTERVAL),
)


def is_string(spec: GroupConfigSpec) -> bool:
    """A STRING config (free text, a choice or the reset), as DescribeConfigs types it."""
    return bool(spec.choices) or spec.kind in ("string", "reset")


def described(name: str, text: str) -> str:
    """A stored (already checked) override as Kafka describes it: its parsed value
    written back (ConfigDef.convertToString), so ` 7 ` is `7` and `FALSE` is `false`."""
    trimmed = share.java_trim(text)
    spec = SPECS.get(name)
    if spec is not None and spec.internal:
        return text  # Kafka 4.4 describes an internal config's override untouched
    if spec is None or is_string(spec):
        return trimmed
    if spec.kind == "boolean":
        return trimmed.lower()
    value = share.java_int(trimmed)
    return trimmed if value is None else str(value)


def broker_value(name: str, settings: Settings) -> int | str:
    """The value a group without an override has: its broker setting's, else the
    config's own default."""
    spec = SPECS[name]
    if spec.broker_setting:
        value: int | str | bool = getattr(settings, spec.broker_setting.replace(".", "_"))
        if isinstance(value, bool):
            return "true" if value else "false"  # as Kafka writes a BOOLEAN
        return value
    return spec.default


def bounds_of(spec: GroupConfigSpec, settings: Settings) -> tuple[int, int]:
    low, high = spec.bounds
    if not low:
        return spec.minimum, spec.maximum
    return getattr(settings, low.replace(".", "_")), getattr(settings, high.replace(".", "_"))


def checked(configs: Mapping[str, str], settings: Settings | None) -> dict[str, int]:
    """The INT overrides as integers (the STRING ones checked, not returned), or
    KafkaError(INVALID_CONFIG) with Kafka's message. `settings`: the broker's, whose
    bounds and defaults apply; None for stored values, loaded at start, which are not held
    to the broker's current bounds."""
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
            # At alteration only: one stored before this check still loads.
            dlq = name == DLQ_TOPIC_NAME and settings is not None
            if dlq and share.java_trim(text).startswith("__"):
                raise KafkaError(
                    ErrorCode.invalid_config,
                    f"{name}: DLQ topic name must not start with '__'",
                )
            continue
        if spec.kind == "boolean":
            if share.java_trim(text).lower() not in _BOOLEANS:
                raise KafkaError(
                    ErrorCode.invalid_config,
                    f"Invalid value {text} for configuration {name}: Expected value to be "
                    "either true or false",
                )
            continue
        if spec.kind == "reset":
            if share.offset_reset(share.java_trim(text)) is None:
                raise KafkaError(
                    ErrorCode.invalid_config, share.reset_refusal(share.java_trim(text))
                )
            continue
        if spec.choices:
            if share.java_trim(text) not in spec.choices:
                raise KafkaError(
                    ErrorCode.invalid_config, share.isolation_refusal(share.java_trim(text))
                )
            continue
        value = share.java_int(text)
        if value is None or not -(2**31) <= value < 2**31:
            raise KafkaError(
                ErrorCode.invalid_config,
                f"Invalid value {text} for configuration {name}: Not a number of type INT",
            )
        if value < spec.floor:
            raise KafkaError(
                ErrorCode.invalid_config,
                f"Invalid value {value} for configuration {name}: Value must be at least "
                f"{spec.floor}",
            )
        # A stored value is held to its floor only (an interval of 0 is a valid one).
        low, high = bounds_of(spec, settings) if settings is not None else (spec.floor, INT_MAX)
        if not low <= value <= high:
            raise KafkaError(
                ErrorCode.invalid_config, f"{name} must be in the range {low} to {high} inclusive."
            )
        values[name] = value
    if settings is None:
        return values
    for session, heartbeat in _SESSION_PAIRS:
        if session in values or heartbeat in values:
            # Kafka 4.4: the group's session (its own or the broker's) must exceed its interval.
            session_ms = values.get(session, int(broker_value(session, settings)))
            heartbeat_ms = values.get(heartbeat, int(broker_value(heartbeat, settings)))
            if session_ms <= heartbeat_ms:
                raise KafkaError(
                    ErrorCode.invalid_config, f"{session} must be greater than {heartbeat}"
                )
    return values
