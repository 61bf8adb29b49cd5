"""The fold of `_schemas`: what each record kind does to the state, and records it cannot
read (another registry's, a corrupt one, a second schema under a taken id) are skipped
without stopping the fold."""

from __future__ import annotations

import json

import pytest

from contextplane.services.schema_registry.records import (
    SchemaValue,
    config_key,
    delete_subject_key,
    encode,
    mode_key,
    schema_key,
)
from contextplane.services.schema_registry.state import RegistryState

INT = '"int"'
LONG = '"long"'


def schema_record(
    subject: str, version: int, schema_id: int, text: str, deleted: bool = False
) -> tuple[bytes | None, bytes | None]:
    value = SchemaValue(subject, version, schema_id, text, deleted)
    return encode(schema_key(subject, version)), encode(value.to_json())


def test_versions_deletes_and_configs_fold_in_order() -> None:
    state = RegistryState()
    state.apply(*schema_record("s", 1, 1, INT))
    state.apply(*schema_record("s", 2, 2, LONG))
    state.apply(*schema_record("t", 1, 1, INT))
    assert [v.version for v in state.versions("s")] == [1, 2]
    assert state.id_for("AVRO", INT) == 1 and state.next_id() == 3
    state.apply(encode(delete_subject_key("s")), encode({"subject": "s", "version": 1}))
    assert [v.version for v in state.versions("s")] == [2]
    assert [v.version for v in state.versions("s", deleted=True)] == [1, 2]
    state.apply(encode(schema_key("s", 1)), None)  # hard delete
    assert [v.version for v in state.versions("s", deleted=True)] == [2]
    assert 1 in state.schemas  # still t's version 1
    state.apply(encode(schema_key("t", 1)), None)
    assert 1 not in state.schemas and state.id_for("AVRO", INT) is None
    state.apply(encode(config_key(None)), encode({"compatibilityLevel": "FULL"}))
    state.apply(encode(config_key("s")), encode({"compatibilityLevel": "NONE"}))
    assert (state.global_compatibility, state.subject_compatibility) == ("FULL", {"s": "NONE"})
    state.apply(encode(config_key("s")), None)
    assert state.subject_compatibility == {}
    # A config with no level (Confluent writes one when only other fields are set).
    state.apply(encode(config_key("s")), b'{"compatibilityLevel":null,"compatibilityGroup":"g"}')
    assert (
        state.subject_compatibility == {} and state.subject_configs["s"].compatibility_group == "g"
    )
    assert state.skipped_records == 0


def test_unreadable_records_are_skipped() -> None:
    state = RegistryState()
    state.apply(*schema_record("s", 1, 1, INT))
    state.apply(b"not json", b"{}")
    state.apply(None, b"{}")
    state.apply(encode(schema_key("s", 2)), b'{"subject": "s"}')  # no id, no schema
    state.apply(*schema_record("s", 3, 1, LONG))  # id 1 is already "int"
    state.apply(*schema_record("s", 4, 9, json.dumps({"type": "nosuchtype"})))
    state.apply(encode({"keytype": "CONTEXT", "magic": 0}), encode({"context": ".x"}))
    state.apply(encode({"keytype": "NOOP", "magic": 0}), None)
    assert state.skipped_records == 5
    assert [v.version for v in state.versions("s")] == [1]


def test_a_version_rewritten_with_another_id_leaves_no_reference_to_the_first() -> None:
    state = RegistryState()
    state.apply(*schema_record("s", 1, 1, INT))
    state.apply(*schema_record("t", 1, 1, INT))
    state.apply(*schema_record("s", 1, 2, LONG))  # another writer's record, later in the log
    assert [(s, v.version) for s, v in state.references_to(1)] == [("t", 1)]
    assert [(s, v.version) for s, v in state.references_to(2)] == [("s", 1)]
    state.apply(encode(schema_key("t", 1)), None)
    assert 1 not in state.schemas and state.references_to(1) == []
    assert state.skipped_records == 0


def _value(**fields: object) -> bytes | None:
    return encode({"subject": "s", "version": 2, "id": 2, "schema": LONG, **fields})


# Records another Kafka client may write to `_schemas`: each must be skipped whole.
GARBAGE: list[tuple[str, bytes | None, bytes | None]] = [
    ("a key nested past the parser's recursion limit", b"[" * 100_000 + b"]" * 100_000, None),
    ("a value nested past the recursion limit", encode(schema_key("s", 2)), b"[" * 100_000),
    ("version 1e999", b'{"keytype":"SCHEMA","subject":"s","version":1e999}', _value()),
    ("id 1e999", encode(schema_key("s", 2)), _value()[:-1] + b',"id":1e999}'),  # type: ignore[index]
    ("an id past 2^31-1", encode(schema_key("s", 2)), _value(id=2**31)),
    ("a negative id", encode(schema_key("s", 2)), _value(id=-5)),
    ("an id that is a float", encode(schema_key("s", 2)), _value(id=2.5)),
    ("an id that is a boolean", encode(schema_key("s", 2)), _value(id=True)),
    ("version 0", encode(schema_key("s", 0)), _value(version=0)),
    ("a key without a subject", encode({"keytype": "SCHEMA", "version": 2}), _value()),
    ("a subject that is a number", encode(schema_key(7, 2)), _value(subject=7)),  # type: ignore[arg-type]
    ("a value for another version", encode(schema_key("s", 3)), _value()),
    ("a value for another subject", encode(schema_key("t", 2)), _value()),
    ("'deleted' as a string", encode(schema_key("s", 2)), _value(deleted="false")),
    ("a schema that is not a string", encode(schema_key("s", 2)), _value(schema=["int"])),
    ("an unknown compatibility level", encode(config_key(None)), b'{"compatibilityLevel":"X"}'),
    ("a compatibility level of 1", encode(config_key("s")), b'{"compatibilityLevel":1}'),
    ("default metadata of a list", encode(config_key("s")), b'{"defaultMetadata":[]}'),
    (
        "a rule without a type",
        encode(config_key(None)),
        b'{"defaultRuleSet":{"domainRules":[{"name":"r"}]}}',
    ),
    ("metadata tags of a string", encode(schema_key("s", 2)), _value(metadata={"tags": "PII"})),
    (
        "a domain rule of mode UPGRADE",
        encode(schema_key("s", 2)),
        _value(ruleSet={"domainRules": [{"name": "r", "type": "CEL", "mode": "UPGRADE"}]}),
    ),
    ("an unknown mode", encode(mode_key("s")), encode({"mode": "READWRIT"})),
    ("a subject delete up to 1e999", encode(delete_subject_key("s")), b'{"version":1e999}'),
    ("a subject delete without a subject", b'{"keytype":"DELETE_SUBJECT"}', b'{"version":1}'),
    ("invalid UTF-8", b'{"keytype":"SCHEMA","subject":"\xff"}', _value()),
]


@pytest.mark.parametrize(
    ("key", "value"), [(k, v) for _, k, v in GARBAGE], ids=[g[0] for g in GARBAGE]
)
def test_garbage_from_another_writer_is_skipped_and_the_fold_goes_on(
    key: bytes | None, value: bytes | None
) -> None:
    state = RegistryState()
    state.apply(*schema_record("s", 1, 1, INT))
    state.apply(key, value)
    assert state.skipped_records == 1
    assert [v.version for v in state.versions("s", deleted=True)] == [1]
    assert state.next_id() == 2 and not state.versions("s")[0].deleted
    assert (state.global_compatibility, state.subject_compatibility) == (None, {})
    assert (state.global_mode, state.subject_modes) == (None, {})
    state.apply(*schema_record("s", 2, 2, LONG))  # and the next record is applied
    assert [v.version for v in state.versions("s")] == [1, 2]
    assert state.skipped_records == 1


def test_confluent_modes_that_refuse_writes_are_kept() -> None:
    state = RegistryState()
    state.apply(encode(mode_key(None)), encode({"mode": "IMPORT"}))
    state.apply(encode(mode_key("s")), encode({"mode": "READONLY_OVERRIDE"}))
    assert (state.global_mode, state.subject_modes) == ("IMPORT", {"s": "READONLY_OVERRIDE"})
    assert state.skipped_records == 0
