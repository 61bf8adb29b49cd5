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

Schemas are read as Confluent's loader reads them (`json_model.py`); the change types and
the comparisons of single keywords are in `json_changes.py`. A pair under comparison is
assumed compatible when met again inside itself (recursive schemas), and pairs already
compared are remembered, so a schema that names one definition many times costs one comparison per
pair. Comparisons are counted and their nesting bounded: past COMPARISONS_MAX or
COMPARE_DEPTH_MAX the answer is "incompatible", not a stalled or crashed registry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from contextplane.services.schema_registry.json_changes import (
    COMPATIBLE,
    Change,
    annotation_changes,
    decimal_value,
    limit_change,
    maximum_matching,
    multiple_of_change,
)
from contextplane.services.schema_registry.json_model import (
    Node,
    Reader,
    canonical_key,
    connect_type,
    dict_of,
    has_default,
    list_of,
)
from contextplane.services.schema_registry.json_schema import JsonSchema

COMPARISONS_MAX = 10_000
# Nesting of comparisons (through properties, items, branches and $refs): bounds recursion.
COMPARE_DEPTH_MAX = 100


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
            diff.reader.node(original.document, original.document, original),
            diff.reader.node(update.document, update.document, update),
        )
    except _TooComplex:
        where = f"more than {COMPARISONS_MAX} comparisons or nested deeper than {COMPARE_DEPTH_MAX}"
        return [("TOO_COMPLEX", f"#: {where}")]
    return [(change, "#" + (path or "/")) for change, path in changes]


class _TooComplex(Exception):
    """The comparison passed COMPARISONS_MAX or COMPARE_DEPTH_MAX."""


def _compatible(changes: list[Change]) -> bool:
    return all(change in COMPATIBLE for change, _ in changes)


def _under(prefix: str, changes: list[Change]) -> list[Change]:
    return [(change, prefix + path) for change, path in changes]


class _Diff:
    def __init__(self) -> None:
        self.reader = Reader()
        self.memo: dict[tuple[int, int], list[Change]] = {}
        self.under_way: set[tuple[int, int]] = set()
        self.comparisons = 0
        self.depth = 0

    # -- comparing -----------------------------------------------------------------------

    def compare(self, original: Node | None, update: Node | None) -> list[Change]:
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

    def _compare(self, original: Node, update: Node) -> list[Change]:
        if original.kind != "combined" and update.kind == "combined":
            branches = self.reader.parts(update)
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
            branches = self.reader.parts(original)
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
            if connect_type(original) == connect_type(update) == "bytes":
                return []
            return [("TYPE_CHANGED", "")]
        found = annotation_changes(original.raw, update.raw)
        compare_kind = getattr(self, f"_{original.kind}", None)
        return found + compare_kind(original, update) if compare_kind else found

    def _string(self, original: Node, update: Node) -> list[Change]:
        o, u = original.raw, update.raw
        found = limit_change(o, u, "maxLength", "MAX_LENGTH")
        found += limit_change(o, u, "minLength", "MIN_LENGTH")
        if "pattern" in o or "pattern" in u:
            if "pattern" not in o:
                found.append(("PATTERN_ADDED", "/pattern"))
            elif "pattern" not in u:
                found.append(("PATTERN_REMOVED", "/pattern"))
            elif o["pattern"] != u["pattern"]:
                found.append(("PATTERN_CHANGED", "/pattern"))
        return found

    def _number(self, original: Node, update: Node) -> list[Change]:
        o, u = original.raw, update.raw
        found = limit_change(o, u, "maximum", "MAXIMUM")
        found += limit_change(o, u, "minimum", "MINIMUM")
        found += limit_change(o, u, "exclusiveMaximum", "EXCLUSIVE_MAXIMUM")
        found += limit_change(o, u, "exclusiveMinimum", "EXCLUSIVE_MINIMUM")
        found += multiple_of_change(
            decimal_value(o.get("multipleOf")), decimal_value(u.get("multipleOf"))
        )
        if original.integer != update.integer:
            found.append(("TYPE_EXTENDED" if original.integer else "TYPE_NARROWED", ""))
        return found

    def _enum(self, original: Node, update: Node) -> list[Change]:
        before = {canonical_key(value) for value in original.raw["enum"]}
        after = {canonical_key(value) for value in update.raw["enum"]}
        if before == after:
            return []
        if after >= before:
            return [("ENUM_ARRAY_EXTENDED", "/enum")]
        if before >= after:
            return [("ENUM_ARRAY_NARROWED", "/enum")]
        return [("ENUM_ARRAY_CHANGED", "/enum")]

    def _const(self, original: Node, update: Node) -> list[Change]:
        if canonical_key(original.raw["const"]) != canonical_key(update.raw["const"]):
            return [("ENUM_ARRAY_CHANGED", "/const")]
        return []

    def _not(self, original: Node, update: Node) -> list[Change]:
        # Reversed: what the update refuses must be refused by the original.
        inner = self.compare(
            self.reader.child(update, update.raw["not"]),
            self.reader.child(original, original.raw["not"]),
        )
        return [("NOT_TYPE_NARROWED" if _compatible(inner) else "NOT_TYPE_EXTENDED", "/not")]

    def _combined(self, original: Node, update: Node) -> list[Change]:
        found: list[Change] = []
        o_parts, u_parts = self.reader.parts(original), self.reader.parts(update)
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
        matching = maximum_matching(edges)
        for i, j in matching.items():
            found += edges[i][j]
        if len(matching) < min(len(before), len(after)):
            found.append(("COMBINED_TYPE_SUBSCHEMAS_CHANGED", ""))
        return found

    def _object(self, original: Node, update: Node) -> list[Change]:
        o, u = original.raw, update.raw
        o_props, u_props = dict_of(o, "properties"), dict_of(u, "properties")
        o_required, u_required = set(list_of(o, "required")), set(list_of(u, "required"))
        found: list[Change] = []
        for name in o_props:
            if name not in u_props:
                continue
            if name in o_required and name not in u_required:
                found.append(("REQUIRED_ATTRIBUTE_REMOVED", f"/required/{name}"))
            elif name not in o_required and name in u_required:
                with_default = has_default(u_props[name])
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
                        self.reader.child(original, o_props[name]),
                        self.reader.child(update, u_props[name]),
                    ),
                )
        found += self._dependencies(original, update)
        found += _under("/additionalProperties", self._additional(original, update, "Properties"))
        found += _under(
            "/unevaluatedProperties",
            self._unevaluated(original, update, "unevaluatedProperties", "PROPERTIES"),
        )
        found += limit_change(o, u, "maxProperties", "MAX_PROPERTIES")
        found += limit_change(o, u, "minProperties", "MIN_PROPERTIES")
        return found

    def _property_removed(self, original: Node, update: Node, name: str) -> list[Change]:
        if self._open(update, "Properties"):
            return [("PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL", "")]
        written = dict_of(original.raw, "properties")[name]
        partial = self._partial(update, "Properties", name)
        if partial is not None:
            inner = self.compare(self.reader.child(original, written), partial)
            covered = "IS" if _compatible(inner) else "NOT"
            return [
                *inner,
                (f"PROPERTY_REMOVED_{covered}_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", ""),
            ]
        if written is False:
            return [("PROPERTY_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL", "")]
        return [("PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL", "")]

    def _property_added(
        self, original: Node, update: Node, name: str, required: set[str]
    ) -> list[Change]:
        added = dict_of(update.raw, "properties")[name]
        with_default = has_default(added)
        if self._open(original, "Properties"):
            if self.reader.child(update, added).kind == "empty":
                return [("PROPERTY_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL", "")]
            if name in required:
                middle = "_WITH_DEFAULT" if with_default else ""
                return [(f"REQUIRED_PROPERTY{middle}_ADDED_TO_OPEN_CONTENT_MODEL", "")]
            return [("OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL", "")]
        found: list[Change] = []
        partial = self._partial(original, "Properties", name)
        if partial is not None:
            inner = self.compare(partial, self.reader.child(update, added))
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

    def _dependencies(self, original: Node, update: Node) -> list[Change]:
        o, u = dict_of(original.raw, "dependencies"), dict_of(update.raw, "dependencies")
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
                        self.reader.child(original, before[name]),
                        self.reader.child(update, after[name]),
                    )
                    found += _under(path, changes)
        return found

    # Content models: `what` is "Properties" (objects) or "Items" (arrays).

    def _additional(self, original: Node, update: Node, what: str) -> list[Change]:
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

    def _unevaluated(self, original: Node, update: Node, keyword: str, upper: str) -> list[Change]:
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
        o_node, u_node = self.reader.child(original, before), self.reader.child(update, after)
        if o_node.kind == "empty" and u_node.kind != "empty":
            return [(f"{prefix}_NARROWED", "")]
        if o_node.kind != "empty" and u_node.kind == "empty":
            return [(f"{prefix}_EXTENDED", "")]
        return self.compare(o_node, u_node)

    def _schema_of(self, node: Node, keyword: str) -> Node | None:
        value = node.raw.get(keyword)
        return self.reader.child(node, value) if isinstance(value, dict) else None

    def _open(self, node: Node, what: str) -> bool:
        raw = node.raw
        if raw.get(f"additional{what}", True) is False or isinstance(
            raw.get(f"additional{what}"), dict
        ):
            return False
        if what == "Properties" and dict_of(raw, "patternProperties"):
            return False
        unevaluated = raw.get(f"unevaluated{what}")
        return unevaluated is None or self.reader.child(node, unevaluated).kind == "empty"

    def _partial(self, node: Node, what: str, name: str | None = None) -> Node | None:
        raw = node.raw
        if what == "Properties" and name is not None:
            for pattern, schema in dict_of(raw, "patternProperties").items():
                try:
                    if re.search(pattern, name):
                        return self.reader.child(node, schema)
                except re.error:
                    continue
        additional = self._schema_of(node, f"additional{what}")
        if additional is not None:
            return additional
        if raw.get(f"additional{what}", True) is not False:
            unevaluated = raw.get(f"unevaluated{what}")
            if unevaluated is not None and unevaluated is not False:
                inner = self.reader.child(node, unevaluated)
                if inner.kind != "empty":
                    return inner
        return None

    def _array(self, original: Node, update: Node) -> list[Change]:
        o, u = original.raw, update.raw
        found: list[Change] = []
        o_all = o.get("items") if not isinstance(o.get("items"), list) else None
        u_all = u.get("items") if not isinstance(u.get("items"), list) else None
        found += _under(
            "/items",
            self.compare(
                None if o_all is None else self.reader.child(original, o_all),
                None if u_all is None else self.reader.child(update, u_all),
            ),
        )
        found += self._item_lists(original, update)
        found += _under("/additionalItems", self._additional(original, update, "Items"))
        found += _under(
            "/unevaluatedItems", self._unevaluated(original, update, "unevaluatedItems", "ITEMS")
        )
        found += limit_change(o, u, "maxItems", "MAX_ITEMS")
        found += limit_change(o, u, "minItems", "MIN_ITEMS")
        if bool(o.get("uniqueItems")) != bool(u.get("uniqueItems")):
            found.append(
                (
                    "UNIQUE_ITEMS_REMOVED" if o.get("uniqueItems") else "UNIQUE_ITEMS_ADDED",
                    "/uniqueItems",
                )
            )
        found += limit_change(o, u, "maxContains", "MAX_CONTAINS")
        found += limit_change(o, u, "minContains", "MIN_CONTAINS")
        return found

    def _item_lists(self, original: Node, update: Node) -> list[Change]:
        before, after = _itemslist_of(original.raw), _itemslist_of(update.raw)
        found: list[Change] = []
        for index in range(max(len(before), len(after))):
            path = f"/items/{index}"
            if index < len(before) and index < len(after):
                changes = self.compare(
                    self.reader.child(original, before[index]),
                    self.reader.child(update, after[index]),
                )
                found += _under(path, changes)
            elif index < len(before):
                found += _under(path, self._item_removed(original, update, before[index]))
            else:
                found += _under(path, self._item_added(original, update, after[index]))
        return found

    def _item_removed(self, original: Node, update: Node, written: Any) -> list[Change]:
        if self._open(update, "Items"):
            return [("ITEM_REMOVED_FROM_OPEN_CONTENT_MODEL", "")]
        partial = self._partial(update, "Items")
        if partial is not None:
            inner = self.compare(self.reader.child(original, written), partial)
            covered = "IS" if _compatible(inner) else "NOT"
            return [*inner, (f"ITEM_REMOVED_{covered}_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", "")]
        if written is False:
            return [("ITEM_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL", "")]
        return [("ITEM_REMOVED_FROM_CLOSED_CONTENT_MODEL", "")]

    def _item_added(self, original: Node, update: Node, added: Any) -> list[Change]:
        if self._open(original, "Items"):
            if self.reader.child(update, added).kind == "empty":
                return [("ITEM_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL", "")]
            return [("ITEM_ADDED_TO_OPEN_CONTENT_MODEL", "")]
        partial = self._partial(original, "Items")
        if partial is not None:
            inner = self.compare(partial, self.reader.child(update, added))
            covered = "IS" if _compatible(inner) else "NOT"
            return [*inner, (f"ITEM_ADDED_{covered}_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", "")]
        return [("ITEM_ADDED_TO_CLOSED_CONTENT_MODEL", "")]


def _itemslist_of(raw: dict[str, Any]) -> list[Any]:
    items = raw.get("prefixItems", raw.get("items"))
    return items if isinstance(items, list) else []


def _distinct(parts: list[Node]) -> list[Node]:
    """Branches with equal text counted once, as Confluent collapses them."""
    seen: set[tuple[str, str, bool, str]] = set()
    found: list[Node] = []
    for part in parts:
        key = (part.kind, part.criterion, part.integer, canonical_key(part.raw))
        if key not in seen:
            seen.add(key)
            found.append(part)
    return found
