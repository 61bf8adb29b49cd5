"""Masking a Protobuf value: the message index path after the schema id names the message
(`schema_ids.message_path`), the payload is parsed with a message class built from the
stored schema's descriptor (`StoredSchema.serialized`, the FileDescriptorProto the
registry serves), the fields whose path (`<package>.<message>.<field>`, as
confluent-kafka's Protobuf rule executor names them) is tagged replaced, the message
serialized again after the same prefix.

Protobuf has no null: `null`, and `redact` of a field that is not a string, clear the
field (its default, or absent). The schema's references (an import per referenced
subject version, named as the import) are resolved into the same descriptor pool, their
own references first, so a message using an imported type is decoded and that type's
tagged fields masked too; imports of `confluent/meta.proto` (the tags' option, kept in
the descriptor as raw bytes) and of the well-known types are resolved as well. A
reference whose version is gone, or that is not Protobuf, fails the value closed.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, FileDescriptor

from contextplane.broker.schema_ids import message_path
from contextplane.protocol.record_codec import zigzag_varint
from contextplane.security.masking_policy import NULL, Action
from contextplane.services.schema_registry.references import REFERENCE_DEPTH_MAX

if TYPE_CHECKING:
    from contextplane.broker.masking import ReferenceLookup
    from contextplane.services.schema_registry.state import StoredSchema

META_PROTO = "confluent/meta.proto"
DEPTH_MAX = 200

ApplyAction = Callable[[Any, Action], Any]


class ProtobufCodec:
    """One stored Protobuf schema's messages (with those of its references), built once
    for masking."""

    def __init__(self, stored: StoredSchema, referenced: ReferenceLookup) -> None:
        self.pool = descriptor_pool.DescriptorPool()
        self.referenced = referenced
        self.added: set[str] = set()  # file names in the pool
        self.adding: set[str] = set()  # file names whose dependencies are being added
        self.file = self._add(stored, f"masked-{stored.schema_id}.proto", 0)
        self.top = list(self.file.message_types_by_name.values())

    def _add(self, stored: StoredSchema, name: str, depth: int) -> FileDescriptor:
        """`stored`'s file under `name`, once its dependencies are in the pool."""
        if depth > REFERENCE_DEPTH_MAX:
            raise ValueError("references nested too deeply to mask")
        file = descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(stored.serialized))
        self.adding.add(name)
        references = {reference.name: reference for reference in stored.references}
        for dependency in list(file.dependency):
            if dependency == META_PROTO:
                file.dependency.remove(dependency)
            elif dependency in self.added:
                continue
            elif dependency in self.adding:
                # A registry replayed from forged records can hold a cycle (a version
                # deleted and registered again importing what imports it).
                raise ValueError(f"reference {dependency!r} imports itself through a cycle")
            elif dependency in references:
                target = self.referenced(references[dependency])
                if target is None or target.schema_type != "PROTOBUF":
                    raise ValueError(f"reference {dependency!r} names no Protobuf schema")
                self._add(target, dependency, depth + 1)
            else:
                well_known = descriptor_pb2.FileDescriptorProto()
                # KeyError: neither a reference nor a well-known type.
                descriptor_pool.Default().FindFileByName(dependency).CopyToProto(well_known)
                self.pool.Add(well_known)
                self.added.add(dependency)
        file.name = name
        self.added.add(name)
        return self.pool.AddSerializedFile(file.SerializeToString())

    def message_at(self, path: tuple[int, ...]) -> Descriptor:
        messages = self.top
        found: Descriptor | None = None
        for index in path:
            if index >= len(messages):
                raise ValueError("the message index path names no message")
            found = messages[index]
            messages = list(found.nested_types)
        if found is None:
            raise ValueError("the message index path names no message")
        return found

    def mask(
        self,
        payload: bytes,
        action_at: Callable[[str], Action | None],
        apply: ApplyAction,
        applied: list[Action],
    ) -> bytes:
        """`payload` (the value after the magic byte and id: index path, then message) with
        its tagged fields masked; the same bytes when none is; ValueError when it does not
        read."""
        path = message_path(payload, 0)
        if path is None:
            raise ValueError("no message index path")
        start = _message_start(payload)
        descriptor = self.message_at(path)
        message = message_factory.GetMessageClass(descriptor)()
        message.ParseFromString(payload[start:])
        before = len(applied)
        _walk(message, action_at, apply, applied, 0)
        if len(applied) == before:
            return payload
        return payload[:start] + message.SerializeToString()


def _message_start(payload: bytes) -> int:
    """Where the message starts: after the index path's varints (read by `message_path`
    first, so they are well formed)."""
    count, position = zigzag_varint(payload, 0)
    for _ in range(count):
        _, position = zigzag_varint(payload, position)
    return position


def _walk(
    message: Any,
    action_at: Callable[[str], Action | None],
    apply: ApplyAction,
    applied: list[Action],
    depth: int,
) -> None:
    if depth > DEPTH_MAX:
        raise ValueError("Protobuf value nested too deeply to mask")
    name = message.DESCRIPTOR.full_name
    for field, value in message.ListFields():
        action = action_at(f"{name}.{field.name}")
        if action is not None:
            _mask_field(message, field, value, action, apply)
            applied.append(action)
        elif field.type == FieldDescriptor.TYPE_MESSAGE and not _is_map(field):
            for child in value if _repeated(field) else [value]:
                _walk(child, action_at, apply, applied, depth + 1)


def _mask_field(
    message: Any, field: FieldDescriptor, value: Any, action: Action, apply: ApplyAction
) -> None:
    is_string = field.type == FieldDescriptor.TYPE_STRING and not _is_map(field)
    if action.kind == NULL or not is_string:
        message.ClearField(field.name)
        return
    if _repeated(field):
        masked = [apply(item, action) for item in value]
        del value[:]
        value.extend(item if item is not None else "" for item in masked)
        return
    masked_value = apply(value, action)
    if masked_value is None:
        message.ClearField(field.name)
    else:
        setattr(message, field.name, masked_value)


def _repeated(field: FieldDescriptor) -> bool:
    return bool(field.is_repeated)


def _is_map(field: FieldDescriptor) -> bool:
    return bool(
        field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.GetOptions().map_entry
    )
