"""JSON Schema read as Confluent's loader (everit) types it, for the compatibility rules:
`"type": [a, b]` is an anyOf of the types; a schema with keywords of several kinds (a
type and an enum, say) is the allOf of them; keywords of one kind without a type make a
schema of that kind; `$ref` is replaced by what it names; `{}`, `true` and a schema of
annotations only are the empty schema.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from contextplane.services.schema_registry.json_schema import JsonSchema

KEYWORDS_OF = {
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


@dataclass(eq=False)
class Node:
    """A schema as Confluent's loader types it."""

    kind: str  # empty false object array string number boolean null enum const not combined
    raw: Any
    root: Any  # the document its local $refs resolve against
    owner: JsonSchema
    integer: bool = False
    criterion: str = ""
    # A combined schema's branches: nodes, or raw schemas read when first compared (a
    # branch may be a $ref to the schema itself).
    parts: list[Node] = field(default_factory=list)
    branches: list[Any] | None = None


class Reader:
    """Nodes of the schemas compared, one per schema object (so a definition named many
    times is one node, and pairs of nodes can be remembered)."""

    def __init__(self) -> None:
        self.nodes: dict[int, Node] = {}

    def node(self, raw: Any, root: Any, owner: JsonSchema) -> Node:
        """The node of `raw`, a schema in `root` (a document of `owner`)."""
        raw, root = owner.follow(raw, root)
        known = self.nodes.get(id(raw))
        if known is None:
            known = self.nodes[id(raw)] = self._typed(raw, root, owner)
        return known

    def _typed(self, raw: Any, root: Any, owner: JsonSchema) -> Node:
        if raw is True or not isinstance(raw, dict):
            return Node("empty" if raw is not False else "false", raw, root, owner)
        parts: list[Node] = []
        declared = raw.get("type")
        types = [declared] if isinstance(declared, str) else declared
        if isinstance(types, list) and types:
            typed = [self._of_type(t, raw, root, owner) for t in types]
            parts.append(
                typed[0]
                if len(typed) == 1
                else Node("combined", raw, root, owner, False, "anyOf", typed)
            )
        else:
            for kind, keywords in KEYWORDS_OF.items():
                if any(keyword in raw for keyword in keywords):
                    parts.append(Node(kind, raw, root, owner))
        for kind in ("enum", "const", "not"):
            if kind in raw:
                parts.append(Node(kind, raw, root, owner))
        for criterion in COMBINERS:
            branches = raw.get(criterion)
            if isinstance(branches, list):
                combined = Node("combined", raw, root, owner, False, criterion)
                combined.branches = branches
                parts.append(combined)
        if not parts:
            return Node("empty", raw, root, owner)
        if len(parts) == 1:
            return parts[0]
        return Node("combined", raw, root, owner, False, "allOf", parts)

    @staticmethod
    def _of_type(kind: str, raw: Any, root: Any, owner: JsonSchema) -> Node:
        if kind == "integer":
            return Node("number", raw, root, owner, integer=True)
        return Node(kind, raw, root, owner)

    def child(self, parent: Node, raw: Any) -> Node:
        return self.node(raw, parent.root, parent.owner)

    def parts(self, node: Node) -> list[Node]:
        if node.branches is not None:
            node.parts = [self.child(node, branch) for branch in node.branches]
            node.branches = None
        return node.parts


def canonical_key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def dict_of(raw: Any, keyword: str) -> dict[str, Any]:
    value = raw.get(keyword) if isinstance(raw, dict) else None
    return value if isinstance(value, dict) else {}


def list_of(raw: Any, keyword: str) -> list[Any]:
    value = raw.get(keyword) if isinstance(raw, dict) else None
    return value if isinstance(value, list) else []


def has_default(raw: Any) -> bool:
    return isinstance(raw, dict) and "default" in raw


def connect_type(node: Node) -> Any:
    return node.raw.get("connect.type") if isinstance(node.raw, dict) else None
