"""Can data written with one Protobuf schema be read with another? Confluent's rules (its
protobuf `SchemaDiff`): the change from the original (the writer's) to the update (the
reader's) is a list of typed differences, compatible when every one is of a compatible
type. In short, following protobuf's own rules for updating a message:

- incompatible: the package changed; a message removed; a field's kind changed (scalar,
  message, map; an enum counts as a scalar); a scalar changed to one of another wire
  group (int32/int64/uint32/uint64/bool/enum, sint32/sint64, string/bytes,
  fixed32/sfixed32, fixed64/sfixed64, float, double); a field's message type renamed; a
  numeric field's label changed (packed vs not); a required field added or removed; a
  field removed from a oneof that still exists; fields that were independent moved into
  one oneof;
- compatible: messages and enums added, enums and their values changed, fields added or
  removed (their numbers stay readable as unknown fields), renamed, moved out of a oneof,
  oneofs added or removed whole, a string or bytes field's label changed.

Fields are matched by number, across oneofs, so moving a field in or out of a oneof cannot
hide a change of its type.
"""

from __future__ import annotations

from dataclasses import dataclass

from contextplane.services.schema_registry.protobuf_schema import (
    SCALARS,
    FieldInfo,
    MessageInfo,
    ProtobufSchema,
)

COMPATIBLE = frozenset(
    {
        "MESSAGE_ADDED",
        "MESSAGE_MOVED",
        "ENUM_ADDED",
        "ENUM_REMOVED",
        "ENUM_CONST_ADDED",
        "ENUM_CONST_CHANGED",
        "ENUM_CONST_REMOVED",
        "FIELD_ADDED",
        "FIELD_REMOVED",
        "FIELD_NAME_CHANGED",
        "FIELD_STRING_OR_BYTES_LABEL_CHANGED",
        "ONEOF_ADDED",
        "ONEOF_REMOVED",
        "ONEOF_FIELD_ADDED",
        "ONEOF_FIELD_MOVED_TO_TOP_LEVEL",
    }
)
# Scalars that read each other's bytes (protobuf's "compatible types" groups).
_WIRE_GROUPS = {
    **dict.fromkeys(("int32", "int64", "uint32", "uint64", "bool"), "GENERAL_NUMBER"),
    **dict.fromkeys(("sint32", "sint64"), "SIGNED_NUMBER"),
    **dict.fromkeys(("string", "bytes"), "STRING_OR_BYTES"),
    **dict.fromkeys(("fixed32", "sfixed32"), "FIXED32"),
    **dict.fromkeys(("fixed64", "sfixed64"), "FIXED64"),
    "float": "FLOAT",
    "double": "DOUBLE",
}

Change = tuple[str, str]  # (Confluent's difference type, where: "#/Message/field number")


@dataclass(frozen=True)
class Incompatibility:
    change: str
    path: str

    def __str__(self) -> str:
        return (
            f'{{errorType:"{self.change}", description:"The new schema is not compatible '
            f"with the old one at '{self.path}'\"}}"
        )


def incompatibilities(reader: ProtobufSchema, writer: ProtobufSchema) -> list[Incompatibility]:
    """Why `reader` cannot read what `writer` wrote; empty when it can."""
    return [
        Incompatibility(change, path)
        for change, path in differences(writer, reader)
        if change not in COMPATIBLE
    ]


def differences(original: ProtobufSchema, update: ProtobufSchema) -> list[Change]:
    found: list[Change] = []
    if original.package != update.package:
        found.append(("PACKAGE_CHANGED", "#/"))
    before = {_local(name, original.package): name for name in original.own_messages}
    after = {_local(name, update.package): name for name in update.own_messages}
    for local in [*before, *(n for n in after if n not in before)]:
        path = f"#/{local}"
        if local not in after:
            found.append(("MESSAGE_REMOVED", path))
        elif local not in before:
            found.append(("MESSAGE_ADDED", path))
        else:
            found += _message(
                original,
                update,
                original.messages[before[local]],
                update.messages[after[local]],
                path,
            )
    enums_before = {_local(name, original.package): name for name in original.own_enums}
    enums_after = {_local(name, update.package): name for name in update.own_enums}
    for local in [*enums_before, *(n for n in enums_after if n not in enums_before)]:
        if local not in enums_after:
            found.append(("ENUM_REMOVED", f"#/{local}"))
        elif local not in enums_before:
            found.append(("ENUM_ADDED", f"#/{local}"))
        else:
            was = dict(original.enums[enums_before[local]])
            now = dict(update.enums[enums_after[local]])
            for name in was.keys() - now.keys():
                found.append(("ENUM_CONST_REMOVED", f"#/{local}/{name}"))
            for name in now.keys() - was.keys():
                found.append(("ENUM_CONST_ADDED", f"#/{local}/{name}"))
            for name in was.keys() & now.keys():
                if was[name] != now[name]:
                    found.append(("ENUM_CONST_CHANGED", f"#/{local}/{name}"))
    return found


def _message(
    original: ProtobufSchema,
    update: ProtobufSchema,
    before: MessageInfo,
    after: MessageInfo,
    path: str,
) -> list[Change]:
    found: list[Change] = []
    # Oneofs gone whole (no member kept anywhere): their fields' removal is that.
    deleted_whole = {
        name
        for name, members in before.oneofs.items()
        if name not in after.oneofs and not members & after.fields.keys()
    }
    for name, members in sorted(after.oneofs.items()):
        origins = set()
        moved_in = 0
        for number in members:
            old = before.fields.get(number)
            if old is None:
                continue
            if old.oneof is not None:
                origins.add(f"oneof:{old.oneof}")
            else:
                origins.add(f"field:{number}")
                moved_in += 1
        if len(origins) > 1:
            change = (
                "MULTIPLE_FIELDS_MOVED_TO_ONEOF"
                if moved_in > 1
                else "FIELD_MOVED_TO_EXISTING_ONEOF"
            )
            found.append((change, f"{path}/{name}"))
    for name in sorted(before.oneofs.keys() | after.oneofs.keys()):
        if name not in after.oneofs:
            found.append(("ONEOF_REMOVED", f"{path}/{name}"))
        elif name not in before.oneofs:
            found.append(("ONEOF_ADDED", f"{path}/{name}"))
    for number in sorted(before.fields.keys() | after.fields.keys()):
        old, new = before.fields.get(number), after.fields.get(number)
        where = f"{path}/{number}"
        if new is None:
            assert old is not None
            if old.oneof is not None:
                if old.oneof not in deleted_whole:
                    found.append(("ONEOF_FIELD_REMOVED", where))
            else:
                found.append(
                    (
                        "REQUIRED_FIELD_REMOVED" if old.label == "required" else "FIELD_REMOVED",
                        where,
                    )
                )
        elif old is None:
            if new.oneof is not None:
                found.append(("ONEOF_FIELD_ADDED", where))
            else:
                found.append(
                    ("REQUIRED_FIELD_ADDED" if new.label == "required" else "FIELD_ADDED", where)
                )
        else:
            if old.oneof is not None and new.oneof is None:
                found.append(("ONEOF_FIELD_MOVED_TO_TOP_LEVEL", where))
            if old.name != new.name:
                found.append(("FIELD_NAME_CHANGED", where))
            found += _field_types(original, update, old, new, where)
    return found


def _field_types(
    original: ProtobufSchema, update: ProtobufSchema, old: FieldInfo, new: FieldInfo, where: str
) -> list[Change]:
    return _types(original, update, old.label, new.label, old.type, new.type, where)


def _types(
    original: ProtobufSchema,
    update: ProtobufSchema,
    old_label: str | None,
    new_label: str | None,
    old: str | tuple[str, str, str],
    new: str | tuple[str, str, str],
    where: str,
) -> list[Change]:
    old_kind, new_kind = _kind(original, old), _kind(update, new)
    if old_kind != new_kind:
        return [("FIELD_KIND_CHANGED", where)]
    if isinstance(old, tuple) and isinstance(new, tuple):
        return _types(original, update, None, None, old[1], new[1], where) + _types(
            original, update, None, None, old[2], new[2], where
        )
    assert isinstance(old, str) and isinstance(new, str)
    if old_kind == "SCALAR":
        old_group, new_group = _group(original, old), _group(update, new)
        if old_group != new_group:
            return [("FIELD_SCALAR_KIND_CHANGED", where)]
        if old_label is not None and new_label is not None and old_label != new_label:
            if old_group == "STRING_OR_BYTES":
                return [("FIELD_STRING_OR_BYTES_LABEL_CHANGED", where)]
            return [("FIELD_NUMERIC_LABEL_CHANGED", where)]
        return []
    if _local(old, original.package) != _local(new, update.package):
        return [("FIELD_NAMED_TYPE_CHANGED", where)]
    return []


def _kind(schema: ProtobufSchema, type_name: str | tuple[str, str, str]) -> str:
    if isinstance(type_name, tuple):
        return "MAP"
    if type_name in SCALARS or type_name in schema.enums:
        return "SCALAR"
    return "MESSAGE"


def _group(schema: ProtobufSchema, type_name: str) -> str:
    return "GENERAL_NUMBER" if type_name in schema.enums else _WIRE_GROUPS[type_name]


def _local(full_name: str, package: str) -> str:
    return (
        full_name[len(package) + 1 :]
        if package and full_name.startswith(package + ".")
        else full_name
    )
