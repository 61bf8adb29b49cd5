"""Pure-Python reader for kio entities that skips unknown tagged fields.

kio's native reader raises ``KeyError("Unknown tagged field tag: N")`` on a tag it does
not know, but KIP-482 says a reader must skip tags it does not understand (newer clients
send them). `read_entity_lenient` mirrors kio's wire format field by field, reusing kio's
native primitive readers so that values come out identical, and differs from the native
reader only where the input is not a valid encoding:

* unknown tags are skipped instead of raising KeyError;
* a known tag whose value does not fill exactly its declared size is an error (native
  ignores the size);
* null for a non-nullable array, and a nullable-struct marker other than -1/1, are errors
  (native returns None / reads the struct, leaving the entity with an impossible value);
* a tagged nullable string may be null (native rejects it even though Kafka allows it);
* an array whose declared length cannot fit in the remaining bytes is rejected before
  anything is allocated (Kafka's own check; the native reader pre-allocates the length
  and aborts the process on a huge one);
* a compact string longer than 32,767 bytes is rejected from its length prefix, before
  its bytes are decoded, as Kafka's generated readers reject it ("string field X had
  invalid length N"); a legacy string's int16 length cannot exceed that bound. Only
  input of more than 32,767 bytes can hold such a string, so only it is read with the
  checking string readers (a plan of their own): smaller requests, most of them, pay
  nothing, and a shorter buffer declaring a longer string fails as truncated.

Every malformed or truncated input raises `LenientDecodeError`: a ValueError, and also a
ProtocolError, because bytes this reader rejects cannot be a Kafka request and the
connection must be closed whichever of the two the caller catches.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import fields
from typing import Any

from kio._kio_native import (
    get_reader,
    read_compact_array_length,
    read_int8,
    read_int32,
    read_unsigned_varint,
)
from kio.serial._implicit_defaults import get_tagged_field_default
from kio.serial._introspect import (
    EntityField,
    EntityTupleField,
    PrimitiveField,
    PrimitiveTupleField,
    classify_field,
    get_field_tag,
    get_schema_field_type,
    is_optional,
)
from kio.serial.errors import SerialError

from contextplane.errors import ProtocolError
from contextplane.limits import STRING_BYTES_MAX

__all__ = ["ArrayLengthError", "LenientDecodeError", "read_entity_lenient"]

# (buffer, position) -> (value, position after the value)
FieldReader = Callable[[bytes, int], tuple[Any, int]]

# Exceptions kio's native primitive readers raise for bad bytes (buffer underflow,
# invalid UTF-8, unexpected null, varint too long, unknown error code, bad bool,
# timestamps out of datetime's range...).
_NATIVE_ERRORS = (SerialError, ValueError, OverflowError)

# Smallest encoding of each primitive, used to reject impossible array lengths early.
_FIXED_SIZES = {
    "int8": 1,
    "uint8": 1,
    "bool": 1,
    "int16": 2,
    "uint16": 2,
    "error_code": 2,
    "int32": 4,
    "uint32": 4,
    "timedelta_i32": 4,
    "int64": 8,
    "uint64": 8,
    "float64": 8,
    "timedelta_i64": 8,
    "datetime_i64": 8,
    "uuid": 16,
}


class LenientDecodeError(ProtocolError, ValueError):
    """The bytes are truncated or are not a valid encoding of the entity."""

    # Set once the innermost entity has prefixed its name and byte position.
    located: bool = False


class ArrayLengthError(LenientDecodeError):
    """An array declares more elements than the remaining bytes could hold."""

    def __init__(self, message: str, length: int) -> None:
        super().__init__(message)
        self.length = length


def read_entity_lenient(
    schema: type, data: bytes | bytearray | memoryview, position: int = 0
) -> tuple[Any, int]:
    """Read one `schema` entity from `data` at `position`.

    Returns ``(entity, end_position)`` -- the absolute position after the entity, not the
    size that kio's native reader returns.
    """
    if not isinstance(data, bytes):
        # kio's native readers refuse writable buffers (bytearray, memoryview of one).
        data = bytes(data)
    if not 0 <= position <= len(data):
        raise LenientDecodeError(f"position {position} is outside a {len(data)}-byte buffer")
    bound_strings = len(data) - position > STRING_BYTES_MAX
    return _entity_plan(schema, False, bound_strings).read(data, position)


def _native_primitive(native: Callable[[bytes, int], tuple[Any, int]]) -> FieldReader:
    def read(data: bytes, position: int) -> tuple[Any, int]:
        value, size = native(data, position)
        return value, position + size

    return read


def _bounded_compact_string(
    native: Callable[[bytes, int], tuple[Any, int]], field_name: str
) -> FieldReader:
    """A compact string reader that refuses a length above Kafka's bound from the prefix."""

    def read(data: bytes, position: int) -> tuple[Any, int]:
        # A prefix of one or two bytes (a high bit clear) is a length below 16,383: two
        # byte tests for the usual string.
        try:
            long_prefix = data[position] & data[position + 1] & 0x80
        except IndexError:  # too few bytes left for any string: the native reader says so
            long_prefix = 0
        if long_prefix:
            length = read_unsigned_varint(data, position)[0] - 1
            if length > STRING_BYTES_MAX:
                raise LenientDecodeError(f"string field {field_name} had invalid length {length}")
        value, size = native(data, position)
        return value, position + size

    return read


def _primitive_reader(
    native: Callable[[bytes, int], tuple[Any, int]],
    kafka_type: str,
    flexible: bool,
    bound_strings: bool,
    name: str,
) -> FieldReader:
    if bound_strings and flexible and kafka_type == "string":
        return _bounded_compact_string(native, name)
    return _native_primitive(native)


def _primitive_min_size(kafka_type: str, flexible: bool) -> int:
    if kafka_type in _FIXED_SIZES:
        return _FIXED_SIZES[kafka_type]
    if flexible:
        return 1  # uvarint length
    return 2 if kafka_type == "string" else 4  # int16 / int32 length


def _array_reader(item: FieldReader, item_min: int, flexible: bool, nullable: bool) -> FieldReader:
    # Kafka rejects a length larger than the bytes left; elements that encode to zero
    # bytes (an empty legacy struct) still count one so a length can never run away.
    item_min = max(item_min, 1)

    def read(data: bytes, position: int) -> tuple[Any, int]:
        if flexible:
            length, size = read_compact_array_length(data, position)
        else:
            length, size = read_int32(data, position)
            if length == -1:
                length = None
            elif length < 0:
                raise LenientDecodeError(f"negative array length {length}")
        position += size
        if length is None:
            if not nullable:
                raise LenientDecodeError("null for a non-nullable array")
            return None, position
        remaining = len(data) - position
        if length * item_min > remaining:
            raise ArrayLengthError(
                f"array of {length} elements cannot fit in {remaining} remaining bytes",
                length,
            )
        items: list[Any] = []
        append = items.append
        for _ in range(length):
            value, position = item(data, position)
            append(value)
        return tuple(items), position

    return read


class _EntityPlan:
    """How to read one entity class: its regular fields in order, then its tags."""

    def __init__(self, entity_type: type, nullable: bool, bound_strings: bool) -> None:
        self.entity_type = entity_type
        self.bound_strings = bound_strings
        self.name = entity_type.__name__
        self.nullable = nullable
        self.flexible: bool = entity_type.__flexible__  # type: ignore[attr-defined]
        # RequestHeader.client_id is always a legacy nullable string (kio and Kafka).
        is_request_header = self.name == "RequestHeader"
        self.fields: list[tuple[str, FieldReader]] = []
        self.tagged: dict[int, tuple[str, FieldReader]] = {}
        self.tag_defaults: dict[str, Any] = {}
        min_size = 1 if self.flexible else 0  # tagged-field count
        for field in fields(entity_type):
            tag = get_field_tag(field)
            if is_request_header and field.name == "client_id":
                reader: FieldReader = _native_primitive(get_reader("string", False, True))
                size = 2
            else:
                reader, size = self._field_reader(field, tag is not None)
            if tag is None:
                self.fields.append((field.name, reader))
                min_size += size
            else:
                self.tagged[int(tag)] = (field.name, reader)
                self.tag_defaults[field.name] = get_tagged_field_default(field)
        if self.tagged and not self.flexible:
            raise TypeError(f"{self.name} has tagged fields but is not flexible")
        self.min_size = 1 if nullable else min_size

    def _field_reader(self, field: Any, is_tag: bool) -> tuple[FieldReader, int]:
        """A reader for one field and the fewest bytes its value can take."""
        optional = is_optional(field)
        flexible = self.flexible
        field_class = classify_field(field)
        if isinstance(field_class, PrimitiveField):
            kafka_type = get_schema_field_type(field)
            try:
                # kio reads a tagged nullable field with the non-nullable reader (a tag is
                # optional by its absence); the nullable one reads the same bytes for
                # non-null values and also accepts the null that Kafka allows.
                native = get_reader(kafka_type, flexible, optional)
            except NotImplementedError:
                if not is_tag:
                    raise
                native = get_reader(kafka_type, flexible, False)
            bound = self.bound_strings
            reader = _primitive_reader(native, kafka_type, flexible, bound, field.name)
            return reader, _primitive_min_size(kafka_type, flexible)
        if isinstance(field_class, EntityField):
            plan = _entity_plan(field_class.type_, optional, self.bound_strings)
            return plan.read, plan.min_size
        if isinstance(field_class, PrimitiveTupleField):
            kafka_type = get_schema_field_type(field)
            native = get_reader(kafka_type, flexible, False)
            bound = self.bound_strings
            item = _primitive_reader(native, kafka_type, flexible, bound, field.name)
            item_min = _primitive_min_size(kafka_type, flexible)
        elif isinstance(field_class, EntityTupleField):
            plan = _entity_plan(field_class.type_, False, self.bound_strings)
            item, item_min = plan.read, plan.min_size
        else:  # pragma: no cover - kio has exactly these four classes
            raise TypeError(f"unsupported field {field.name} of {self.name}")
        array = _array_reader(item, item_min, flexible, optional)
        return array, (1 if flexible else 4)

    def read(self, data: bytes, position: int) -> tuple[Any, int]:
        name = "<marker>"
        try:
            if self.nullable:
                marker, size = read_int8(data, position)
                position += size
                if marker == -1:
                    return None, position
                if marker != 1:
                    raise LenientDecodeError(f"nullable struct marker {marker} is not -1 or 1")
            values: dict[str, Any] = {}
            for name, reader in self.fields:
                values[name], position = reader(data, position)
            if self.flexible:
                name = "<tagged fields>"
                position = self._read_tags(data, position, values)
        except LenientDecodeError as exc:
            if not exc.located:
                exc.args = (f"{self.name}.{name} at byte {position}: {exc}",)
                exc.located = True
            raise
        except _NATIVE_ERRORS as exc:
            error = LenientDecodeError(f"{self.name}.{name} at byte {position}: {exc}")
            error.located = True
            raise error from exc
        return self.entity_type(**values), position

    def _read_tags(self, data: bytes, position: int, values: dict[str, Any]) -> int:
        count, size = read_unsigned_varint(data, position)
        position += size
        end_of_data = len(data)
        # Each tag takes at least two bytes (tag, size); bounds the loop on garbage counts.
        if count * 2 > end_of_data - position:
            raise LenientDecodeError(
                f"{count} tagged fields cannot fit in {end_of_data - position} remaining bytes"
            )
        found: dict[str, Any] = {}
        for _ in range(count):
            tag, size = read_unsigned_varint(data, position)
            position += size
            length, size = read_unsigned_varint(data, position)
            position += size
            end = position + length
            if end > end_of_data:
                raise LenientDecodeError(
                    f"tag {tag} declares {length} bytes, only {end_of_data - position} remain"
                )
            known = self.tagged.get(tag)
            if known is not None:
                name, reader = known
                found[name], value_end = reader(data, position)
                if value_end != end:
                    raise LenientDecodeError(
                        f"tag {tag} ({name}) declares {length} bytes but its value "
                        f"takes {value_end - position}"
                    )
            # An unknown tag is skipped: KIP-482 makes tags ignorable by older readers.
            position = end
        for name, default in self.tag_defaults.items():
            values[name] = found.get(name, default)
        return position


@functools.cache
def _entity_plan(entity_type: type, nullable: bool, bound_strings: bool) -> _EntityPlan:
    return _EntityPlan(entity_type, nullable, bound_strings)
