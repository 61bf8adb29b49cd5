"""JSON Schema schemas: checked against their draft's meta-schema by `jsonschema`, every
`$ref` resolved (within the schema, or to a referenced schema by its reference name), kept
as a canonical string.

The canonical string is the document written back without whitespace, keys in their
order, as Confluent's registry keeps it (Jackson's `writeValueAsString`): whitespace does
not make a new id, a reordered key does, as there.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urljoin

import jsonschema
import jsonschema.exceptions
import jsonschema.validators

from contextplane.services.schema_registry.errors import invalid_schema
from contextplane.services.schema_registry.schema_text import load_json

# `$ref` pointing at `$ref` ...: a chain longer than this is refused (and a cycle of them).
REF_CHAIN_MAX = 64


@dataclass(frozen=True)
class JsonSchema:
    canonical: str
    document: Any  # a dict or a boolean
    # Reference name -> document: this schema's references and, through them, theirs.
    resources: dict[str, Any]

    def resolve(self, ref: str, root: Any) -> tuple[Any, Any]:
        """The schema `ref` names and the document it sits in (what its own local `$ref`s
        resolve against), `root` being the document `ref` sits in; ValueError if none."""
        name, _, fragment = ref.partition("#")
        document = root if name == "" else self._resource(name, root)
        return _pointer(document, unquote(fragment)), document

    def _resource(self, name: str, root: Any) -> Any:
        if name in self.resources:
            return self.resources[name]
        base = root.get("$id") if isinstance(root, dict) else None
        if isinstance(base, str):
            joined = urljoin(base, name)
            if joined == base:
                return root
            for known, document in self.resources.items():
                if urljoin(base, known) == joined:
                    return document
        raise ValueError(f"no schema reference is named {name!r}")

    def follow(self, node: Any, root: Any) -> tuple[Any, Any]:
        """`node` with every `$ref` it starts with followed (siblings of `$ref` are not
        read, as in draft 7); ValueError for a chain that does not end."""
        for _ in range(REF_CHAIN_MAX):
            if not (isinstance(node, dict) and isinstance(node.get("$ref"), str)):
                return node, root
            node, root = self.resolve(node["$ref"], root)
        raise ValueError(f"a chain of more than {REF_CHAIN_MAX} $refs")


def parse_json_schema(text: str, references: Sequence[tuple[str, JsonSchema]] = ()) -> JsonSchema:
    """The schema in `text`, or 42201 saying why it is not one."""
    document = load_json(text)
    if not isinstance(document, dict | bool):
        raise invalid_schema("a JSON Schema is an object or a boolean")
    resources: dict[str, Any] = {}
    for name, parsed in references:
        resources.update(parsed.resources)
        resources[name] = parsed.document
    parsed = JsonSchema(
        json.dumps(document, separators=(",", ":"), ensure_ascii=False), document, resources
    )
    _check_refs(parsed)  # first: linear, where the meta-schema check takes seconds on 512 KiB
    _check_patterns(document)
    validator = jsonschema.validators.validator_for(document, default=jsonschema.Draft7Validator)
    try:
        validator.check_schema(document)
    except jsonschema.exceptions.SchemaError as exc:
        where = "/".join(str(part) for part in exc.absolute_path)
        raise invalid_schema(f"{exc.message} (at '#/{where}')") from None
    except RecursionError:
        raise invalid_schema("nested too deep for the meta-schema check") from None
    return parsed


def _check_patterns(document: Any) -> None:
    """`patternProperties` keys are matched against property names while comparing
    schemas, on a thread that cannot be stopped: a key that nests quantifiers, the classic
    exponential backtracking (`(a+)+`), is refused."""
    stack: list[Any] = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            patterns = node.get("patternProperties")
            if isinstance(patterns, dict):
                for pattern in patterns:
                    if nests_quantifiers(pattern):
                        raise invalid_schema(
                            f"patternProperties key '{pattern}' nests quantifiers (it may "
                            "backtrack exponentially)"
                        )
            stack.extend(value for key, value in node.items() if key not in ("enum", "const"))


def nests_quantifiers(pattern: str) -> bool:
    """A quantified group (`+`, `*` or `{`) holding a quantifier."""
    groups: list[bool] = []  # per open group: holds a quantifier
    index = 0
    while index < len(pattern):
        character = pattern[index]
        if character == "\\":
            index += 2
            continue
        if character == "[":  # a class: its + * { are characters
            index = _class_end(pattern, index)
            continue
        if character == "(":
            groups.append(False)
        elif character in "+*{":
            if groups:
                groups[-1] = True
        elif character == ")" and groups:
            held = groups.pop()
            following = pattern[index + 1 : index + 2]
            if held and following in ("+", "*", "{"):
                return True
            if held and groups:
                groups[-1] = True
        index += 1
    return False


def _class_end(pattern: str, start: int) -> int:
    """The index after the character class opening at `start` (`]` first is a member)."""
    index = start + 1
    if pattern[index : index + 1] == "^":
        index += 1
    if pattern[index : index + 1] == "]":
        index += 1
    while index < len(pattern) and pattern[index] != "]":
        index += 2 if pattern[index] == "\\" else 1
    return index + 1


def _check_refs(schema: JsonSchema) -> None:
    """Every `$ref` of the document resolves, and no chain of them loops."""
    stack: list[Any] = [schema.document]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                try:
                    schema.follow(node, schema.document)
                except ValueError as exc:
                    raise invalid_schema(f"$ref '{ref}' does not resolve: {exc}") from None
            stack.extend(value for key, value in node.items() if key not in ("enum", "const"))


def _pointer(document: Any, pointer: str) -> Any:
    """RFC 6901: the node at `pointer` ("" or "/a/0/b") in `document`."""
    if pointer == "":
        return document
    if not pointer.startswith("/"):
        raise ValueError(f"'#{pointer}' is not a JSON pointer (anchors are not read)")
    node = document
    for raw in pointer[1:].split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise ValueError(f"nothing at '#{pointer}'")
    return node
