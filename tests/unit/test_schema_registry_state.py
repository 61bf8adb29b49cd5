"""The fold of `_schemas`: what each record kind does to the state, and records it cannot
read (another registry's, a corrupt one, a second schema under a taken id) are skipped
without stopping the fold."""

from __future__ import annotations

import json

from contextplane.services.schema_registry.records import (
    SchemaValue,
    config_key,
    delete_subject_key,
    encode,
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
