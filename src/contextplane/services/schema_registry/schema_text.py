"""A schema's text read as JSON, bounded: what the Avro and JSON Schema parsers start from.
NaN, Infinity and numbers out of a double's range are refused (Python's JSON reads them;
no other reader of the stored schema does, Java's clients among them)."""

from __future__ import annotations

import json
import math
from typing import Any

from contextplane.services.schema_registry.errors import invalid_schema

# A schema's text; above `_schemas`' default max.message.bytes with its record around it,
# a schema could not be stored anyway.
SCHEMA_BYTES_MAX = 512 * 1024
# Nesting of the schema's JSON: bounds the parsers' and the compatibility checks' recursion.
SCHEMA_DEPTH_MAX = 128


def load_json(text: str) -> Any:
    """The JSON document in `text`, or 42201 saying why it is not one within the bounds."""
    if len(text.encode()) > SCHEMA_BYTES_MAX:
        raise invalid_schema(f"the schema is larger than {SCHEMA_BYTES_MAX} bytes")
    try:
        document = json.loads(text, parse_constant=_not_json, parse_float=_finite)
    except RecursionError:
        raise invalid_schema(f"nested deeper than {SCHEMA_DEPTH_MAX} levels") from None
    except ValueError as exc:
        raise invalid_schema(f"not JSON: {exc}") from None
    if _depth(document) > SCHEMA_DEPTH_MAX:
        raise invalid_schema(f"nested deeper than {SCHEMA_DEPTH_MAX} levels")
    return document


def _not_json(token: str) -> Any:
    raise ValueError(f"{token} is not a JSON number")


def _finite(token: str) -> float:
    number = float(token)
    if math.isinf(number):
        raise ValueError(f"{token} is out of a double's range")
    return number


def _depth(document: Any) -> int:
    """Nesting depth, without recursion (the document may be as deep as json allows)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        if level > SCHEMA_DEPTH_MAX:
            return level
        if isinstance(node, dict):
            stack.extend((value, level + 1) for value in node.values())
        elif isinstance(node, list):
            stack.extend((value, level + 1) for value in node)
    return deepest
