"""How DescribeConfigs describes each topic config: its type, the broker settings it
falls back to (Kafka's synonyms, KIP-226) and a line of documentation.

The synonyms are Kafka's own (LogConfig's server default properties), so tools that show
where a value comes from (`kafka-configs.sh --describe --all`, admin consoles) read them
as they read Kafka's.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class ConfigType(IntEnum):
    """DescribeConfigsResponse's ConfigType."""

    BOOLEAN = 1
    STRING = 2
    INT = 3
    SHORT = 4
    LONG = 5
    DOUBLE = 6
    LIST = 7


@dataclass(frozen=True)
class ConfigDescription:
    type: ConfigType
    # The broker settings the topic config falls back to, most specific first. Kafka
    # lists the first one as DEFAULT_CONFIG when it has a default of its own
    # (log.retention.ms and log.roll.ms have none: their hours forms carry it).
    synonyms: tuple[str, ...]
    first_synonym_has_default: bool
    doc: str


def _described(
    type_: ConfigType, synonyms: tuple[str, ...], doc: str, has_default: bool = True
) -> ConfigDescription:
    return ConfigDescription(type_, synonyms, has_default and bool(synonyms), doc)


TOPIC_CONFIG_DESCRIPTIONS: dict[str, ConfigDescription] = {
    "confluent.key.schema.validation": _described(
        ConfigType.BOOLEAN,
        (),
        "Each produced record's key must carry the id of a live schema registered under "
        "the subject its strategy names (a null key passes).",
    ),
    "confluent.key.subject.name.strategy": _described(
        ConfigType.STRING,
        (),
        "How the subject of a key's schema is named: TopicNameStrategy, "
        "RecordNameStrategy or TopicRecordNameStrategy.",
    ),
    "confluent.value.schema.validation": _described(
        ConfigType.BOOLEAN,
        (),
        "Each produced record's value must carry the id of a live schema registered under "
        "the subject its strategy names (a null value, a tombstone, passes).",
    ),
    "confluent.value.subject.name.strategy": _described(
        ConfigType.STRING,
        (),
        "How the subject of a value's schema is named: TopicNameStrategy, "
        "RecordNameStrategy or TopicRecordNameStrategy.",
    ),
    "contextplane.schema.validation.dlq.topic": _described(
        ConfigType.STRING,
        (),
        "A batch schema validation refuses is appended to this topic instead, with headers "
        "naming its source topic, partition and reason; empty for none.",
    ),
    "errors.deadletterqueue.group.enable": _described(
        ConfigType.BOOLEAN,
        (),
        "Whether share groups may use this topic as their dead-letter queue topic.",
    ),
    "cleanup.policy": _described(
        ConfigType.LIST,
        ("log.cleanup.policy",),
        "delete: old segments are deleted by retention; compact: only the newest record "
        "of each key is kept; both together apply both.",
    ),
    "compression.type": _described(
        ConfigType.STRING,
        ("compression.type",),
        "The codec batches are stored with; producer keeps each batch as produced.",
    ),
    "delete.retention.ms": _described(
        ConfigType.LONG,
        ("log.cleaner.delete.retention.ms",),
        "How long a tombstone of a compacted topic stays readable after cleaning.",
    ),
    "file.delete.delay.ms": _described(
        ConfigType.LONG,
        ("log.segment.delete.delay.ms",),
        "How long an object no longer referenced is kept before it is deleted.",
    ),
    "flush.messages": _described(
        ConfigType.LONG,
        ("log.flush.interval.messages",),
        "Accepted for compatibility: every acknowledged write is already durable.",
    ),
    "flush.ms": _described(
        ConfigType.LONG,
        ("log.flush.interval.ms",),
        "Accepted for compatibility: every acknowledged write is already durable.",
        has_default=False,
    ),
    "follower.replication.throttled.replicas": _described(
        ConfigType.LIST, (), "Stored and described; there are no followers to throttle."
    ),
    "leader.replication.throttled.replicas": _described(
        ConfigType.LIST, (), "Stored and described; there are no followers to throttle."
    ),
    "max.compaction.lag.ms": _described(
        ConfigType.LONG,
        ("log.cleaner.max.compaction.lag.ms",),
        "The longest a record may stay uncompacted.",
    ),
    "max.message.bytes": _described(
        ConfigType.INT,
        ("message.max.bytes",),
        "The largest record batch the topic accepts, after compression.",
    ),
    "message.timestamp.after.max.ms": _described(
        ConfigType.LONG,
        ("log.message.timestamp.after.max.ms",),
        "How far a record's timestamp may be ahead of the broker's clock.",
    ),
    "message.timestamp.before.max.ms": _described(
        ConfigType.LONG,
        ("log.message.timestamp.before.max.ms",),
        "How far a record's timestamp may be behind the broker's clock.",
    ),
    "message.timestamp.type": _described(
        ConfigType.STRING,
        ("log.message.timestamp.type",),
        "CreateTime keeps the producer's timestamps; LogAppendTime stamps the append time.",
    ),
    "min.cleanable.dirty.ratio": _described(
        ConfigType.DOUBLE,
        ("log.cleaner.min.cleanable.ratio",),
        "The share of uncleaned bytes above which a compacted partition is cleaned.",
    ),
    "min.compaction.lag.ms": _described(
        ConfigType.LONG,
        ("log.cleaner.min.compaction.lag.ms",),
        "The least time a record stays uncompacted.",
    ),
    "min.insync.replicas": _described(
        ConfigType.INT,
        ("min.insync.replicas",),
        "Accepted for compatibility: data is durable in the object store, not in replicas.",
    ),
    "retention.bytes": _described(
        ConfigType.LONG,
        ("log.retention.bytes",),
        "The most bytes a partition retains before its oldest segments are deleted; -1 "
        "is no limit.",
    ),
    "retention.ms": _described(
        ConfigType.LONG,
        ("log.retention.ms", "log.retention.minutes", "log.retention.hours"),
        "How long a record is retained before its segment may be deleted; -1 is forever.",
        has_default=False,
    ),
    "segment.bytes": _described(
        ConfigType.INT,
        ("log.segment.bytes",),
        "The size at which a segment closes; retention deletes whole closed segments.",
    ),
    "segment.ms": _described(
        ConfigType.LONG,
        ("log.roll.ms", "log.roll.hours"),
        "The age at which a segment closes even if not full.",
        has_default=False,
    ),
    "unclean.leader.election.enable": _described(
        ConfigType.BOOLEAN,
        ("unclean.leader.election.enable",),
        "Accepted for compatibility: leadership moves without losing acknowledged data.",
    ),
}
