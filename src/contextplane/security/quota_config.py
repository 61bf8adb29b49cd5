"""Client quota configuration as Kafka's controller keeps it: entities, their values, and
the rules of AlterClientQuotas and DescribeClientQuotas (Kafka 4.4's
ClientQuotaControlManager and ClientQuotasImage).

An entity is a set of (type, name) pairs, at most one per type: `user` and `client-id`,
alone or together; a name of None is that type's default (`<default>`). Each entity
holds values by key. The `ip` entity type (connection creation rate) is not implemented:
it is refused as an unknown entity type, and describes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from contextplane.protocol.error_codes import ErrorCode

USER = "user"
CLIENT_ID = "client-id"
PRODUCER_BYTE_RATE = "producer_byte_rate"
CONSUMER_BYTE_RATE = "consumer_byte_rate"
REQUEST_PERCENTAGE = "request_percentage"
CONTROLLER_MUTATION_RATE = "controller_mutation_rate"
# Kafka's QuotaConfig.userAndClientQuotaConfigs(): key -> whether it is integral (LONG).
QUOTA_KEYS: dict[str, bool] = {
    PRODUCER_BYTE_RATE: True,
    CONSUMER_BYTE_RATE: True,
    REQUEST_PERCENTAGE: False,
    CONTROLLER_MUTATION_RATE: False,
}
_LONG_MAX = 2**63 - 1
# DescribeClientQuotas match types.
MATCH_EXACT, MATCH_DEFAULT, MATCH_SPECIFIED = 0, 1, 2

# A quota entity: its (type, name) pairs sorted by type; name None is the default.
Entity = tuple[tuple[str, str | None], ...]


def entity_of(pairs: Iterable[tuple[str, str | None]]) -> Entity:
    """The entity of a request's (type, name) list; a type given twice keeps its last
    name, as Kafka reads it into a map."""
    return tuple(sorted(dict(pairs).items()))


def entity_text(entity: Entity) -> str:
    """Kafka's description of an entity, e.g. `user=alice, client-id=<default>`."""
    return ", ".join(f"{t}={'<default>' if n is None else n}" for t, n in entity)


def _java_text(entity: Entity) -> str:
    """Kafka's ClientQuotaEntity.toString (its map iterates client-id before user)."""
    entries = ", ".join(f"{t}={'null' if n is None else n}" for t, n in entity)
    return f"ClientQuotaEntity(entries={{{entries}}})"


class QuotaError(Exception):
    """A refused alteration or filter: Kafka's error code and message."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _invalid(message: str) -> QuotaError:
    return QuotaError(ErrorCode.invalid_request, message)


@dataclass(frozen=True, slots=True)
class Alteration:
    """One entry of AlterClientQuotas: set (value) or remove (None) each key."""

    entity: Entity
    ops: tuple[tuple[str, float | None], ...]


def validate_entity(entity: Entity) -> None:
    if not entity:
        raise _invalid("Invalid empty client quota entity")
    for entity_type, name in entity:
        if entity_type not in (USER, CLIENT_ID):
            raise _invalid(f"Unhandled client quota entity type: {entity_type}")
        if name is not None and not name:
            raise _invalid(f"Empty {entity_type} not supported")


def validate_value(key: str, value: float) -> None:
    integral = QUOTA_KEYS.get(key)
    if integral is None:
        raise _invalid(f"Invalid configuration key {key}")
    if not value > 0.0:
        raise _invalid(f"Quota {key} must be greater than 0")
    if integral:
        if value > _LONG_MAX:
            raise _invalid(f"Proposed value for {key} is too large for a LONG.")
        if abs(value % 1.0) > 1e-6:
            raise _invalid(f"{key} cannot be a fractional value.")


def apply(
    current: Mapping[Entity, Mapping[str, float]], alterations: list[Alteration]
) -> tuple[dict[Entity, QuotaError | None], list[tuple[Entity, str, float | None]]]:
    """Kafka's controller over a batch: each entity's result, and the changes to store
    (key set to a value, or removed with None). An entity appears once in the results;
    one given twice is refused the second time, its first alteration still applied."""
    results: dict[Entity, QuotaError | None] = {}
    changes: list[tuple[Entity, str, float | None]] = []
    for alteration in alterations:
        entity = alteration.entity
        ops: dict[str, float | None] = {}
        duplicate_key = False
        for key, value in alteration.ops:
            if key in ops:
                duplicate_key = True
            else:
                ops[key] = value
        if duplicate_key or entity in results:
            results[entity] = _invalid(f"Ignoring duplicate entity {_java_text(entity)}")
            continue
        try:
            validate_entity(entity)
            stored = current.get(entity, {})
            entity_changes: list[tuple[Entity, str, float | None]] = []
            for key, value in ops.items():
                if value is None:
                    if key in stored:
                        entity_changes.append((entity, key, None))
                    continue
                validate_value(key, value)
                if stored.get(key) != value:
                    entity_changes.append((entity, key, value))
        except QuotaError as exc:
            results[entity] = exc
            continue
        changes.extend(entity_changes)
        results[entity] = None
    return results, changes


@dataclass(frozen=True, slots=True)
class Filter:
    """DescribeClientQuotas' filter: exact names (None: the default) and types that must
    be present with any name."""

    exact: dict[str, str | None]
    specified: frozenset[str]
    strict: bool


def parse_filter(components: Iterable[tuple[str, int, str | None]], strict: bool) -> Filter:
    """Kafka's ClientQuotasImage.describe checks, in its order."""
    exact: dict[str, str | None] = {}
    specified: set[str] = set()
    for entity_type, match_type, match in components:
        if not entity_type:
            raise _invalid("Invalid empty entity type.")
        if entity_type in exact or entity_type in specified:
            raise _invalid(f"Entity type {entity_type} cannot appear more than once in the filter.")
        if entity_type not in (USER, CLIENT_ID, "ip"):
            raise QuotaError(
                ErrorCode.unsupported_version, f"Unsupported entity type {entity_type}"
            )
        if match_type == MATCH_EXACT:
            if match is None:
                raise _invalid("Request specified MATCH_TYPE_EXACT, but set match string to null.")
            exact[entity_type] = match
        elif match_type == MATCH_DEFAULT:
            if match is not None:
                raise _invalid(
                    "Request specified MATCH_TYPE_DEFAULT, but also specified a match string."
                )
            exact[entity_type] = None
        elif match_type == MATCH_SPECIFIED:
            if match is not None:
                raise _invalid(
                    "Request specified MATCH_TYPE_SPECIFIED, but also specified a match string."
                )
            specified.add(entity_type)
        else:
            raise _invalid(f"Unknown match type {match_type}")
    if ("ip" in exact or "ip" in specified) and (
        USER in exact or USER in specified or CLIENT_ID in exact or CLIENT_ID in specified
    ):
        raise _invalid(
            "Invalid entity filter component combination. IP filter component should not be"
            " used with user or clientId filter component."
        )
    return Filter(exact, frozenset(specified), strict)


def matches(entity: Entity, where: Filter) -> bool:
    """Whether DescribeClientQuotas lists `entity` (Kafka: exact names must match, each
    `specified` type must be present with any name, default included; strict also wants
    no other types). No filter component and not strict: everything."""
    names = dict(entity)
    for entity_type, name in where.exact.items():
        if entity_type not in names or names[entity_type] != name:
            return False
    if any(entity_type not in names for entity_type in where.specified):
        return False
    if where.strict:
        return len(names) == len(where.exact) + len(where.specified)
    return True
