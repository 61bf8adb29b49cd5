"""Masking Protobuf values whose schema's references a hostile client arranged: `_schemas`
is a topic any client allowed to write it can produce to, and a registry replaying it
takes a version deleted (a tombstone) and registered again importing what imported it, a
cycle. Every value of that schema fails closed, and the codec is tried once per fetch,
not once per record (each try walks the references again)."""

from __future__ import annotations

import struct

from conformance.wire import Rec, encode_batch
from contextplane.broker.masking import FAIL_CLOSED, FieldMasker, mask_chunks
from contextplane.protocol.record_codec import read_records
from contextplane.services.schema_registry.records import encode, schema_key
from contextplane.services.schema_registry.references import Reference
from contextplane.services.schema_registry.state import RegistryState, StoredSchema
from tests.unit.test_masking_keys_references import HMAC_KEY, LIMIT, policy, register

FIRST = 'syntax = "proto3";\npackage cyc;\nmessage A { string s = 1; }\n'
IMPORTER = 'syntax = "proto3";\npackage cyc;\nimport "cyc/a.proto";\nmessage B { A a = 1; }\n'
AGAIN = (
    'syntax = "proto3";\npackage again;\nimport "cyc/b.proto";\n'
    "message Z { cyc.B b = 1; string s = 2; }\n"
)
CYCLIC_ID = 23
RECORDS = 300


def cyclic_catalog() -> RegistryState:
    """a/1 <- b/1 imports it; a/1 deleted and registered again importing b/1."""
    state = RegistryState()
    register(state, "a", 21, FIRST, schemaType="PROTOBUF")
    on_a = [{"name": "cyc/a.proto", "subject": "a", "version": 1}]
    register(state, "b", 22, IMPORTER, schemaType="PROTOBUF", references=on_a)
    state.apply(encode(schema_key("a", 1)), None)
    on_b = [{"name": "cyc/b.proto", "subject": "b", "version": 1}]
    register(state, "a", CYCLIC_ID, AGAIN, schemaType="PROTOBUF", references=on_b)
    return state


def test_a_reference_cycle_fails_closed_once_per_fetch() -> None:
    state = cyclic_catalog()
    looked_up: list[Reference] = []

    def referenced(reference: Reference) -> StoredSchema | None:
        looked_up.append(reference)
        return state.referenced_schema(reference)

    masker = FieldMasker([policy()], state.schemas.get, HMAC_KEY, referenced)
    value = struct.pack(">bI", 0, CYCLIC_ID) + b"\x00" + b"\x12\x02hi"  # index path [0]
    batch = encode_batch([Rec(value, None)] * RECORDS)
    masked = mask_chunks([batch], masker, LIMIT, LIMIT)
    records = read_records(masked.chunks[0], LIMIT)[1]
    assert [r.value for r in records] == [None] * RECORDS
    assert masked.counts == {FAIL_CLOSED: RECORDS}
    # The cycle is seen at its first repeat: the two references, once.
    assert len(looked_up) == 2
