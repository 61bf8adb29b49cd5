"""Topic configuration names and defaults, as Kafka documents them.

Only configs the broker honours or can honestly report are accepted; an unknown name is
INVALID_CONFIG, as in Kafka.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from contextplane.broker import subject_strategies as subjects
from contextplane.broker.config_descriptions import KAFKA_TOPIC_CONFIGS
from contextplane.broker.kafka_broker_configs import KafkaBrokerConfig
from contextplane.errors import KafkaError
from contextplane.java_numbers import (
    INT_MAX,
    INT_MIN,
    LONG_MAX,
    LONG_MIN,
    java_double,
    java_int,
    java_trim,
)
from contextplane.protocol.error_codes import ErrorCode
from contextplane.settings import Settings

# Kafka's INT and LONG topic configs and their atLeast floors (LogConfig's ConfigDef).
_INT = "INT"
_LONG = "LONG"
_RANGES = {_INT: (INT_MIN, INT_MAX), _LONG: (LONG_MIN, LONG_MAX)}
INTEGER_CONFIGS: dict[str, tuple[str, int | None]] = {
    "retention.ms": (_LONG, -1),
    "retention.bytes": (_LONG, None),
    # Kafka 4's floor for segment.bytes is 1 MiB.
    "segment.bytes": (_INT, 1024 * 1024),
    "segment.ms": (_LONG, 1),
    "max.message.bytes": (_INT, 0),
    "min.insync.replicas": (_INT, 1),
    "delete.retention.ms": (_LONG, 0),
    "min.compaction.lag.ms": (_LONG, 0),
    "max.compaction.lag.ms": (_LONG, 1),
    "file.delete.delay.ms": (_LONG, 0),
    "flush.messages": (_LONG, 1),
    "flush.ms": (_LONG, 0),
    "message.timestamp.before.max.ms": (_LONG, 0),
    "message.timestamp.after.max.ms": (_LONG, 0),
}


def integer_refusal(name: str, value: str) -> str | None:
    """ConfigDef's message refusing `value` for integer config `name`, or None. A value
    below the floor is named as parsed (Range.ensureValid gets the number, not the text)."""
    kind, floor = INTEGER_CONFIGS[name]
    number = java_int(value)
    low, high = _RANGES[kind]
    if number is None or not low <= number <= high:
        return f"Invalid value {value} for configuration {name}: Not a number of type {kind}"
    if floor is not None and number < floor:
        return f"Invalid value {number} for configuration {name}: Value must be at least {floor}"
    return None


def _integer(name: str) -> Callable[[str], bool]:
    return lambda value: integer_refusal(name, value) is None


def _ratio(value: str) -> bool:
    """A DOUBLE in [0, 1] (Kafka's min.cleanable.dirty.ratio: Range.between(0, 1), which
    compares with < and >, so NaN passes)."""
    number = java_double(value)
    return number is not None and not (number < 0.0 or number > 1.0)


def _choice(*options: str) -> Callable[[str], bool]:
    return lambda value: value in options


def _boolean(value: str) -> bool:
    """Kafka's BOOLEAN: true or false in any case."""
    return value.lower() in ("true", "false")


def is_true(value: str | None) -> bool:
    """A stored BOOLEAN topic config read as Kafka reads it: `true` in any case."""
    return value is not None and value.lower() == "true"


def _strategy(value: str) -> bool:
    return subjects.parse_strategy(value) is not None


DLQ_TOPIC = "contextplane.schema.validation.dlq.topic"
DLQ_GROUP_ENABLE = "errors.deadletterqueue.group.enable"


def dlq_topic_problem(value: str) -> str | None:
    """Why `value` cannot name a dead-letter topic, or None ("" leaves it unset)."""
    if value == "":
        return None
    # Imported here: both modules import this one.
    from contextplane.broker.internal_topics import is_internal
    from contextplane.broker.topics import validate_topic_name

    try:
        validate_topic_name(value)
    except KafkaError as exc:
        return f"{DLQ_TOPIC}: {exc.message}"
    if is_internal(value):
        return f"{DLQ_TOPIC}: {value} is an internal topic, written only by the broker"
    return None


def check_not_itself(topic: str, configs: Mapping[str, str]) -> None:
    """A topic cannot be its own dead-letter topic (INVALID_CONFIG)."""
    if configs.get(DLQ_TOPIC) == topic:
        raise KafkaError(
            ErrorCode.invalid_config, f"{DLQ_TOPIC}: {topic} cannot be its own dead-letter topic"
        )


def topic_config(configs: Mapping[str, str], name: str, settings: Settings) -> str:
    """A topic's value of `name`: its override, else the default."""
    value = configs.get(name)
    return value if value is not None else TOPIC_CONFIGS[name][1](settings)


# name -> (validator, default from broker settings or a constant)
TOPIC_CONFIGS: dict[str, tuple[Callable[[str], bool], Callable[[Settings], str]]] = {
    # A LIST: each item is checked against LIST_CONFIGS; the empty list is valid.
    "cleanup.policy": (lambda v: True, lambda s: s.log_cleanup_policy),
    "retention.ms": (_integer("retention.ms"), lambda s: str(s.retention_ms)),
    "retention.bytes": (_integer("retention.bytes"), lambda s: str(s.retention_bytes)),
    "segment.bytes": (_integer("segment.bytes"), lambda s: str(s.segment_bytes)),
    "segment.ms": (_integer("segment.ms"), lambda s: str(s.segment_ms)),
    "max.message.bytes": (_integer("max.message.bytes"), lambda s: str(s.message_max_bytes)),
    "min.insync.replicas": (_integer("min.insync.replicas"), lambda s: "1"),
    "compression.type": (
        _choice("producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"),
        lambda s: "producer",
    ),
    "message.timestamp.type": (_choice("CreateTime", "LogAppendTime"), lambda s: "CreateTime"),
    "delete.retention.ms": (
        _integer("delete.retention.ms"),
        lambda s: str(s.log_cleaner_delete_retention_ms),
    ),
    "min.compaction.lag.ms": (
        _integer("min.compaction.lag.ms"),
        lambda s: str(s.log_cleaner_min_compaction_lag_ms),
    ),
    "max.compaction.lag.ms": (
        _integer("max.compaction.lag.ms"),
        lambda s: str(s.log_cleaner_max_compaction_lag_ms),
    ),
    "min.cleanable.dirty.ratio": (_ratio, lambda s: str(s.log_cleaner_min_cleanable_ratio)),
    "file.delete.delay.ms": (
        _integer("file.delete.delay.ms"),
        lambda s: str(s.log_segment_delete_delay_ms),
    ),
    "flush.messages": (_integer("flush.messages"), lambda s: "1"),
    "flush.ms": (_integer("flush.ms"), lambda s: "0"),
    "unclean.leader.election.enable": (_boolean, lambda s: "false"),
    # Enforced per record on produce. Kafka 4's defaults: any age, at most an hour ahead.
    "message.timestamp.before.max.ms": (
        _integer("message.timestamp.before.max.ms"),
        lambda s: "9223372036854775807",
    ),
    "message.timestamp.after.max.ms": (
        _integer("message.timestamp.after.max.ms"),
        lambda s: "3600000",
    ),
    # LISTs of partition:broker pairs (or `*`) that Kafka throttles during reassignment;
    # one broker never reassigns, so they are stored and described only.
    "leader.replication.throttled.replicas": (lambda v: True, lambda s: ""),
    "follower.replication.throttled.replicas": (lambda v: True, lambda s: ""),
    # Confluent Server's broker-side schema id validation (broker/schema_validation.py).
    subjects.VALUE_VALIDATION: (_boolean, lambda s: "false"),
    subjects.KEY_VALIDATION: (_boolean, lambda s: "false"),
    subjects.VALUE_STRATEGY: (_strategy, lambda s: subjects.DEFAULT_STRATEGY),
    subjects.KEY_STRATEGY: (_strategy, lambda s: subjects.DEFAULT_STRATEGY),
    # KIP-1191: the topic's administrator lets share groups use it as their dead-letter
    # topic (broker/share_dead_letters.py).
    DLQ_GROUP_ENABLE: (_boolean, lambda s: "false"),
    # Where a refused batch goes instead (broker/dead_letters.py); "" for nowhere. Checked
    # with its own messages by `checked_topic_config`.
    DLQ_TOPIC: (lambda v: dlq_topic_problem(v) is None, lambda s: ""),
}

# Kafka 4.4's topic configs contextplane does not act on (no local segment files or
# indexes, no tiered storage, batches stored as produced so no compression level):
# described with Kafka's defaults, validated with Kafka's validators and messages, stored.
NOT_ACTED_ON = (
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.zstd.level",
    "index.interval.bytes",
    "local.retention.bytes",
    "local.retention.ms",
    "max.decompressed.message.bytes",
    "preallocate",
    "remote.copy.lag.bytes",
    "remote.copy.lag.ms",
    "remote.log.copy.disable",
    "remote.log.delete.on.disable",
    "remote.storage.enable",
    "segment.index.bytes",
    "segment.jitter.ms",
)
TIERED_STORAGE_OFF = (
    "Tiered Storage functionality is disabled in the broker. Topic cannot be configured "
    "with remote log storage."
)


def kafka_refusal(name: str, value: str) -> str | None:
    """Kafka's message refusing `value` for a config of NOT_ACTED_ON, or None. Tiered
    storage is off on this broker, as on a Kafka broker without
    remote.log.storage.system.enable, so `remote.storage.enable=true` is refused."""
    row = KAFKA_TOPIC_CONFIGS[name]
    if row.validator == "[1,...,9] or -1":  # GzipCompression's LevelValidator
        refusal = KafkaBrokerConfig(name, "static", row.type).refusal(value)
        number = java_int(value.strip())
        if refusal is None and number != -1 and not (number is not None and 1 <= number <= 9):
            refusal = (
                f"Invalid value {number} for configuration {name}: "
                "Value must be between 1 and 9 or equal to -1"
            )
        return refusal
    refusal = KafkaBrokerConfig(name, "static", row.type, row.validator).refusal(value)
    if refusal is None and name == "remote.storage.enable" and is_true(value.strip()):
        return TIERED_STORAGE_OFF
    return refusal


def _kafka_checked(name: str) -> Callable[[str], bool]:
    return lambda value: kafka_refusal(name, value) is None


def _kafka_default(name: str) -> Callable[[Settings], str]:
    return lambda settings: KAFKA_TOPIC_CONFIGS[name].default


for _name in NOT_ACTED_ON:
    TOPIC_CONFIGS[_name] = (_kafka_checked(_name), _kafka_default(_name))

BROKER_CONFIGS: dict[str, Callable[[Settings], str]] = {
    "num.partitions": lambda s: str(s.num_partitions),
    "default.replication.factor": lambda s: str(s.default_replication_factor),
    "auto.create.topics.enable": lambda s: str(s.auto_create_topics_enable).lower(),
    "errors.deadletterqueue.auto.create.topics.enable": lambda s: str(
        s.errors_deadletterqueue_auto_create_topics_enable
    ).lower(),
    "errors.deadletterqueue.topic.name.prefix": lambda s: (
        s.errors_deadletterqueue_topic_name_prefix
    ),
    "log.retention.ms": lambda s: str(s.retention_ms),
    "log.retention.bytes": lambda s: str(s.retention_bytes),
    "log.cleanup.policy": lambda s: s.log_cleanup_policy,
    "log.cleaner.min.cleanable.ratio": lambda s: str(s.log_cleaner_min_cleanable_ratio),
    "log.cleaner.delete.retention.ms": lambda s: str(s.log_cleaner_delete_retention_ms),
    "log.cleaner.min.compaction.lag.ms": lambda s: str(s.log_cleaner_min_compaction_lag_ms),
    "log.cleaner.max.compaction.lag.ms": lambda s: str(s.log_cleaner_max_compaction_lag_ms),
    "message.max.bytes": lambda s: str(s.message_max_bytes),
    "socket.request.max.bytes": lambda s: str(s.socket_request_max_bytes),
    "group.initial.rebalance.delay.ms": lambda s: str(s.group_initial_rebalance_delay_ms),
    "group.consumer.session.timeout.ms": lambda s: str(s.group_consumer_session_timeout_ms),
    "group.consumer.heartbeat.interval.ms": lambda s: str(s.group_consumer_heartbeat_interval_ms),
    "group.consumer.assignment.interval.ms": lambda s: str(s.group_consumer_assignment_interval_ms),
    "node.id": lambda s: str(s.node_id),
    "listeners": lambda s: ",".join(spec.url() for spec in s.listeners),
    "advertised.listeners": lambda s: ",".join(
        f"{spec.name}://{spec.advertised_host or spec.host}:{spec.advertised_port or spec.port}"
        for spec in s.listeners
    ),
}


@dataclass(frozen=True)
class ListConfig:
    """How Kafka parses and validates one LIST-typed topic config."""

    # The error message for the parsed items, or None when they are valid.
    invalid: Callable[[str, list[str]], str | None]
    # cleanup.policy's validator refuses empty items and its value drops repeats; the
    # throttled-replica lists keep both, as Kafka stores them.
    empty_items: bool = False


def _one_of(*allowed: str) -> Callable[[str, list[str]], str | None]:
    def invalid(name: str, items: list[str]) -> str | None:
        for item in items:
            if item not in allowed:
                return (
                    f"Invalid value {item} for configuration {name}: "
                    f"String must be one of: {', '.join(allowed)}"
                )
        return None

    return invalid


_REPLICA = re.compile(r"([0-9]+:[0-9]+)?")


def _replica_list(name: str, items: list[str]) -> str | None:
    """Kafka's ThrottledReplicaListValidator: the literal `*`, or `partition:broker` items
    (empty items pass, as Kafka's pattern makes the pair optional)."""
    if "".join(items) == "*" or all(_REPLICA.fullmatch(item) for item in items):
        return None
    return (
        f"Invalid value {','.join(items)} for configuration {name}: {name} must be the "
        "literal '*' or a list of replicas in the following format: "
        "[partitionId]:[brokerId],[partitionId]:[brokerId],..."
    )


# Kafka's LIST-typed topic configs.
LIST_CONFIGS: dict[str, ListConfig] = {
    "cleanup.policy": ListConfig(_one_of("compact", "delete")),
    "leader.replication.throttled.replicas": ListConfig(_replica_list, empty_items=True),
    "follower.replication.throttled.replicas": ListConfig(_replica_list, empty_items=True),
}


def list_items(value: str) -> list[str]:
    """A LIST config's items as Kafka parses them: comma-separated, trimmed, empty items
    kept; "" is []."""
    return [item.strip() for item in value.split(",")] if value.strip() else []


def checked_topic_config(name: str, value: str | None) -> str:
    """`value` as stored and described (trimmed; cleanup.policy without repeats), or
    KafkaError INVALID_CONFIG with Kafka's message."""
    spec = TOPIC_CONFIGS.get(name)
    if spec is None:
        raise KafkaError(ErrorCode.invalid_config, f"Unknown topic config name: {name}")
    if value is None:
        raise KafkaError(ErrorCode.invalid_config, f"Invalid value None for configuration {name}")
    list_config = LIST_CONFIGS.get(name)
    if name == DLQ_TOPIC:
        problem = dlq_topic_problem(value.strip())
        if problem is not None:
            raise KafkaError(ErrorCode.invalid_config, problem)
    if list_config is None:
        trimmed = java_trim(value)
        refusal = kafka_refusal(name, value) if name in NOT_ACTED_ON else None
        if refusal is not None:
            raise KafkaError(ErrorCode.invalid_config, refusal)
        if name in INTEGER_CONFIGS:
            refusal = integer_refusal(name, value)
            if refusal is not None:
                raise KafkaError(ErrorCode.invalid_config, refusal)
        elif not spec[0](trimmed):
            raise KafkaError(
                ErrorCode.invalid_config, f"Invalid value {value} for configuration {name}"
            )
        return trimmed
    items = list_items(value)
    if "" in items and not list_config.empty_items:
        raise KafkaError(
            ErrorCode.invalid_config, f"Configuration '{name}' values must not be empty."
        )
    message = list_config.invalid(name, items)
    if message is not None:
        raise KafkaError(ErrorCode.invalid_config, message)
    return ",".join(items if list_config.empty_items else dict.fromkeys(items))


def invalid_topic_config(name: str, value: str | None) -> str | None:
    """An error message if `name=value` is not a valid topic config, else None."""
    try:
        checked_topic_config(name, value)
    except KafkaError as exc:
        return exc.message
    return None


def retention_configs(configs: Mapping[str, str], default_policy: str) -> dict[str, str]:
    """A topic's configs as time and size retention and the cleaner read them, with its
    `cleanup.policy` (`default_policy`, log.cleanup.policy, when the topic sets none).
    Kafka deletes old segments only when the policy lists `delete`: a compact-only topic
    is never deleted by age or size, and an empty policy means infinite retention
    (TopicConfig's doc)."""
    policy = configs.get("cleanup.policy", default_policy)
    if "delete" in list_items(policy):
        return {**configs, "cleanup.policy": policy}
    return {**configs, "cleanup.policy": policy, "retention.ms": "-1", "retention.bytes": "-1"}
