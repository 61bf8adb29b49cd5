"""Can data written with one Avro schema be read with another? The resolution rules of the
Avro specification, as Java's `SchemaCompatibility` (which Confluent's registry uses)
applies them:

- primitives: the same type, or a promotion: int -> long, float, double; long -> float,
  double; float -> double; string <-> bytes (logical types resolve as their primitive);
- records: the reader's simple name equals the writer's, or a reader alias is the writer's
  full name; every reader field is found in the writer (by name, then by the reader
  field's aliases) and reads it, or else has a default; writer-only fields are skipped;
- enums: names as records; every writer symbol is a reader symbol, unless the reader has
  a default symbol;
- fixed: names as records, and the same size;
- arrays and maps: by their items and values;
- unions: a writer union needs every branch readable by the reader; a reader union needs
  one branch that reads the (non-union) writer.

A pair of named types under check is assumed compatible while it is being checked: that
ends recursion through recursive types, and is the co-inductive reading both Java and the
specification intend. Pairs already decided are remembered, so a schema that refers to one
type many times is checked once per pair.

A reader union is indexed by what its branches can read (kind, name, alias), so a writer
branch is checked only against the branches that could read it: union against union is
linear in their sizes, not their product (two unions of 5,000 records took minutes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from contextplane.services.schema_registry.avro_schema import AvroSchema, simple_name

PROMOTIONS: dict[str, frozenset[str]] = {
    # reader type -> writer types it reads
    "null": frozenset({"null"}),
    "boolean": frozenset({"boolean"}),
    "int": frozenset({"int"}),
    "long": frozenset({"int", "long"}),
    "float": frozenset({"int", "long", "float"}),
    "double": frozenset({"int", "long", "float", "double"}),
    "bytes": frozenset({"bytes", "string"}),
    "string": frozenset({"string", "bytes"}),
}


@dataclass(frozen=True)
class Incompatibility:
    error_type: str  # Java's SchemaIncompatibilityType names
    path: str
    description: str

    def __str__(self) -> str:
        return (
            f"{{errorType:'{self.error_type}', description:'{self.description}', "
            f"additionalInfo:'{self.path}'}}"
        )


def incompatibilities(reader: AvroSchema, writer: AvroSchema) -> list[Incompatibility]:
    """Why `reader` cannot read what `writer` wrote; empty when it can."""
    return _Checker(reader, writer).check(reader.tree, writer.tree, "")


class _Checker:
    def __init__(self, reader: AvroSchema, writer: AvroSchema) -> None:
        self.reader = reader
        self.writer = writer
        # (reader name, writer name) -> found (empty while under check).
        self.decided: dict[tuple[str, str], list[Incompatibility]] = {}
        # id of a reader union -> its branches by what they read: (kind, simple name or
        # "alias:" + a full name, or "" for unnamed kinds) -> [(position, branch)].
        self.union_indexes: dict[int, dict[tuple[str, str], list[tuple[int, Any]]]] = {}

    def check(self, reader_node: Any, writer_node: Any, path: str) -> list[Incompatibility]:
        reader = self.reader.resolve(reader_node)
        writer = self.writer.resolve(writer_node)
        if isinstance(writer, list):
            found: list[Incompatibility] = []
            for index, branch in enumerate(writer):
                found += self.check(reader, branch, f"{path}/{index}")
            return found
        if isinstance(reader, list):
            for branch in self._branches_that_may_read(reader, writer):
                if not self.check(branch, writer, path):
                    return []
            return [
                Incompatibility(
                    "MISSING_UNION_BRANCH",
                    path or "/",
                    f"The new schema's union has no branch that reads the old schema's "
                    f"{_describe(writer)}",
                )
            ]
        reader_kind = _kind(reader)
        writer_kind = _kind(writer)
        if reader_kind in PROMOTIONS:
            if writer_kind in PROMOTIONS[reader_kind]:
                return []
            return [_type_mismatch(path, reader, writer)]
        if reader_kind != writer_kind:
            return [_type_mismatch(path, reader, writer)]
        if reader_kind == "array":
            return self.check(reader["items"], writer["items"], f"{path}/items")
        if reader_kind == "map":
            return self.check(reader["values"], writer["values"], f"{path}/values")
        return self._named(reader, writer, path)

    def _branches_that_may_read(self, union: list[Any], writer: Any) -> list[Any]:
        """The branches of a reader union that are not refused at once by their kind or
        name (the only ones `check` can find compatible), in the union's order."""
        index = self.union_indexes.get(id(union))
        if index is None:
            index = self.union_indexes[id(union)] = {}
            for position, branch in enumerate(union):
                for key in _read_keys(self.reader.resolve(branch)):
                    index.setdefault(key, []).append((position, branch))
        found: dict[int, Any] = {}
        for key in _written_keys(writer):
            found.update(index.get(key, ()))
        return [found[position] for position in sorted(found)]

    def _named(
        self, reader: dict[str, Any], writer: dict[str, Any], path: str
    ) -> list[Incompatibility]:
        pair = (reader["name"], writer["name"])
        if pair in self.decided:
            return self.decided[pair]
        self.decided[pair] = []  # assumed compatible while under check
        found = self._named_uncached(reader, writer, path)
        self.decided[pair] = found
        return found

    def _named_uncached(
        self, reader: dict[str, Any], writer: dict[str, Any], path: str
    ) -> list[Incompatibility]:
        if simple_name(reader["name"]) != simple_name(writer["name"]) and (
            writer["name"] not in reader["aliases"]
        ):
            return [
                Incompatibility(
                    "NAME_MISMATCH",
                    f"{path}/name",
                    f"expected: {writer['name']}",
                )
            ]
        kind = reader["type"]
        if kind == "fixed":
            if reader["size"] != writer["size"]:
                return [
                    Incompatibility(
                        "FIXED_SIZE_MISMATCH",
                        f"{path}/size",
                        f"expected: {writer['size']}, found: {reader['size']}",
                    )
                ]
            return []
        if kind == "enum":
            symbols = set(reader["symbols"])
            missing = [s for s in writer["symbols"] if s not in symbols]
            if missing and not reader["has_default"]:
                return [
                    Incompatibility(
                        "MISSING_ENUM_SYMBOLS",
                        f"{path}/symbols",
                        f"The new schema is missing enum symbols '{missing}' at path "
                        f"'{path}/symbols' in the old schema",
                    )
                ]
            return []
        return self._record(reader, writer, path)

    def _record(
        self, reader: dict[str, Any], writer: dict[str, Any], path: str
    ) -> list[Incompatibility]:
        by_name = {field["name"]: field for field in writer["fields"]}
        found: list[Incompatibility] = []
        for index, field in enumerate(reader["fields"]):
            written = by_name.get(field["name"])
            if written is None:
                written = next((by_name[a] for a in field["aliases"] if a in by_name), None)
            field_path = f"{path}/fields/{index}"
            if written is not None:
                found += self.check(field["type"], written["type"], f"{field_path}/type")
            elif not field["has_default"]:
                found.append(
                    Incompatibility(
                        "READER_FIELD_MISSING_DEFAULT_VALUE",
                        field_path,
                        f"The field '{field['name']}' at path '{field_path}' in the new "
                        "schema has no default value and is missing in the old schema",
                    )
                )
        return found


def _read_keys(reader: Any) -> list[tuple[str, str]]:
    """What a (resolved, non-union) reader branch can read, as keys `_written_keys` makes."""
    kind = _kind(reader)
    if kind in PROMOTIONS:
        return [(writer_kind, "") for writer_kind in PROMOTIONS[kind]]
    if kind in ("array", "map"):
        return [(kind, "")]
    return [(kind, simple_name(reader["name"]))] + [
        (kind, f"alias:{alias}") for alias in reader["aliases"]
    ]


def _written_keys(writer: Any) -> list[tuple[str, str]]:
    kind = _kind(writer)
    if kind in PROMOTIONS or kind in ("array", "map"):
        return [(kind, "")]
    return [(kind, simple_name(writer["name"])), (kind, f"alias:{writer['name']}")]


def _kind(node: Any) -> str:
    return node if isinstance(node, str) else str(node["type"])


def _describe(node: Any) -> str:
    if isinstance(node, str):
        return node
    return f"{node['type']} {node['name']}" if "name" in node else str(node["type"])


def _type_mismatch(path: str, reader: Any, writer: Any) -> Incompatibility:
    return Incompatibility(
        "TYPE_MISMATCH",
        path or "/",
        f"The type (path '{path or '/'}') of a field in the new schema does not match with "
        f"the old schema: reader {_describe(reader)}, writer {_describe(writer)}",
    )
