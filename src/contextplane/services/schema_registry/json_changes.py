"""The changes Confluent's JSON Schema rules name, which of them are compatible, and the
comparisons of single keywords (limits, multipleOf, annotations) and of branch sets (a
maximum matching)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

Change = tuple[str, str]  # (Confluent's difference type, JSON path below the compared pair)

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


ANNOTATIONS = (
    ("$id", "ID_CHANGED"),
    ("title", "TITLE_CHANGED"),
    ("description", "DESCRIPTION_CHANGED"),
    ("default", "DEFAULT_CHANGED"),
)


def annotation_changes(o: Any, u: Any) -> list[Change]:
    """Changes of id, title, description and default: reported, always compatible."""
    if not (isinstance(o, dict) and isinstance(u, dict)):
        return []
    return [(change, "") for keyword, change in ANNOTATIONS if o.get(keyword) != u.get(keyword)]


def limit_change(o: dict[str, Any], u: dict[str, Any], keyword: str, name: str) -> list[Change]:
    """A limit (maxLength, minimum, ...) added, removed, increased or decreased: which of
    those loosens is in COMPATIBLE."""
    before, after = number_value(o.get(keyword)), number_value(u.get(keyword))
    if before == after:
        return []
    if before is None:
        return [(f"{name}_ADDED", f"/{keyword}")]
    if after is None:
        return [(f"{name}_REMOVED", f"/{keyword}")]
    return [(f"{name}_{'INCREASED' if before < after else 'DECREASED'}", f"/{keyword}")]


def number_value(value: Any) -> float | None:
    """A numeric keyword's value; a draft-4 boolean `exclusiveMaximum` is not one."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def decimal_value(value: Any) -> Decimal | None:
    if number_value(value) is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def multiple_of_change(before: Decimal | None, after: Decimal | None) -> list[Change]:
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


def maximum_matching(edges: dict[int, dict[int, list[Change]]]) -> dict[int, int]:
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
