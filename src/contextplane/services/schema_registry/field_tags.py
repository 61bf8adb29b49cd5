"""Field tags: which fields of a schema are tagged (`PII`, `SECRET`, ...), by the field
path confluent-kafka's rule executors give a field, so that masking and the clients'
rules agree on what a tag covers.

* Avro: a field's `confluent:tags`, path `<record full name>.<field>`;
* JSON Schema: a property's `confluent:tags`, path `$.<property>[.<property>...]`
  (through `items`, `allOf` / `anyOf` / `oneOf` and `$ref`s; where a `$ref` recurses,
  the path it recurses at is an alias of the path it was entered at, so a field at any
  depth is found);
* Protobuf: a field's `(confluent.field_meta).tags`, path `<package>.<message>.<field>`;
* and for every type, `metadata.tags`: path patterns (`*` within a name, `**` across
  names, `?` one character) with the tags of the fields they match.

Confluent's registry serves no such index (tags travel inside the schema text and its
metadata); this one is for the broker's masking.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from contextplane.services.schema_registry.avro_schema import AvroSchema
from contextplane.services.schema_registry.json_schema import JsonSchema
from contextplane.services.schema_registry.protobuf_schema import ProtobufSchema

TAGS_KEY = "confluent:tags"
# Schema nodes one walk visits: a JSON Schema's `$ref`s can make its tree exponential.
NODES_MAX = 100_000


@dataclass(frozen=True)
class FieldTags:
    # Field path -> the tags written on that field in the schema itself.
    paths: dict[str, frozenset[str]] = field(default_factory=dict)
    # A JSON Schema's recursion: path where a `$ref` recurses -> path it was entered at.
    aliases: dict[str, str] = field(default_factory=dict)

    def written_on(self, path: str) -> frozenset[str]:
        for _ in range(len(path)):  # each alias shortens the path
            alias = next((a for a in self.aliases if path.startswith(a + ".")), None)
            if alias is None:
                break
            path = self.aliases[alias] + path[len(alias) :]
        return self.paths.get(path, frozenset())


def inline_tags(parsed: AvroSchema | JsonSchema | ProtobufSchema) -> FieldTags:
    """The tags written on the fields of the schema itself."""
    found: dict[str, set[str]] = {}
    aliases: dict[str, str] = {}
    if isinstance(parsed, AvroSchema):
        visits = [0]
        _avro(json.loads(parsed.canonical), "", found, visits)
        # The referenced schemas' records too (their fields by the same full-name paths):
        # confluent-kafka's rules see only the schema's own text, but masking fails safe,
        # so a field tagged where its record is defined is masked wherever it is used.
        for named in parsed.named.values():
            _avro(named, "", found, visits)
    elif isinstance(parsed, JsonSchema):
        _json(parsed, parsed.document, parsed.document, "$", found, ({}, aliases), [0])
    else:
        # Every message the file knows, its imports' too (as for Avro's referenced records).
        for name, message in parsed.messages.items():
            for field_name, tags in message.field_tags.items():
                found.setdefault(f"{name}.{field_name}", set()).update(tags)
    return FieldTags({path: frozenset(tags) for path, tags in found.items()}, aliases)


def tags_of(path: str, inline: FieldTags, metadata: dict[str, Any] | None) -> frozenset[str]:
    """The tags of the field at `path`: written on it, or given by a `metadata.tags`
    pattern that matches it (as confluent-kafka's `RuleContext.enter_field` joins them)."""
    found = set(inline.written_on(path))
    for pattern, tags in ((metadata or {}).get("tags") or {}).items():
        if wildcard_match(path, pattern):
            found.update(tags)
    return frozenset(found)


def wildcard_match(path: str, pattern: str) -> bool:
    """Confluent's WildcardMatcher with `.` as the name boundary (`**` any characters,
    `*` any within a name, `?` one within a name), decided in O(len(path) ×
    len(pattern)) steps: the regular expression the clients build backtracks
    exponentially on patterns such as `**a**a**a**b`, and a pattern is anyone's metadata
    while this runs for masking in the broker. (A backslash is a character like any
    other; field paths have none.)"""
    # reachable[i]: the path's first i characters are matched by the tokens so far.
    reachable = [True] + [False] * len(path)
    for token in _tokens(pattern):
        following = [False] * (len(path) + 1)
        if token in ("**", "*"):
            for i in range(len(path) + 1):
                following[i] = reachable[i] or (
                    i > 0 and following[i - 1] and (token == "**" or path[i - 1] != ".")
                )
        else:
            for i in range(len(path)):
                if reachable[i] and (path[i] == token or (token == "?" and path[i] != ".")):
                    following[i + 1] = True
        reachable = following
        if not any(reachable):
            return False
    return reachable[len(path)]


@lru_cache(maxsize=1024)
def _tokens(pattern: str) -> tuple[str, ...]:
    """`**`, `*`, `?` or one literal character each."""
    source = pattern.replace("**.*", "**")
    found: list[str] = []
    i = 0
    while i < len(source):
        step = 2 if source.startswith("**", i) else 1
        found.append(source[i : i + step])
        i += step
    return tuple(found)


def _avro(node: Any, namespace: str, found: dict[str, set[str]], visits: list[int]) -> None:
    visits[0] += 1
    if visits[0] > NODES_MAX:
        return
    if isinstance(node, list):
        for branch in node:
            _avro(branch, namespace, found, visits)
    elif isinstance(node, dict):
        kind = node.get("type")
        if kind == "array":
            _avro(node.get("items"), namespace, found, visits)
        elif kind == "map":
            _avro(node.get("values"), namespace, found, visits)
        elif kind == "record":
            name = node.get("name", "")
            if "." in name:
                full = name
            else:
                space = node.get("namespace", namespace) or ""
                full = f"{space}.{name}" if space else name
            inner = full.rpartition(".")[0]
            for field in node.get("fields", []):
                tags = field.get(TAGS_KEY)
                if isinstance(tags, list):
                    path = f"{full}.{field.get('name')}"
                    found.setdefault(path, set()).update(t for t in tags if isinstance(t, str))
                _avro(field.get("type"), inner, found, visits)
        elif isinstance(kind, dict | list):
            _avro(kind, namespace, found, visits)


def _json(
    schema: JsonSchema,
    node: Any,
    root: Any,
    path: str,
    found: dict[str, set[str]],
    # The `$ref`s being walked, with the path each was entered at; the aliases found.
    refs: tuple[dict[tuple[int, str], str], dict[str, str]],
    visits: list[int],
) -> None:
    visits[0] += 1
    if not isinstance(node, dict) or visits[0] > NODES_MAX:
        return
    ref = node.get("$ref")
    if isinstance(ref, str):
        walking, aliases = refs
        key = (id(root), ref)
        if key in walking:  # recursion: below here is what is below where it was entered
            if walking[key] != path:
                aliases[path] = walking[key]
            return
        try:
            target, document = schema.resolve(ref, root)
        except ValueError:
            return
        walking[key] = path
        _json(schema, target, document, path, found, refs, visits)
        del walking[key]
    for combinator in ("allOf", "anyOf", "oneOf"):
        for branch in node.get(combinator) or ():
            _json(schema, branch, root, path, found, refs, visits)
    items = node.get("items")
    for item in items if isinstance(items, list) else [items]:
        _json(schema, item, root, path, found, refs, visits)
    properties = node.get("properties")
    if isinstance(properties, dict):
        for name, child in properties.items():
            inner = f"{path}.{name}"
            tags = child.get(TAGS_KEY) if isinstance(child, dict) else None
            if isinstance(tags, list):
                found.setdefault(inner, set()).update(t for t in tags if isinstance(t, str))
            _json(schema, child, root, inner, found, refs, visits)
