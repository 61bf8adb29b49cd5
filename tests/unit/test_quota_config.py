"""The rules of AlterClientQuotas and DescribeClientQuotas as Kafka 4.4's controller
applies them (ClientQuotaControlManager, ClientQuotasImage.describe)."""

from __future__ import annotations

import pytest

from contextplane.protocol.error_codes import ErrorCode
from contextplane.security.quota_config import (
    CLIENT_ID,
    MATCH_DEFAULT,
    MATCH_EXACT,
    MATCH_SPECIFIED,
    USER,
    Alteration,
    Entity,
    QuotaError,
    apply,
    entity_of,
    matches,
    parse_filter,
)

C1: Entity = ((CLIENT_ID, "c1"),)
ALICE: Entity = ((USER, "alice"),)
ALICE_C1: Entity = ((CLIENT_ID, "c1"), (USER, "alice"))
DEFAULT_USER: Entity = ((USER, None),)


def _error(entity: Entity, ops: tuple[tuple[str, float | None], ...]) -> str | None:
    results, changes = apply({}, [Alteration(entity, ops)])
    error = results[entity]
    if error is None:
        return None
    assert not changes
    return f"{error.code.name}: {error.message}"


def test_entity_types_and_their_combinations() -> None:
    assert entity_of([(USER, "a"), (CLIENT_ID, "c")]) == ((CLIENT_ID, "c"), (USER, "a"))
    assert _error((), (("producer_byte_rate", 1.0),)) == (
        "invalid_request: Invalid empty client quota entity"
    )
    assert _error((("group", "g"),), (("producer_byte_rate", 1.0),)) == (
        "invalid_request: Unhandled client quota entity type: group"
    )
    # ip (connection_creation_rate) is not implemented: refused as an unknown type.
    assert _error((("ip", "127.0.0.1"),), (("connection_creation_rate", 1.0),)) == (
        "invalid_request: Unhandled client quota entity type: ip"
    )
    assert _error(((USER, ""),), (("producer_byte_rate", 1.0),)) == (
        "invalid_request: Empty user not supported"
    )


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("producer_byte_rate", 1024.0, None),
        ("consumer_byte_rate", 1.0, None),
        ("request_percentage", 12.5, None),
        ("controller_mutation_rate", 0.5, None),
        ("producer_byte_rate", 1.5, "producer_byte_rate cannot be a fractional value."),
        ("producer_byte_rate", 0.0, "Quota producer_byte_rate must be greater than 0"),
        ("request_percentage", -1.0, "Quota request_percentage must be greater than 0"),
        ("consumer_byte_rate", 1e30, "Proposed value for consumer_byte_rate is too large"),
        ("bogus", 1.0, "Invalid configuration key bogus"),
        ("SCRAM-SHA-256", 1.0, "Invalid configuration key SCRAM-SHA-256"),
    ],
)
def test_quota_values(key: str, value: float, expected: str | None) -> None:
    error = _error(C1, ((key, value),))
    if expected is None:
        assert error is None
    else:
        assert error is not None and error.startswith(f"invalid_request: {expected}")


def test_removal_of_an_unknown_key_is_not_checked_and_changes_nothing() -> None:
    results, changes = apply({C1: {"producer_byte_rate": 5.0}}, [Alteration(C1, (("x", None),))])
    assert results == {C1: None} and changes == []


def test_only_changed_values_are_written() -> None:
    current = {C1: {"producer_byte_rate": 5.0, "consumer_byte_rate": 7.0}}
    alteration = Alteration(
        C1, (("producer_byte_rate", 5.0), ("consumer_byte_rate", None), ("request_percentage", 9))
    )
    results, changes = apply(current, [alteration])
    assert results == {C1: None}
    assert changes == [(C1, "consumer_byte_rate", None), (C1, "request_percentage", 9)]


def test_one_bad_key_refuses_its_entity_only() -> None:
    results, changes = apply(
        {},
        [
            Alteration(C1, (("producer_byte_rate", 5.0), ("bogus", 1.0))),
            Alteration(ALICE, (("producer_byte_rate", 5.0),)),
        ],
    )
    assert isinstance(results[C1], QuotaError) and results[ALICE] is None
    assert changes == [(ALICE, "producer_byte_rate", 5.0)]


def test_duplicates_are_refused() -> None:
    results, _ = apply(
        {}, [Alteration(C1, (("producer_byte_rate", 1.0), ("producer_byte_rate", 2.0)))]
    )
    error = results[C1]
    assert error is not None and error.code == ErrorCode.invalid_request
    # The same entity twice: the second is refused (the first's change still applies).
    results, changes = apply(
        {},
        [
            Alteration(C1, (("producer_byte_rate", 1.0),)),
            Alteration(C1, (("consumer_byte_rate", 1.0),)),
        ],
    )
    error = results[C1]
    assert error is not None and "Ignoring duplicate entity" in error.message
    assert changes == [(C1, "producer_byte_rate", 1.0)]


STORED = [
    C1,
    ALICE,
    ALICE_C1,
    DEFAULT_USER,
    ((CLIENT_ID, None),),
    ((CLIENT_ID, None), (USER, None)),
]


def _described(components: list[tuple[str, int, str | None]], strict: bool) -> list[Entity]:
    where = parse_filter(components, strict)
    return [e for e in STORED if matches(e, where)]


def test_describe_filters() -> None:
    assert _described([], strict=False) == STORED
    assert _described([], strict=True) == []
    assert _described([(USER, MATCH_EXACT, "alice")], strict=False) == [ALICE, ALICE_C1]
    assert _described([(USER, MATCH_EXACT, "alice")], strict=True) == [ALICE]
    assert _described([(USER, MATCH_DEFAULT, None)], strict=False) == [
        DEFAULT_USER,
        ((CLIENT_ID, None), (USER, None)),
    ]
    # "any specified name" includes the default, as Kafka's metadata image matches it.
    assert _described([(USER, MATCH_SPECIFIED, None)], strict=True) == [ALICE, DEFAULT_USER]
    assert _described([(USER, MATCH_SPECIFIED, None), (CLIENT_ID, MATCH_EXACT, "c1")], True) == [
        ALICE_C1
    ]


@pytest.mark.parametrize(
    ("components", "code"),
    [
        ([("", MATCH_EXACT, "x")], ErrorCode.invalid_request),
        ([(USER, MATCH_EXACT, "a"), (USER, MATCH_DEFAULT, None)], ErrorCode.invalid_request),
        ([("group", MATCH_EXACT, "g")], ErrorCode.unsupported_version),
        ([(USER, MATCH_EXACT, None)], ErrorCode.invalid_request),
        ([(USER, MATCH_DEFAULT, "a")], ErrorCode.invalid_request),
        ([(USER, MATCH_SPECIFIED, "a")], ErrorCode.invalid_request),
        ([(USER, 7, None)], ErrorCode.invalid_request),
        ([("ip", MATCH_SPECIFIED, None), (USER, MATCH_SPECIFIED, None)], ErrorCode.invalid_request),
    ],
)
def test_bad_filters(components: list[tuple[str, int, str | None]], code: ErrorCode) -> None:
    with pytest.raises(QuotaError) as info:
        parse_filter(components, strict=False)
    assert info.value.code == code
