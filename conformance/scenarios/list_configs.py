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
    before = _policy(client, "lc-empty")
    legacy = wire.alter_configs(client, "lc-empty", {"cleanup.policy": ""})
    ctx.record("legacy_empty", err(legacy.error_code))
    # Kafka's brokers describe from a metadata image that may trail the controller.
    ctx.record("legacy_empty.after", wire.wait_changed(lambda: _policy(client, "lc-empty"), before))
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


def _config(client: Any, topic: str, name: str) -> dict[str, Any]:
    result = wire.describe_configs(client, TOPIC_RESOURCE, topic, [name])
    entry = next(c for c in result.configs if c.name == name)
    return {"value": entry.value, "source": int(entry.config_source)}


@scenario()
def throttled_replicas(ctx: Ctx) -> None:
    """`leader.replication.throttled.replicas` and `follower.replication.throttled.replicas`:
    LIST configs whose items are `partition:broker` pairs or the single wildcard `*`;
    described with their empty default, set, appended to, subtracted from and refused as
    Kafka 4.4 does."""
    client = ctx.raw()
    ctx.record("create", err(wire.create_topic(client, "lc-throttled", 2).error_code))
    ctx.check(wire.wait_for_topic(client, "lc-throttled", 2), "topic ready")
    for name in (
        "leader.replication.throttled.replicas",
        "follower.replication.throttled.replicas",
    ):
        ctx.record(f"{name}.default", _config(client, "lc-throttled", name))
        state = _config(client, "lc-throttled", name)
        for step, op, value in [
            ("set_wildcard", SET, "*"),
            ("set_pairs", SET, "0:1, 1:1"),
            ("append_pair", APPEND, "1:2"),
            ("append_present", APPEND, "0:1"),
            ("subtract_pair", SUBTRACT, "0:1"),
            ("set_trailing_empty", SET, "0:1,"),
            ("set_inner_empty", SET, "0:1,,1:1"),
            ("set_repeated", SET, "0:1,0:1"),
            ("append_empty", APPEND, ""),
            ("set_wildcard_comma", SET, "*,"),
            ("set_wildcard_and_pair", SET, "*,0:1"),
            ("set_bad_pair", SET, "0-1"),
            ("set_letters", SET, "a:b"),
            ("set_overflow", SET, "99999999999:1"),
            ("append_wildcard", APPEND, "*"),
            ("subtract_all", SUBTRACT, "1:1,1:2,0:1"),
            ("set_empty", SET, ""),
        ]:
            result = wire.incremental_alter_configs(client, "lc-throttled", [(name, op, value)])
            ctx.record(f"{name}.{step}", err(result.error_code))
            if err(result.error_code) == "none" and step != "append_present":
                state = wire.wait_changed(
                    lambda name=name: _config(client, "lc-throttled", name), state
                )
            else:
                state = _config(client, "lc-throttled", name)
            ctx.record(f"{name}.{step}.after", state)
    created = wire.create_topic(
        client, "lc-throttled-born", 1, leader_replication_throttled_replicas="0:1"
    )
    ctx.record("create_with", err(created.error_code))
