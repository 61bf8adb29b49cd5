"""LIST-typed topic configs (`cleanup.policy`): IncrementalAlterConfigs APPEND and SUBTRACT,
the empty list, how values are normalised, and the errors Kafka 4.4 gives for each misuse."""

from __future__ import annotations

from typing import Any

from conformance import wire
from conformance.scenarios import Ctx, scenario
from conformance.wire import TOPIC_RESOURCE, err

SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3


def _policy(client: Any, topic: str) -> dict[str, Any]:
    result = wire.describe_configs(client, TOPIC_RESOURCE, topic, ["cleanup.policy"])
    entry = next(c for c in result.configs if c.name == "cleanup.policy")
    return {"value": entry.value, "source": int(entry.config_source)}


# Steps that leave the value as it was: nothing to wait for after them.
UNCHANGED = ("subtract_absent", "append_present", "subtract_nothing")


def _steps(ctx: Ctx, client: Any, topic: str, steps: list[tuple[str, list[Any]]]) -> None:
    state = _policy(client, topic)
    for step, ops in steps:
        result = wire.incremental_alter_configs(client, topic, ops)
        ctx.record(step, err(result.error_code))
        if err(result.error_code) == "none" and step not in UNCHANGED:
            state = wire.wait_changed(lambda: _policy(client, topic), state)
        else:
            state = _policy(client, topic)
        ctx.record(f"{step}.after", state)


@scenario()
def subtract_to_empty(ctx: Ctx) -> None:
    """SUBTRACT the only item of cleanup.policy: accepted, described as the empty list;
    APPEND to the empty list; SET to '' and back; AlterConfigs and CreateTopics with ''."""
    client = ctx.raw()
    ctx.record("create", err(wire.create_topic(client, "lc-empty", 1).error_code))
    ctx.check(wire.wait_for_topic(client, "lc-empty", 1), "topic ready")
    _steps(
        ctx,
        client,
        "lc-empty",
        [
            ("subtract_delete", [("cleanup.policy", SUBTRACT, "delete")]),
            ("subtract_absent", [("cleanup.policy", SUBTRACT, "compact")]),
            ("append_compact", [("cleanup.policy", APPEND, "compact")]),
            ("append_present", [("cleanup.policy", APPEND, "compact")]),
            ("append_delete", [("cleanup.policy", APPEND, "delete")]),
            ("subtract_both", [("cleanup.policy", SUBTRACT, "compact,delete")]),
            ("append_two", [("cleanup.policy", APPEND, "delete,compact")]),
            ("set_empty", [("cleanup.policy", SET, "")]),
            ("subtract_nothing", [("cleanup.policy", SUBTRACT, "")]),
            ("delete_override", [("cleanup.policy", DELETE, None)]),
        ],
    )
    legacy = wire.alter_configs(client, "lc-empty", {"cleanup.policy": ""})
    ctx.record("legacy_empty", err(legacy.error_code))
    ctx.record("legacy_empty.after", _policy(client, "lc-empty"))
    created = wire.create_topic(client, "lc-born-empty", 1, cleanup_policy="")
    ctx.record("create_empty", err(created.error_code))
    ctx.check(wire.wait_for_topic(client, "lc-born-empty", 1), "topic ready")
    ctx.record("create_empty.after", _policy(client, "lc-born-empty"))


@scenario()
def normalisation_and_errors(ctx: Ctx) -> None:
    """SET trims items and drops repeats; empty items, unknown items, APPEND/SUBTRACT on a
    non-list config, null values and a key named twice are refused."""
    client = ctx.raw()
    ctx.record("create", err(wire.create_topic(client, "lc-errors", 1).error_code))
    ctx.check(wire.wait_for_topic(client, "lc-errors", 1), "topic ready")
    _steps(
        ctx,
        client,
        "lc-errors",
        [
            ("set_spaces", [("cleanup.policy", SET, "compact, delete")]),
            ("set_repeated", [("cleanup.policy", SET, "delete,delete")]),
            ("set_empty_item", [("cleanup.policy", SET, "delete,")]),
            ("set_comma", [("cleanup.policy", SET, ",")]),
            ("set_unknown_item", [("cleanup.policy", SET, "foo")]),
            ("append_unknown_item", [("cleanup.policy", APPEND, "foo")]),
            ("append_empty", [("cleanup.policy", APPEND, "")]),
            ("append_non_list", [("retention.ms", APPEND, "5")]),
            ("subtract_non_list", [("retention.ms", SUBTRACT, "5")]),
            ("set_null", [("cleanup.policy", SET, None)]),
            ("subtract_null", [("cleanup.policy", SUBTRACT, None)]),
            (
                "same_key_twice",
                [("cleanup.policy", SET, "compact"), ("cleanup.policy", APPEND, "delete")],
            ),
        ],
    )
