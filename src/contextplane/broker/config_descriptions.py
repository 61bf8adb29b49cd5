"""How DescribeConfigs describes each topic config (Kafka 4.4's, from
`kafka_topic_configs.tsv`, and contextplane's own): its type, the broker settings it
falls back to (Kafka's synonyms, KIP-226) and a line of documentation.

The synonyms are Kafka's own (LogConfig's server default properties), so tools that show
where a value comes from (`kafka-configs.sh --describe --all`, admin consoles) read them
as they read Kafka's.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path


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


@dataclass(frozen=True)
class KafkaTopicConfig:
    """One row of `kafka_topic_configs.tsv` (generated from Kafka 4.4's LogConfig)."""

    name: str
    type: str  # ConfigDef's type: INT, LONG, DOUBLE, BOOLEAN, STRING, LIST
    default: str
    synonyms: tuple[str, ...]
    validator: str  # as Kafka prints it: "[0,...]", "[compact, delete]", ""
    doc: str


def _load_kafka() -> dict[str, KafkaTopicConfig]:
    # Beside this module (package data), as kafka_broker_configs.tsv.
    text = Path(__file__).with_name("kafka_topic_configs.tsv").read_text()
    rows = [line.split("\t") for line in text.splitlines() if not line.startswith("#")]
    return {
        r[0]: KafkaTopicConfig(r[0], r[1], r[2], tuple(filter(None, r[3].split(","))), r[4], r[5])
        for r in rows
    }


KAFKA_TOPIC_CONFIGS = _load_kafka()
# Broker configs Kafka gives no default: a topic config whose first synonym is one of
# them lists no DEFAULT_CONFIG synonym unless that broker config is set.
NO_DEFAULT_SYNONYMS = frozenset(
    {"log.retention.ms", "log.roll.ms", "log.flush.interval.ms", "log.roll.jitter.ms"}
)
# Kafka's defaults of the later synonyms (the hours forms; the flush scheduler).
LATER_SYNONYM_DEFAULTS = {
    "log.retention.hours": "168",
    "log.roll.hours": "168",
    "log.roll.jitter.hours": "0",
    "log.flush.scheduler.interval.ms": "9223372036854775807",
}
# Described with Kafka's defaults; contextplane accepts, validates and stores them as Kafka
# does but does not act on them (no local segment files, indexes or tiered storage).
NOT_ACTED_ON = "Not acted on by contextplane (validated and stored as in Kafka). "


def _described(
    type_: ConfigType, synonyms: tuple[str, ...], doc: str, has_default: bool = True
) -> ConfigDescription:
    return ConfigDescription(type_, synonyms, has_default and bool(synonyms), doc)


def _kafka_described(row: KafkaTopicConfig, doc: str) -> ConfigDescription:
    first = row.synonyms[0] if row.synonyms else None
    return _described(ConfigType[row.type], row.synonyms, doc, first not in NO_DEFAULT_SYNONYMS)


# contextplane's own topic configs, which Kafka does not have.
_OWN_DESCRIPTIONS: dict[str, ConfigDescription] = {
    "confluent.key.schema.validation": _described(
        ConfigType.BOOLEAN,
        (),
        "Each produced record's key must carry the id of a live schema registered under"
        " the subject its strategy names (a null key passes).",
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
        "Each produced record's value must carry the id of a live schema registered "
        "under the subject its strategy names (a null value, a tombstone, passes).",
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
        "A batch schema validation refuses is appended to this topic instead, with "
        "headers naming its source topic, partition and reason; empty for none.",
    ),
}
# contextplane's line of documentation for the Kafka topic configs it acts on.
_OWN_DOCS: dict[str, str] = {
    "errors.deadletterqueue.group.enable": (
        "Whether share groups may use this topic as their dead-letter queue topic."
    ),
    "cleanup.policy": (
        "delete: old segments are deleted by retention; compact: only the newest record"
        " of each key is kept; both together apply both."
    ),
    "compression.type": (
        "The codec batches are stored with; producer keeps each batch as produced."
    ),
    "delete.retention.ms": (
        "How long a tombstone of a compacted topic stays readable after cleaning."
    ),
    "file.delete.delay.ms": (
        "How long an object no longer referenced is kept before it is deleted."
    ),
    "flush.messages": ("Accepted for compatibility: every acknowledged write is already durable."),
    "flush.ms": ("Accepted for compatibility: every acknowledged write is already durable."),
    "follower.replication.throttled.replicas": (
        "Stored and described; there are no followers to throttle."
    ),
    "leader.replication.throttled.replicas": (
        "Stored and described; there are no followers to throttle."
    ),
    "max.compaction.lag.ms": ("The longest a record may stay uncompacted."),
    "max.message.bytes": ("The largest record batch the topic accepts, after compression."),
    "message.timestamp.after.max.ms": (
        "How far a record's timestamp may be ahead of the broker's clock."
    ),
    "message.timestamp.before.max.ms": (
        "How far a record's timestamp may be behind the broker's clock."
    ),
    "message.timestamp.type": (
        "CreateTime keeps the producer's timestamps; LogAppendTime stamps the append time."
    ),
    "min.cleanable.dirty.ratio": (
        "The share of uncleaned bytes above which a compacted partition is cleaned."
    ),
    "min.compaction.lag.ms": ("The least time a record stays uncompacted."),
    "min.insync.replicas": (
        "Accepted for compatibility: data is durable in the object store, not in replicas."
    ),
    "retention.bytes": (
        "The most bytes a partition retains before its oldest segments are deleted; -1 is no limit."
    ),
    "retention.ms": (
        "How long a record is retained before its segment may be deleted; -1 is forever."
    ),
    "segment.bytes": (
        "The size at which a segment closes; retention deletes whole closed segments."
    ),
    "segment.ms": ("The age at which a segment closes even if not full."),
    "unclean.leader.election.enable": (
        "Accepted for compatibility: leadership moves without losing acknowledged data."
    ),
}

# Kafka's topic configs with Kafka's types and synonyms (contextplane's line of
# documentation where it acts on the config, Kafka's where it does not), and
# contextplane's own.
TOPIC_CONFIG_DESCRIPTIONS: dict[str, ConfigDescription] = {
    **{
        name: _kafka_described(
            row,
            _OWN_DOCS.get(name, NOT_ACTED_ON + row.doc),
        )
        for name, row in KAFKA_TOPIC_CONFIGS.items()
    },
    **_OWN_DESCRIPTIONS,
}
