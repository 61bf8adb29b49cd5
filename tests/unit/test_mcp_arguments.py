"""The MCP tools' argument checks (services/mcp/arguments.py): what each accepts, and
that each refusal names the argument and the bound."""

from __future__ import annotations

import pytest

from contextplane.services.mcp import arguments
from contextplane.services.mcp.arguments import ArgumentError


def test_offset_vectors_take_the_context_services_json_shape() -> None:
    vector = arguments.offsets("min_offsets", {"crm.accounts": {"0": 41, "1": 7}})
    assert vector == {("crm.accounts", 0): 41, ("crm.accounts", 1): 7}
    assert arguments.offsets("min_offsets", None) is None


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ({"t": [1]}, "min_offsets.t: expected {partition: offset}"),
        ({"t": {"p": 1}}, "min_offsets.t.p: expected an integer"),
        ({"t": {"-1": 1}}, "min_offsets.t.-1: expected 0 to 2147483647"),
        ({"t": {"0": -5}}, "min_offsets.t.0: expected 0 to"),
        ({"t": {"0": "5"}}, "min_offsets.t.0: expected an offset"),
        ({"t": {"0": True}}, "min_offsets.t.0: expected an offset"),
        ({"": {"0": 1}}, "min_offsets topic: expected 1 to 249 characters"),
        ({"t": {str(p): 0 for p in range(1001)}}, "more than 1000 partitions"),
    ],
)
def test_a_bad_vector_is_refused_by_name(value: dict[str, object], named: str) -> None:
    with pytest.raises(ArgumentError) as refused:
        arguments.offsets("min_offsets", value)
    assert named in str(refused.value)


def test_as_of_is_a_vector_or_a_timestamp() -> None:
    assert arguments.point_in_time({"timestamp_ms": 1767225600000}) == (None, 1767225600000)
    assert arguments.point_in_time({"t": {"0": 3}}) == ({("t", 0): 3}, None)
    # A topic named timestamp_ms is a vector: its value is an object.
    assert arguments.point_in_time({"timestamp_ms": {"0": 3}}) == ({("timestamp_ms", 0): 3}, None)
    with pytest.raises(ArgumentError, match="not both"):
        arguments.point_in_time({"timestamp_ms": 5, "t": {"0": 3}})
    with pytest.raises(ArgumentError, match="as_of.timestamp_ms: expected milliseconds"):
        arguments.point_in_time({"timestamp_ms": "yesterday"})


def test_names_keys_arguments_and_waits_are_bounded() -> None:
    with pytest.raises(ArgumentError, match="view: expected 1 to 1024 characters, got 1025"):
        arguments.name("view", "v" * 1025)
    assert arguments.idempotency_key("é" * 128) == "é" * 128  # 256 bytes
    with pytest.raises(ArgumentError, match="idempotency_key: expected 1 to 256 bytes, got 258"):
        arguments.idempotency_key("é" * 129)
    with pytest.raises(ArgumentError, match="arguments: .* bytes encoded, past the 61440"):
        arguments.tool_arguments({"note": "x" * 61_440})
    with pytest.raises(ArgumentError, match="timeout_ms: expected 1 to 30000, got 0"):
        arguments.timeout_ms(0)
    with pytest.raises(ArgumentError, match="wait_s: expected more than 0 and at most 150"):
        arguments.seconds("wait_s", 151, arguments.CALL_WAIT_S_MAX)
    with pytest.raises(ArgumentError, match="decision_id: expected 1 to 1024 characters"):
        arguments.decision_id("")
