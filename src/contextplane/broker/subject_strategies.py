"""Confluent Server's schema validation topic configs and the subject each strategy names.

A validating topic's record must carry a schema id registered under the subject its
strategy derives (Confluent's `SubjectNameStrategy` implementations):

* TopicNameStrategy: `<topic>-key` / `<topic>-value`;
* RecordNameStrategy: the record's fully qualified name (Avro's named type, a JSON
  Schema's `title`, a Protobuf message), the same in every topic;
* TopicRecordNameStrategy: `<topic>-<record name>`.

This module is light on purpose (topic config validation imports it): the record name is
read from a parsed schema by the catalog (`schema_catalog.py`).
"""

from __future__ import annotations

from enum import Enum

VALUE_VALIDATION = "confluent.value.schema.validation"
KEY_VALIDATION = "confluent.key.schema.validation"
VALUE_STRATEGY = "confluent.value.subject.name.strategy"
KEY_STRATEGY = "confluent.key.subject.name.strategy"

_PACKAGE = "io.confluent.kafka.serializers.subject."


class Strategy(Enum):
    TOPIC = "TopicNameStrategy"
    RECORD = "RecordNameStrategy"
    TOPIC_RECORD = "TopicRecordNameStrategy"

    @property
    def needs_record_name(self) -> bool:
        return self is not Strategy.TOPIC


DEFAULT_STRATEGY = _PACKAGE + Strategy.TOPIC.value


def parse_strategy(value: str) -> Strategy | None:
    """The strategy a config value names: Confluent's class name, or its simple name as
    Confluent Cloud's topic settings write it; None if it names none."""
    simple = value.removeprefix(_PACKAGE)
    return next((s for s in Strategy if s.value == simple), None)


def subject_for(strategy: Strategy, topic: str, is_key: bool, record_name: str | None) -> str:
    """The subject a record's schema must be registered under."""
    if strategy is Strategy.TOPIC:
        return f"{topic}-{'key' if is_key else 'value'}"
    if record_name is None:
        raise ValueError(f"{strategy.value} needs the record name")
    if strategy is Strategy.RECORD:
        return record_name
    return f"{topic}-{record_name}"
