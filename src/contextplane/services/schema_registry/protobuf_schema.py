"""Protobuf schemas: `.proto` text parsed by proto-schema-parser (a pure-Python parser of
the protobuf grammar), every field's type resolved by protobuf's scoping rules against the
file and the files it imports (its references), kept as a canonical string.

confluent-kafka's ProtobufSerializer registers a schema as a base64 FileDescriptorProto,
which Confluent's registry accepts: such text is decoded with protobuf's own descriptor
classes and written as `.proto` text first, so both forms of one schema are one schema.

The canonical string is the parsed file written back by the parser's generator, comments
dropped: whitespace and comments do not make a new id, any other change does (Confluent
writes its parsed file back the same way).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from antlr4.error.ErrorListener import ErrorListener
from google.protobuf import descriptor_pb2
from google.protobuf.message import DecodeError
from proto_schema_parser import ast
from proto_schema_parser.generator import Generator
from proto_schema_parser.parser import Parser

from contextplane.services.schema_registry.errors import invalid_schema
from contextplane.services.schema_registry.schema_text import SCHEMA_BYTES_MAX

# The text of a .proto: the parser (ANTLR's Python runtime) reads about a field a
# millisecond of the interpreter's time; 64 KiB is some 3,000 fields, about 3 s.
PROTO_BYTES_MAX = 64 * 1024
# Nesting of messages and braces: bounds the parser's recursion and ours.
NESTING_MAX = 32
FIELD_NUMBER_MAX = 2**29 - 1  # protobuf's
# Confluent's field tags: an import its serializers treat as built in (no reference), and
# the field option that carries them.
CONFLUENT_META = "confluent/meta.proto"
FIELD_META = "(confluent.field_meta)"
# In a descriptor: the option's extension number and Meta's `repeated string tags`.
FIELD_META_NUMBER = 1088
SCALARS = frozenset(
    [
        "double",
        "float",
        "int32",
        "int64",
        "uint32",
        "uint64",
        "sint32",
        "sint64",
        "fixed32",
        "fixed64",
        "sfixed32",
        "sfixed64",
        "bool",
        "string",
        "bytes",
    ]
)


@dataclass(frozen=True)
class FieldInfo:
    name: str
    number: int
    # A scalar's name, a message's or enum's full name (no leading dot), or for a map
    # field ("map", key type, value type).
    type: str | tuple[str, str, str]
    label: str  # "", "optional", "repeated" or "required"
    oneof: str | None


@dataclass
class MessageInfo:
    full_name: str
    fields: dict[int, FieldInfo] = field(default_factory=dict)
    oneofs: dict[str, set[int]] = field(default_factory=dict)
    field_names: set[str] = field(default_factory=set)
    # Field name -> its `(confluent.field_meta).tags`, for the fields that have some.
    field_tags: dict[str, frozenset[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class ProtobufSchema:
    canonical: str
    package: str
    # Full name -> message or enum (symbol names), this file's and its imports'.
    messages: dict[str, MessageInfo]
    enums: dict[str, list[tuple[str, int]]]
    # Full names this file itself defines, in the order written (what compatibility walks).
    own_messages: tuple[str, ...]
    own_enums: tuple[str, ...]


def parse_protobuf(
    text: str, references: Sequence[tuple[str, ProtobufSchema]] = ()
) -> ProtobufSchema:
    """The schema in `text`, or 42201 saying why it is not one."""
    if len(text.encode()) > SCHEMA_BYTES_MAX:
        raise invalid_schema(f"the schema is larger than {SCHEMA_BYTES_MAX} bytes")
    text = _from_descriptor(text) or text
    if len(text.encode()) > PROTO_BYTES_MAX:
        raise invalid_schema(f"the .proto text is larger than {PROTO_BYTES_MAX} bytes")
    _check_nesting(text)
    try:
        parsed = Parser(setup_lexer=_raise_on_errors, setup_parser=_raise_on_errors).parse(text)
    except _SyntaxError as exc:
        raise invalid_schema(str(exc)) from None
    except RecursionError:
        raise invalid_schema(f"nested deeper than {NESTING_MAX} levels") from None
    parsed.file_elements = [e for e in parsed.file_elements if not isinstance(e, ast.Comment)]
    _drop_comments(parsed.file_elements)
    imported = {name for name, _ in references}
    for element in parsed.file_elements:
        if (
            isinstance(element, ast.Import)
            and element.name not in imported
            and not element.name.startswith("google/protobuf/")
            and element.name != CONFLUENT_META
        ):
            raise invalid_schema(f"import '{element.name}' has no schema reference")
    return _Builder(parsed, references).build(Generator().generate(parsed))


class _SyntaxError(Exception):
    """The parser's syntax error, raised instead of printed (line:column message)."""


class _RaisingListener(ErrorListener):  # type: ignore[misc]
    def syntaxError(  # noqa: N802 - antlr's name
        self, recognizer: Any, symbol: Any, line: int, column: int, message: str, e: Any
    ) -> None:
        raise _SyntaxError(f"line {line}:{column} {message}")


def _raise_on_errors(recognizer: Any) -> None:
    recognizer.removeErrorListeners()
    recognizer.addErrorListener(_RaisingListener())


def _check_nesting(text: str) -> None:
    depth = 0
    for character in text:
        if character == "{":
            depth += 1
            if depth > NESTING_MAX:
                raise invalid_schema(f"nested deeper than {NESTING_MAX} levels")
        elif character == "}":
            depth -= 1


def _drop_comments(elements: list[Any]) -> None:
    for element in elements:
        inner = getattr(element, "elements", None)
        if isinstance(inner, list):
            inner[:] = [e for e in inner if not isinstance(e, ast.Comment)]
            _drop_comments(inner)


class _Builder:
    """Symbols of the file (and its imports), then every field's type resolved."""

    def __init__(self, parsed: ast.File, references: Sequence[tuple[str, ProtobufSchema]]) -> None:
        self.parsed = parsed
        self.package = next(
            (e.name for e in parsed.file_elements if isinstance(e, ast.Package)), ""
        )
        self.messages: dict[str, MessageInfo] = {}
        self.enums: dict[str, list[tuple[str, int]]] = {}
        for _, schema in references:
            self.messages.update(schema.messages)
            self.enums.update(schema.enums)
        self.own_messages: list[str] = []
        self.own_enums: list[str] = []
        # (message, scope, element) of every field, resolved once every symbol is known.
        self.pending: list[tuple[MessageInfo, str, Any, str | None]] = []

    def build(self, canonical: str) -> ProtobufSchema:
        self._declare(self.parsed.file_elements, self.package)
        for message, scope, element, oneof in self.pending:
            self._add_field(message, scope, element, oneof)
        return ProtobufSchema(
            canonical,
            self.package,
            self.messages,
            self.enums,
            tuple(self.own_messages),
            tuple(self.own_enums),
        )

    def _declare(self, elements: list[Any], scope: str) -> None:
        for element in elements:
            if isinstance(element, ast.Message):
                self._message(element, scope)
            elif isinstance(element, ast.Enum):
                name = _join(scope, element.name)
                self._new_symbol(name)
                values = [
                    (v.name, v.number) for v in element.elements if isinstance(v, ast.EnumValue)
                ]
                if not values:
                    raise invalid_schema(f"enum {name} has no values")
                self.enums[name] = values
                self.own_enums.append(name)

    def _message(self, element: ast.Message, scope: str) -> None:
        name = _join(scope, element.name)
        self._new_symbol(name)
        message = self.messages[name] = MessageInfo(name)
        self.own_messages.append(name)
        for inner in element.elements:
            if isinstance(inner, ast.Field | ast.MapField):
                self.pending.append((message, name, inner, None))
            elif isinstance(inner, ast.OneOf):
                message.oneofs[inner.name] = set()
                for member in inner.elements:
                    if isinstance(member, ast.Field):
                        self.pending.append((message, name, member, inner.name))
            elif isinstance(inner, ast.Group):
                raise invalid_schema(f"groups are not supported (in {name})")
        self._declare([e for e in element.elements if isinstance(e, ast.Message | ast.Enum)], name)

    def _new_symbol(self, name: str) -> None:
        if name in self.messages or name in self.enums:
            raise invalid_schema(f"{name} is already defined")

    def _add_field(self, message: MessageInfo, scope: str, element: Any, oneof: str | None) -> None:
        number = element.number
        if not 1 <= number <= FIELD_NUMBER_MAX or 19000 <= number <= 19999:
            raise invalid_schema(f"field number {number} of {message.full_name} is not usable")
        if number in message.fields:
            raise invalid_schema(f"field number {number} is used twice in {message.full_name}")
        if element.name in message.field_names:
            raise invalid_schema(f"field {element.name} is defined twice in {message.full_name}")
        message.field_names.add(element.name)
        field_type: str | tuple[str, str, str]
        if isinstance(element, ast.MapField):
            # The grammar allows only integral, bool and string keys.
            field_type = ("map", element.key_type, self._resolve(element.value_type, scope))
            label = ""
        else:
            field_type = self._resolve(element.type, scope)
            label = (element.cardinality or "").lower()
        message.fields[number] = FieldInfo(element.name, number, field_type, label, oneof)
        tags = confluent_tags(element.options)
        if tags:
            message.field_tags[element.name] = tags
        if oneof is not None:
            message.oneofs[oneof].add(number)

    def _resolve(self, name: str, scope: str) -> str:
        return resolve_type(name, scope, self.messages, self.enums)


def resolve_type(
    name: str, scope: str, messages: dict[str, MessageInfo], enums: dict[str, Any]
) -> str:
    """A type name as protobuf resolves it: a scalar, `.a.b` absolute, else the innermost
    enclosing scope first."""
    if name in SCALARS:
        return name
    if name.startswith("."):
        candidates = [name[1:]]
    else:
        parts = scope.split(".") if scope else []
        candidates = [_join(".".join(parts[:i]), name) for i in range(len(parts), -1, -1)]
    for candidate in candidates:
        if candidate in messages or candidate in enums:
            return candidate
    if name.startswith("google.protobuf.") or name.startswith(".google.protobuf."):
        return name.lstrip(".")  # a well-known type, imported without a reference
    raise invalid_schema(f"type {name} is not defined (in {scope})")


def confluent_tags(options: list[Any]) -> frozenset[str]:
    """The tags of `[(confluent.field_meta).tags = "A"]` or
    `[(confluent.field_meta) = { tags: ["A", "B"] }]` (`tags` may repeat)."""
    found: set[str] = set()
    for option in options or ():
        if option.name == f"{FIELD_META}.tags":
            found |= _strings(option.value)
        elif option.name == FIELD_META and isinstance(option.value, ast.MessageLiteral):
            for entry in option.value.elements:
                if isinstance(entry, ast.MessageLiteralField) and entry.name == "tags":
                    found |= _strings(entry.value)
    return frozenset(found)


def _strings(value: Any) -> set[str]:
    values = value if isinstance(value, list) else [value]
    return {v for v in values if isinstance(v, str)}


def _join(scope: str, name: str) -> str:
    return f"{scope}.{name}" if scope else name


# -- a base64 FileDescriptorProto written as .proto text -----------------------------------

_LABELS = {1: "optional", 2: "required", 3: "repeated"}
SCALAR_TYPES = {
    1: "double", 2: "float", 3: "int64", 4: "uint64", 5: "int32", 6: "fixed64", 7: "fixed32",
    8: "bool", 9: "string", 12: "bytes", 13: "uint32", 15: "sfixed32", 16: "sfixed64",
    17: "sint32", 18: "sint64",
}  # fmt: skip


def _from_descriptor(text: str) -> str | None:
    """`.proto` text for a base64 FileDescriptorProto, or None if `text` is not one."""
    stripped = text.strip()
    if not stripped or any(c.isspace() or c in "{};" for c in stripped):
        return None
    try:
        raw = base64.b64decode(stripped, validate=True)
        descriptor = descriptor_pb2.FileDescriptorProto.FromString(raw)
    except (binascii.Error, ValueError, DecodeError):
        return None
    if not descriptor.name:  # a serializer always names the file; "abcd" decodes to nothing
        return None
    syntax = descriptor.syntax or "proto2"
    lines = [f'syntax = "{syntax}";']
    if descriptor.package:
        lines.append(f"package {descriptor.package};")
    lines += [f'import "{dependency}";' for dependency in descriptor.dependency]
    for message in descriptor.message_type:
        lines += _message_lines(message, syntax, "")
    for enum in descriptor.enum_type:
        lines += _enum_lines(enum, "")
    return "\n".join(lines) + "\n"


def _message_lines(message: Any, syntax: str, indent: str) -> list[str]:
    inner = indent + "  "
    lines = [f"{indent}message {message.name} {{"]
    map_entries = {
        nested.name: nested for nested in message.nested_type if nested.options.map_entry
    }
    oneofs: dict[int, list[Any]] = {}
    for entry in message.field:
        synthetic = entry.proto3_optional
        if entry.HasField("oneof_index") and not synthetic:
            oneofs.setdefault(entry.oneof_index, []).append(entry)
            continue
        lines.append(inner + _field_line(entry, syntax, map_entries))
    for index, members in oneofs.items():
        lines.append(f"{inner}oneof {message.oneof_decl[index].name} {{")
        lines += [inner + "  " + _field_line(m, syntax, {}, in_oneof=True) for m in members]
        lines.append(f"{inner}}}")
    for nested in message.nested_type:
        if not nested.options.map_entry:
            lines += _message_lines(nested, syntax, inner)
    for enum in message.enum_type:
        lines += _enum_lines(enum, inner)
    lines.append(f"{indent}}}")
    return lines


def _field_line(
    entry: Any, syntax: str, map_entries: dict[str, Any], in_oneof: bool = False
) -> str:
    type_name = _type_name(entry)
    entry_name = entry.type_name.rsplit(".", 1)[-1]
    if entry.label == 3 and entry_name in map_entries:
        key, value = map_entries[entry_name].field
        return f"map<{_type_name(key)}, {_type_name(value)}> {entry.name} = {entry.number};"
    label = _LABELS.get(entry.label, "")
    if in_oneof or (syntax == "proto3" and label == "optional" and not entry.proto3_optional):
        label = ""
    prefix = f"{label} " if label else ""
    tags = _descriptor_tags(entry.options)
    option = f" [{FIELD_META} = {{ tags: [{', '.join(tags)}] }}]" if tags else ""
    return f"{prefix}{type_name} {entry.name} = {entry.number}{option};"


def _descriptor_tags(options: Any) -> list[str]:
    """A descriptor field's `(confluent.field_meta).tags`, quoted for .proto text, read
    from the options' bytes (whether or not this process knows the extension)."""
    found: set[str] = set()
    for meta in _length_delimited(options.SerializeToString(), FIELD_META_NUMBER):
        tags = _length_delimited(meta, 3)  # Meta's `repeated string tags`
        found.update(tag.decode("utf-8", "replace") for tag in tags)
    return [json.dumps(tag) for tag in sorted(found)]


def _length_delimited(message: bytes, number: int) -> list[bytes]:
    """The values of a serialized message's length-delimited field `number`; reading
    stops at whatever does not read as protobuf."""
    found: list[bytes] = []
    position = 0
    while position < len(message):
        key, position = _varint(message, position)
        wire_type = key & 7
        if wire_type == 0:
            _, position = _varint(message, position)
        elif wire_type == 2:
            length, position = _varint(message, position)
            if key >> 3 == number:
                found.append(message[position : position + length])
            position += length
        elif wire_type in (1, 5):
            position += 8 if wire_type == 1 else 4
        else:
            break
    return found


def _varint(data: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while position < len(data) and shift < 64:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, position
    return value, len(data) + 1  # cut short: ends the caller's loop


def _type_name(entry: Any) -> str:
    return SCALAR_TYPES.get(entry.type) or entry.type_name


def _enum_lines(enum: Any, indent: str) -> list[str]:
    lines = [f"{indent}enum {enum.name} {{"]
    lines += [f"{indent}  {value.name} = {value.number};" for value in enum.value]
    lines.append(f"{indent}}}")
    return lines
