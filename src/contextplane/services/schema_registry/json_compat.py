"""Can data valid under one JSON Schema be read by a reader of another? Confluent's rules
(its `SchemaDiff`): the two schemas are compared as a change from the original (the
writer's) to the update (the reader's), every change gets a type, and the update is
compatible when every change is one of the compatible types (the STRICT set, Confluent's
default). The rules in short:

- content models: an object is open when it allows any additional property (no
  `additionalProperties` schema or `false`, no `patternProperties`, no limiting
  `unevaluatedProperties`), partially open when a property not listed is checked against a
  schema, closed otherwise; arrays the same with `additionalItems`. A property may be
  removed only from an open update (or one whose partial model covers it); a property may
  be added to a closed original, or a partially open one whose schema covers it; adding
  a property to an open original is incompatible unless its schema is empty;
- a property newly required needs a default; constraints may only loosen (maxLength up,
  minimum down, multipleOf reduced, a pattern removed, ...); `integer` may widen to
  `number`, not back; enums may grow;
- `anyOf`/`oneOf` may gain branches and `allOf` lose them; combined schemas of the same kind
  match branch to branch (a maximum matching of compatible pairs must cover the smaller
  side); a schema may become a union one branch of which reads it;
- anything may become the empty schema (`{}` or `true`), and `false` may become anything.

Schemas are read as Confluent's loader reads them: `"type": [a, b]` is an anyOf of the
types; a schema with keywords of several kinds (a type and an enum, say) is the allOf of
them; `$ref` is replaced by what it names. A pair under comparison is assumed compatible
when met again inside itself (recursive schemas), and pairs already compared are
remembered, so a schema that names one definition many times costs one comparison per
pair. Comparisons are counted and their nesting bounded: past COMPARISONS_MAX or
COMPARE_DEPTH_MAX the answer is "incompatible", not a stalled or crashed registry.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from contextplane.services.schema_registry.json_schema import JsonSchema

COMPARISONS_MAX = 10_000
# Nesting of comparisons (through properties, items, branches and $refs): bounds recursion.
COMPARE_DEPTH_MAX = 100

# Confluent's COMPATIBLE_CHANGES_STRICT.
COMPATIBLE = frozenset(
    [
        "ID_CHANGED",
        "DESCRIPTION_CHANGED",
        "TITLE_CHANGED",
        "DEFAULT_CHANGED",
        "SCHEMA_REMOVED",
        "TYPE_EXTENDED",
        "MAX_LENGTH_INCREASED",
        "MAX_LENGTH_REMOVED",
        "MIN_LENGTH_DECREASED",
        "MIN_LENGTH_REMOVED",
        "PATTERN_REMOVED",
        "MAXIMUM_INCREASED",
        "MAXIMUM_REMOVED",
        "MINIMUM_DECREASED",
        "MINIMUM_REMOVED",
        "EXCLUSIVE_MAXIMUM_INCREASED",
        "EXCLUSIVE_MAXIMUM_REMOVED",
        "EXCLUSIVE_MINIMUM_DECREASED",
        "EXCLUSIVE_MINIMUM_REMOVED",
        "MULTIPLE_OF_REDUCED",
        "MULTIPLE_OF_REMOVED",
        "REQUIRED_ATTRIBUTE_WITH_DEFAULT_ADDED",
        "REQUIRED_ATTRIBUTE_REMOVED",
        "DEPENDENCY_ARRAY_NARROWED",
        "DEPENDENCY_ARRAY_REMOVED",
        "DEPENDENCY_SCHEMA_REMOVED",
        "MAX_PROPERTIES_INCREASED",
        "MAX_PROPERTIES_REMOVED",
        "MIN_PROPERTIES_DECREASED",
        "MIN_PROPERTIES_REMOVED",
        "ADDITIONAL_PROPERTIES_ADDED",
        "ADDITIONAL_PROPERTIES_EXTENDED",
        "UNEVALUATED_PROPERTIES_ADDED",
        "UNEVALUATED_PROPERTIES_EXTENDED",
        "PROPERTY_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL",
        "REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_UNOPEN_CONTENT_MODEL",
        "OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL",
        "PROPERTY_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL",
        "PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL",
        "PROPERTY_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
        "PROPERTY_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
        "MAX_ITEMS_INCREASED",
        "MAX_ITEMS_REMOVED",
        "MIN_ITEMS_DECREASED",
        "MIN_ITEMS_REMOVED",
        "MAX_CONTAINS_INCREASED",
        "MAX_CONTAINS_REMOVED",
        "MIN_CONTAINS_DECREASED",
        "MIN_CONTAINS_REMOVED",
        "UNIQUE_ITEMS_REMOVED",
        "ADDITIONAL_ITEMS_ADDED",
        "ADDITIONAL_ITEMS_EXTENDED",
        "UNEVALUATED_ITEMS_ADDED",
        "UNEVALUATED_ITEMS_EXTENDED",
        "ITEM_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL",
        "ITEM_ADDED_TO_CLOSED_CONTENT_MODEL",
        "ITEM_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL",
        "ITEM_REMOVED_FROM_OPEN_CONTENT_MODEL",
        "ITEM_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
        "ITEM_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
        "ENUM_ARRAY_EXTENDED",
        "COMBINED_TYPE_EXTENDED",
        "PRODUCT_TYPE_NARROWED",
        "SUM_TYPE_EXTENDED",
        "NOT_TYPE_NARROWED",
    ]
)

_KEYWORDS_OF = {
    "object": (
        "properties",
        "required",
        "additionalProperties",
        "patternProperties",
        "minProperties",
        "maxProperties",
        "dependencies",
        "propertyNames",
        "unevaluatedProperties",
    ),
    "array": (
        "items",
        "prefixItems",
        "additionalItems",
        "minItems",
        "maxItems",
        "uniqueItems",
        "contains",
        "unevaluatedItems",
    ),
    "string": ("minLength", "maxLength", "pattern", "format"),
    "number": ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"),
}
COMBINERS = ("allOf", "anyOf", "oneOf")

Change = tuple[str, str]  # (Confluent's difference type, JSON path below the compared pair)


@dataclass(frozen=True)
class Incompatibility:
    change: str
    path: str

    def __str__(self) -> str:
        return (
            f'{{errorType:"{self.change}", description:"The new schema is not compatible with '
            f"the old one at path '{self.path}'\"}}"
        )


def incompatibilities(reader: JsonSchema, writer: JsonSchema) -> list[Incompatibility]:
    """Why `reader` cannot read data valid under `writer`; empty when it can."""
    return [
        Incompatibility(change, path)
        for change, path in differences(writer, reader)
        if change not in COMPATIBLE
    ]


def differences(original: JsonSchema, update: JsonSchema) -> list[Change]:
    """Every change from `original` to `update`, as (Confluent's type, "#/path")."""
    diff = _Diff()
    try:
        changes = diff.compare(
            diff.node(original.document, original.document, original),
            diff.node(update.document, update.document, update),
        )
    except _TooComplex:
        where = f"more than {COMPARISONS_MAX} comparisons or nested deeper than {COMPARE_DEPTH_MAX}"
        return [("TOO_COMPLEX", f"#: {where}")]
    return [(change, "#" + (path or "/")) for change, path in changes]


class _TooComplex(Exception):
    pass


@dataclass(eq=False)
class _Node:
    """A schema as Confluent's loader types it."""

    kind: str  # empty false object array string number boolean null enum const not combined
    raw: Any
    root: Any  # the document its local $refs resolve against
    owner: JsonSchema
    integer: bool = False
    criterion: str = ""
    # A combined schema's branches: nodes, or raw schemas read when first compared (a
    # branch may be a $ref to the schema itself).
    parts: list[_Node] = field(default_factory=list)
    branches: list[Any] | None = None


def _compatible(changes: list[Change]) -> bool:
    return all(change in COMPATIBLE for change, _ in changes)


def _under(prefix: str, changes: list[Change]) -> list[Change]:
    return [(change, prefix + path) for change, path in changes]


class _Diff:
    def __init__(self) -> None:
        self.nodes: dict[int, _Node] = {}
        self.memo: dict[tuple[int, int], list[Change]] = {}
        self.under_way: set[tuple[int, int]] = set()
        self.comparisons = 0
        self.depth = 0

    # -- reading a schema ----------------------------------------------------------------

    def node(self, raw: Any, root: Any, owner: JsonSchema) -> _Node:
        raw, root = owner.follow(raw, root)
        known = self.nodes.get(id(raw))
        if known is None:
            known = self.nodes[id(raw)] = self._typed(raw, root, owner)
        return known

    def _typed(self, raw: Any, root: Any, owner: JsonSchema) -> _Node:
        if raw is True or not isinstance(raw, dict):
            return _Node("empty" if raw is not False else "false", raw, root, owner)
        parts: list[_Node] = []
        declared = raw.get("type")
        types = [declared] if isinstance(declared, str) else declared
        if isinstance(types, list) and types:
            typed = [self._of_type(t, raw, root, owner) for t in types]
            parts.append(
                typed[0]
                if len(typed) == 1
                else _Node("combined", raw, root, owner, False, "anyOf", typed)
            )
        else:
            for kind, keywords in _KEYWORDS_OF.items():
                if any(keyword in raw for keyword in keywords):
                    parts.append(_Node(kind, raw, root, owner))
        for kind in ("enum", "const", "not"):
            if kind in raw:
                parts.append(_Node(kind, raw, root, owner))
        for criterion in COMBINERS:
            branches = raw.get(criterion)
            if isinstance(branches, list):
                combined = _Node("combined", raw, root, owner, False, criterion)
                combined.branches = branches
                parts.append(combined)
        if not parts:
            return _Node("empty", raw, root, owner)
        if len(parts) == 1:
            return parts[0]
        return _Node("combined", raw, root, owner, False, "allOf", parts)

    @staticmethod
    def _of_type(kind: str, raw: Any, root: Any, owner: JsonSchema) -> _Node:
        if kind == "integer":
            return _Node("number", raw, root, owner, integer=True)
        return _Node(kind, raw, root, owner)

    def child(self, parent: _Node, raw: Any) -> _Node:
        return self.node(raw, parent.root, parent.owner)

    def parts(self, node: _Node) -> list[_Node]:
        if node.branches is not None:
            node.parts = [self.child(node, branch) for branch in node.branches]
            node.branches = None
        return node.parts

    # -- comparing -----------------------------------------------------------------------

    def compare(self, original: _Node | None, update: _Node | None) -> list[Change]:
        if original is None and update is None:
            return []
        if original is None:
            return [("SCHEMA_ADDED", "")]
        if update is None:
            return [("SCHEMA_REMOVED", "")]
        pair = (id(original), id(update))
        if pair in self.memo:
            return self.memo[pair]
        if pair in self.under_way:
            return []  # met again inside itself: assumed compatible
        self.comparisons += 1
        if self.comparisons > COMPARISONS_MAX or self.depth >= COMPARE_DEPTH_MAX:
            raise _TooComplex
        self.under_way.add(pair)
        self.depth += 1
        try:
            found = self._compare(original, update)
        finally:
            self.under_way.discard(pair)
            self.depth -= 1
        self.memo[pair] = found
        return found

    def _compare(self, original: _Node, update: _Node) -> list[Change]:
        if original.kind != "combined" and update.kind == "combined":
            branches = self.parts(update)
            if len(branches) == 1:
                found = self.compare(original, branches[0])
                if _compatible(found):
                    return found
            elif update.criterion in ("anyOf", "oneOf"):
                for branch in branches:
                    found = self.compare(original, branch)
                    if _compatible(found):
                        return [*found, ("SUM_TYPE_EXTENDED", "")]
        elif original.kind == "combined" and update.kind != "combined":
            branches = self.parts(original)
            if len(branches) == 1:
                found = self.compare(branches[0], update)
                if _compatible(found):
                    return found
            elif original.criterion == "allOf":
                for branch in branches:
                    found = self.compare(branch, update)
                    if _compatible(found):
                        return [*found, ("PRODUCT_TYPE_NARROWED", "")]
        if original.kind != update.kind:
            if original.kind == "false" or update.kind == "empty":
                return []
            if _connect_type(original) == _connect_type(update) == "bytes":
                return []
            return [("TYPE_CHANGED", "")]
        found = _annotations(original.raw, update.raw)
        compare_kind = getattr(self, f"_{original.kind}", None)
        return found + compare_kind(original, update) if compare_kind else found

    def _string(self, original: _Node, update: _Node) -> list[Change]:
        o, u = original.raw, update.raw
        found = _limit(o, u, "maxLength", "MAX_LENGTH")
        found += _limit(o, u, "minLength", "MIN_LENGTH")
        if "pattern" in o or "pattern" in u:
            if "pattern" not in o:
                found.append(("PATTERN_ADDED", "/pattern"))
            elif "pattern" not in u:
                found.append(("PATTERN_REMOVED", "/pattern"))
            elif o["pattern"] != u["pattern"]:
                found.append(("PATTERN_CHANGED", "/pattern"))
        return found

    def _number(self, original: _Node, update: _Node) -> list[Change]:
        o, u = original.raw, update.raw
        found = _limit(o, u, "maximum", "MAXIMUM")
        found += _limit(o, u, "minimum", "MINIMUM")
        found += _limit(o, u, "exclusiveMaximum", "EXCLUSIVE_MAXIMUM")
        found += _limit(o, u, "exclusiveMinimum", "EXCLUSIVE_MINIMUM")
        found += _multiple_of(_decimal(o.get("multipleOf")), _decimal(u.get("multipleOf")))
        if original.integer != update.integer:
            found.append(("TYPE_EXTENDED" if original.integer else "TYPE_NARROWED", ""))
        return found

    def _enum(self, original: _Node, update: _Node) -> list[Change]:
        before = {_key(value) for value in original.raw["enum"]}
        after = {_key(value) for value in update.raw["enum"]}
        if before == after:
            return []
        if after >= before:
            return [("ENUM_ARRAY_EXTENDED", "/enum")]
        if before >= after:
            return [("ENUM_ARRAY_NARROWED", "/enum")]
        return [("ENUM_ARRAY_CHANGED", "/enum")]

    def _const(self, original: _Node, update: _Node) -> list[Change]:
        if _key(original.raw["const"]) != _key(update.raw["const"]):
            return [("ENUM_ARRAY_CHANGED", "/const")]
        return []

    def _not(self, original: _Node, update: _Node) -> list[Change]:
        # Reversed: what the update refuses must be refused by the original.
        inner = self.compare(
            self.child(update, update.raw["not"]), self.child(original, original.raw["not"])
        )
        return [("NOT_TYPE_NARROWED" if _compatible(inner) else "NOT_TYPE_EXTENDED", "/not")]

    def _combined(self, original: _Node, update: _Node) -> list[Change]:
        found: list[Change] = []
        o_parts, u_parts = self.parts(original), self.parts(update)
        if original.criterion != update.criterion:
            single = len(o_parts) == 1, len(u_parts) == 1
            if (
                update.criterion == "anyOf"
                or all(single)
                or (single[0] and update.criterion == "oneOf")
                or (single[1] and original.criterion == "allOf")
            ):
                found.append(("COMBINED_TYPE_EXTENDED", ""))
            else:
                return [("COMBINED_TYPE_CHANGED", "")]
        before = _distinct(o_parts)
        after = _distinct(u_parts)
        if len(before) < len(after):
            kind = "PRODUCT_TYPE_EXTENDED" if update.criterion == "allOf" else "SUM_TYPE_EXTENDED"
            found.append((kind, ""))
        elif len(before) > len(after):
            kind = "PRODUCT_TYPE_NARROWED" if original.criterion == "allOf" else "SUM_TYPE_NARROWED"
            found.append((kind, ""))
        edges: dict[int, dict[int, list[Change]]] = {}
        for i, branch in enumerate(before):
            for j, other in enumerate(after):
                changes = self.compare(branch, other)
                if _compatible(changes):
                    edges.setdefault(i, {})[j] = _under(f"/{original.criterion}/{i}", changes)
        matching = _maximum_matching(edges)
        for i, j in matching.items():
            found += edges[i][j]
        if len(matching) < min(len(before), len(after)):
            found.append(("COMBINED_TYPE_SUBSCHEMAS_CHANGED", ""))
        return found

    def _object(self, original: _Node, update: _Node) -> list[Change]:
        o, u = original.raw, update.raw
        o_props, u_props = _dict(o, "properties"), _dict(u, "properties")
        o_required, u_required = set(_list(o, "required")), set(_list(u, "required"))
        found: list[Change] = []
        for name in o_props:
            if name not in u_props:
                continue
            if name in o_required and name not in u_required:
                found.append(("REQUIRED_ATTRIBUTE_REMOVED", f"/required/{name}"))
            elif name not in o_required and name in u_required:
                with_default = _has_default(u_props[name])
                kind = (
                    "REQUIRED_ATTRIBUTE_WITH_DEFAULT_ADDED"
                    if with_default
                    else "REQUIRED_ATTRIBUTE_ADDED"
                )
                found.append((kind, f"/required/{name}"))
        for name in [*o_props, *(n for n in u_props if n not in o_props)]:
            path = f"/properties/{name}"
            if name not in u_props:
                found += _under(path, self._property_removed(original, update, name))
            elif name not in o_props:
                found += _under(path, self._property_added(original, update, name, u_required))
            else:
                found += _under(
                    path,
                    self.compare(
                        self.child(original, o_props[name]), self.child(update, u_props[name])
                    ),
                )
        found += self._dependencies(original, update)
        found += _under("/additionalProperties", self._additional(original, update, "Properties"))
        found += _under(
            "/unevaluatedProperties",
            self._unevaluated(original, update, "unevaluatedProperties", "PROPERTIES"),
        )
        found += _limit(o, u, "maxProperties", "MAX_PROPERTIES")
        found += _limit(o, u, "minProperties", "MIN_PROPERTIES")
        return found

    def _property_removed(self, original: _Node, update: _Node, name: str) -> list[Change]:
        if self._open(update, "Properties"):
            return [("PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL", "")]
        written = _dict(original.raw, "properties")[name]
        partial = self._partial(update, "Properties", name)
        if partial is not None:
            inner = self.compare(self.child(original, written), partial)
            covered = "IS" if _compatible(inner) else "NOT"
            return [
                *inner,
                (f"PROPERTY_REMOVED_{covered}_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", ""),
            ]
        if written is False:
            return [("PROPERTY_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL", "")]
        return [("PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL", "")]

    def _property_added(
        self, original: _Node, update: _Node, name: str, required: set[str]
    ) -> list[Change]:
        added = _dict(update.raw, "properties")[name]
        with_default = _has_default(added)
        if self._open(original, "Properties"):
            if self.child(update, added).kind == "empty":
                return [("PROPERTY_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL", "")]
            if name in required:
                middle = "_WITH_DEFAULT" if with_default else ""
                return [(f"REQUIRED_PROPERTY{middle}_ADDED_TO_OPEN_CONTENT_MODEL", "")]
            return [("OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL", "")]
        found: list[Change] = []
        partial = self._partial(original, "Properties", name)
        if partial is not None:
            inner = self.compare(partial, self.child(update, added))
            covered = "IS" if _compatible(inner) else "NOT"
            found += [
                *inner,
                (f"PROPERTY_ADDED_{covered}_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", ""),
            ]
        if name in required:
            middle = "_WITH_DEFAULT" if with_default else ""
            found.append((f"REQUIRED_PROPERTY{middle}_ADDED_TO_UNOPEN_CONTENT_MODEL", ""))
        else:
            found.append(("OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL", ""))
        return found

    def _dependencies(self, original: _Node, update: _Node) -> list[Change]:
        o, u = _dict(original.raw, "dependencies"), _dict(update.raw, "dependencies")
        found: list[Change] = []
        for as_array in (True, False):
            before = {k: v for k, v in o.items() if isinstance(v, list) == as_array}
            after = {k: v for k, v in u.items() if isinstance(v, list) == as_array}
            kind = "ARRAY" if as_array else "SCHEMA"
            for name in [*before, *(n for n in after if n not in before)]:
                path = f"/dependencies/{name}"
                if name not in after:
                    found.append((f"DEPENDENCY_{kind}_REMOVED", path))
                elif name not in before:
                    found.append((f"DEPENDENCY_{kind}_ADDED", path))
                elif as_array:
                    was, now = set(before[name]), set(after[name])
                    if was != now:
                        change = (
                            "EXTENDED" if now >= was else "NARROWED" if was >= now else "CHANGED"
                        )
                        found.append((f"DEPENDENCY_ARRAY_{change}", path))
                else:
                    changes = self.compare(
                        self.child(original, before[name]), self.child(update, after[name])
                    )
                    found += _under(path, changes)
        return found

    # Content models: `what` is "Properties" (objects) or "Items" (arrays).

    def _additional(self, original: _Node, update: _Node, what: str) -> list[Change]:
        keyword = f"additional{what}"
        upper = what.upper()
        o_permits = original.raw.get(keyword, True) is not False
        u_permits = update.raw.get(keyword, True) is not False
        o_schema = self._schema_of(original, keyword)
        u_schema = self._schema_of(update, keyword)
        if o_permits != u_permits:
            return [(f"ADDITIONAL_{upper}_{'ADDED' if u_permits else 'REMOVED'}", "")]
        if o_schema is None and u_schema is not None:
            return [(f"ADDITIONAL_{upper}_NARROWED", "")]
        if u_schema is None and o_schema is not None:
            return [(f"ADDITIONAL_{upper}_EXTENDED", "")]
        return self.compare(o_schema, u_schema)

    def _unevaluated(
        self, original: _Node, update: _Node, keyword: str, upper: str
    ) -> list[Change]:
        before, after = original.raw.get(keyword), update.raw.get(keyword)
        if before is None and after is None:
            return []
        prefix = f"UNEVALUATED_{upper}"
        if before is None:
            return [(f"{prefix}_{'REMOVED' if after is False else 'NARROWED'}", "")]
        if after is None:
            return [(f"{prefix}_{'ADDED' if before is False else 'EXTENDED'}", "")]
        if before is False and after is not False:
            return [(f"{prefix}_ADDED", "")]
        if before is not False and after is False:
            return [(f"{prefix}_REMOVED", "")]
        o_node, u_node = self.child(original, before), self.child(update, after)
        if o_node.kind == "empty" and u_node.kind != "empty":
            return [(f"{prefix}_NARROWED", "")]
        if o_node.kind != "empty" and u_node.kind == "empty":
            return [(f"{prefix}_EXTENDED", "")]
        return self.compare(o_node, u_node)

    def _schema_of(self, node: _Node, keyword: str) -> _Node | None:
        value = node.raw.get(keyword)
        return self.child(node, value) if isinstance(value, dict) else None

    def _open(self, node: _Node, what: str) -> bool:
        raw = node.raw
        if raw.get(f"additional{what}", True) is False or isinstance(
            raw.get(f"additional{what}"), dict
        ):
            return False
        if what == "Properties" and _dict(raw, "patternProperties"):
            return False
        unevaluated = raw.get(f"unevaluated{what}")
        return unevaluated is None or self.child(node, unevaluated).kind == "empty"

    def _partial(self, node: _Node, what: str, name: str | None = None) -> _Node | None:
        raw = node.raw
        if what == "Properties" and name is not None:
            for pattern, schema in _dict(raw, "patternProperties").items():
                try:
                    if re.search(pattern, name):
                        return self.child(node, schema)
                except re.error:
                    continue
        additional = self._schema_of(node, f"additional{what}")
        if additional is not None:
            return additional
        if raw.get(f"additional{what}", True) is not False:
            unevaluated = raw.get(f"unevaluated{what}")
            if unevaluated is not None and unevaluated is not False:
                inner = self.child(node, unevaluated)
                if inner.kind != "empty":
                    return inner
        return None

    def _array(self, original: _Node, update: _Node) -> list[Change]:
        o, u = original.raw, update.raw
        found: list[Change] = []
        o_all = o.get("items") if not isinstance(o.get("items"), list) else None
        u_all = u.get("items") if not isinstance(u.get("items"), list) else None
        found += _under(
            "/items",
            self.compare(
                None if o_all is None else self.child(original, o_all),
                None if u_all is None else self.child(update, u_all),
            ),
        )
        found += self._item_lists(original, update)
        found += _under("/additionalItems", self._additional(original, update, "Items"))
        found += _under(
            "/unevaluatedItems", self._unevaluated(original, update, "unevaluatedItems", "ITEMS")
        )
        found += _limit(o, u, "maxItems", "MAX_ITEMS")
        found += _limit(o, u, "minItems", "MIN_ITEMS")
        if bool(o.get("uniqueItems")) != bool(u.get("uniqueItems")):
            found.append(
                (
                    "UNIQUE_ITEMS_REMOVED" if o.get("uniqueItems") else "UNIQUE_ITEMS_ADDED",
                    "/uniqueItems",
                )
            )
        found += _limit(o, u, "maxContains", "MAX_CONTAINS")
        found += _limit(o, u, "minContains", "MIN_CONTAINS")
        return found

    def _item_lists(self, original: _Node, update: _Node) -> list[Change]:
        before, after = _items_list(original.raw), _items_list(update.raw)
        found: list[Change] = []
        for index in range(max(len(before), len(after))):
            path = f"/items/{index}"
            if index < len(before) and index < len(after):
                changes = self.compare(
                    self.child(original, before[index]), self.child(update, after[index])
                )
                found += _under(path, changes)
            elif index < len(before):
                found += _under(path, self._item_removed(original, update, before[index]))
            else:
                found += _under(path, self._item_added(original, update, after[index]))
        return found

    def _item_removed(self, original: _Node, update: _Node, written: Any) -> list[Change]:
        if self._open(update, "Items"):
            return [("ITEM_REMOVED_FROM_OPEN_CONTENT_MODEL", "")]
        partial = self._partial(update, "Items")
        if partial is not None:
            inner = self.compare(self.child(original, written), partial)
            covered = "IS" if _compatible(inner) else "NOT"
            return [*inner, (f"ITEM_REMOVED_{covered}_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", "")]
        if written is False:
            return [("ITEM_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL", "")]
        return [("ITEM_REMOVED_FROM_CLOSED_CONTENT_MODEL", "")]

    def _item_added(self, original: _Node, update: _Node, added: Any) -> list[Change]:
        if self._open(original, "Items"):
            if self.child(update, added).kind == "empty":
                return [("ITEM_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL", "")]
            return [("ITEM_ADDED_TO_OPEN_CONTENT_MODEL", "")]
        partial = self._partial(original, "Items")
        if partial is not None:
            inner = self.compare(partial, self.child(update, added))
            covered = "IS" if _compatible(inner) else "NOT"
            return [*inner, (f"ITEM_ADDED_{covered}_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", "")]
        return [("ITEM_ADDED_TO_CLOSED_CONTENT_MODEL", "")]


_ANNOTATIONS = (
    ("$id", "ID_CHANGED"),
    ("title", "TITLE_CHANGED"),
    ("description", "DESCRIPTION_CHANGED"),
    ("default", "DEFAULT_CHANGED"),
)


def _annotations(o: Any, u: Any) -> list[Change]:
    """Changes of id, title, description and default: reported, always compatible."""
    if not (isinstance(o, dict) and isinstance(u, dict)):
        return []
    return [(change, "") for keyword, change in _ANNOTATIONS if o.get(keyword) != u.get(keyword)]


def _items_list(raw: dict[str, Any]) -> list[Any]:
    items = raw.get("prefixItems", raw.get("items"))
    return items if isinstance(items, list) else []


def _limit(o: dict[str, Any], u: dict[str, Any], keyword: str, name: str) -> list[Change]:
    """A limit (maxLength, minimum, ...) added, removed, increased or decreased: which of
    those loosens is in COMPATIBLE."""
    before, after = _number(o.get(keyword)), _number(u.get(keyword))
    if before == after:
        return []
    if before is None:
        return [(f"{name}_ADDED", f"/{keyword}")]
    if after is None:
        return [(f"{name}_REMOVED", f"/{keyword}")]
    return [(f"{name}_{'INCREASED' if before < after else 'DECREASED'}", f"/{keyword}")]


def _number(value: Any) -> float | None:
    """A numeric keyword's value; a draft-4 boolean `exclusiveMaximum` is not one."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _decimal(value: Any) -> Decimal | None:
    if _number(value) is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _multiple_of(before: Decimal | None, after: Decimal | None) -> list[Change]:
    if before == after:
        return []
    if before is None:
        return [("MULTIPLE_OF_ADDED", "/multipleOf")]
    if after is None:
        return [("MULTIPLE_OF_REMOVED", "/multipleOf")]
    if before != 0 and after % before == 0:
        return [("MULTIPLE_OF_EXPANDED", "/multipleOf")]
    if after != 0 and before % after == 0:
        return [("MULTIPLE_OF_REDUCED", "/multipleOf")]
    return [("MULTIPLE_OF_CHANGED", "/multipleOf")]


def _maximum_matching(edges: dict[int, dict[int, list[Change]]]) -> dict[int, int]:
    """A maximum matching of the bipartite graph `edges` (left -> rights), by augmenting
    paths: left -> right."""
    matched_right: dict[int, int] = {}

    def augment(left: int, seen: set[int]) -> bool:
        for right in edges.get(left, {}):
            if right in seen:
                continue
            seen.add(right)
            if right not in matched_right or augment(matched_right[right], seen):
                matched_right[right] = left
                return True
        return False

    for left in edges:
        augment(left, set())
    return {left: right for right, left in matched_right.items()}


def _distinct(parts: list[_Node]) -> list[_Node]:
    """Branches with equal text counted once, as Confluent collapses them."""
    seen: set[tuple[str, str, bool, str]] = set()
    found: list[_Node] = []
    for part in parts:
        key = (part.kind, part.criterion, part.integer, _key(part.raw))
        if key not in seen:
            seen.add(key)
            found.append(part)
    return found


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _dict(raw: Any, keyword: str) -> dict[str, Any]:
    value = raw.get(keyword) if isinstance(raw, dict) else None
    return value if isinstance(value, dict) else {}


def _list(raw: Any, keyword: str) -> list[Any]:
    value = raw.get(keyword) if isinstance(raw, dict) else None
    return value if isinstance(value, list) else []


def _has_default(raw: Any) -> bool:
    return isinstance(raw, dict) and "default" in raw


def _connect_type(node: _Node) -> Any:
    return node.raw.get("connect.type") if isinstance(node.raw, dict) else None
