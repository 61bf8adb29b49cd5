"""Masking a Protobuf value: the message index path after the schema id names the message
(`schema_ids.message_path`), the payload is parsed with a message class built from the
stored schema's descriptor (`StoredSchema.serialized`, the FileDescriptorProto the
registry serves), the fields whose path (`<package>.<message>.<field>`, as
confluent-kafka's Protobuf rule executor names them) is tagged replaced, the message
serialized again after the same prefix.

Protobuf has no null: `null`, and `redact` of a field that is not a string, clear the
field (its default, or absent). A schema with references to other subjects is not masked
here (the caller sends such values null); its imports of `confluent/meta.proto` (the tags'
option, kept in the descriptor as raw bytes) and of the well-known types are resolved.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from contextplane.broker.schema_ids import message_path
from contextplane.protocol.record_codec import zigzag_varint
from contextplane.security.masking_policy import NULL, Action

if TYPE_CHECKING:
    from contextplane.services.schema_registry.state import StoredSchema

META_PROTO = "confluent/meta.proto"
DEPTH_MAX = 200

ApplyAction = Callable[[Any, Action], Any]


class ProtobufCodec:
    """One stored Protobuf schema's messages, built once for masking."""

    def __init__(self, stored: StoredSchema) -> None:
        if stored.references:
            raise ValueError("Protobuf schemas with references are not masked")
        file = descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(stored.serialized))
        pool = descriptor_pool.DescriptorPool()
        known = descriptor_pool.Default()
        for name in list(file.dependency):
            if name == META_PROTO:
                file.dependency.remove(name)
                continue
            well_known = descriptor_pb2.FileDescriptorProto()
            known.FindFileByName(name).CopyToProto(well_known)  # KeyError: not well known
            pool.Add(well_known)
        file.name = f"masked-{stored.schema_id}.proto"
        self.file = pool.AddSerializedFile(file.SerializeToString())
        self.top = list(self.file.message_types_by_name.values())

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
