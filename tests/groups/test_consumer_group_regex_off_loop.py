"""Large regex resolutions run off the event loop (Kafka resolves in its coordinator's
executor): at most one in flight per group, heartbeats answered from the current result
meanwhile, and a result applied only if the topic table and the group's regexes it was
computed for are still current."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from contextplane.coordinators.consumer_group import regex
from contextplane.coordinators.consumer_group.machine import ConsumerGroupMachine
from contextplane.coordinators.consumer_group.messages import (
    ConsumerGroupConfig,
    ConsumerHeartbeat,
)
from contextplane.coordinators.consumer_group.regex import RegexTopics, match_names
from contextplane.coordinators.consumer_group.regex_resolution import RegexResolution
from contextplane.coordinators.group import GroupCoordinator
from contextplane.coordinators.group_state import CoordinatorConfig
from contextplane.metadata.runner import ThreadRunner
from contextplane.protocol.error_codes import ErrorCode
from contextplane.settings import Settings
from tests.groups.test_consumer_group import Clock
from tests.support.metadata import open_store

IMMEDIATE = ConsumerGroupConfig(assignment_interval_ms=0)


def _table(count: int, *extra: str) -> dict[str, int]:
    """A topic table: `count` topics of which every tenth matches `rx-.*`."""
    topics = {(f"rx-{i}" if i % 10 == 0 else f"other-{i}"): 1 for i in range(count)}
    return {**topics, **dict.fromkeys(extra, 1)}


def _heartbeat(
    machine: ConsumerGroupMachine, member: str, topics: dict[str, int], version: int, **kw: Any
) -> dict[str, Any]:
    group = machine.groups.get("g")
    held = group.members.get(member) if group is not None else None
    request = ConsumerHeartbeat(
        "g",
        member,
        0 if held is None else held.epoch,
        rebalance_timeout_ms=30_000,
        owned=frozenset() if held is None else held.assigned,
        **kw,
    )
    response = machine.heartbeat(
        request, lambda t: topics.get(t, 0), version, RegexTopics(lambda: topics)
    )
    assert response["error_code"] == ErrorCode.none
    return response


def _off_loop_machine() -> ConsumerGroupMachine:
    machine = ConsumerGroupMachine(Clock(), IMMEDIATE)
    machine.resolutions.inline_names_max = 0  # every resolution off the loop
    return machine


def _finish(machine: ConsumerGroupMachine, resolution: RegexResolution) -> bool:
    found = resolution.match()
    machine.resolutions.matched(resolution, found)
    return machine.regex_resolved(resolution, found)


def test_heartbeats_are_answered_while_a_resolution_is_in_flight() -> None:
    machine = _off_loop_machine()
    topics = _table(50)
    joined = _heartbeat(machine, "a", topics, 1, subscribed_topic_regex="rx-.*")
    # Answered at once, with what the group has resolved so far: nothing.
    assert joined["assignment"] == frozenset()
    (resolution,) = machine.take_regex_resolutions()
    group = machine.groups["g"]
    epoch = group.group_epoch
    # A second member with the same regex, and a heartbeat of the first, meanwhile: no
    # second resolution for the group (it would do the same work).
    _heartbeat(machine, "b", topics, 1, subscribed_topic_regex="rx-.*")
    _heartbeat(machine, "a", topics, 1)
    assert machine.take_regex_resolutions() == []
    assert group.members["a"].regex_topics == frozenset()

    assert _finish(machine, resolution)
    expected = frozenset(f"rx-{i}" for i in range(0, 50, 10))
    assert group.resolved_regexes == {"rx-.*": expected}
    assert {m.regex_topics for m in group.members.values()} == {expected}
    assert group.group_epoch > epoch
    assigned = _heartbeat(machine, "a", topics, 1)["assignment"]
    assigned |= _heartbeat(machine, "b", topics, 1)["assignment"] or frozenset()
    assert {t for t, _ in assigned} <= expected and assigned


def test_a_result_for_a_stale_topic_table_is_not_applied_and_resolved_again() -> None:
    machine = _off_loop_machine()
    before = _table(50)
    _heartbeat(machine, "a", before, 1, subscribed_topic_regex="rx-.*")
    (first,) = machine.take_regex_resolutions()
    # A topic created while the first resolution runs: it waits behind it.
    after = _table(50, "rx-new")
    _heartbeat(machine, "a", after, 2)
    assert machine.take_regex_resolutions() == []
    group = machine.groups["g"]
    epoch = group.group_epoch

    assert not _finish(machine, first)  # computed for version 1: dropped
    assert group.resolved_regexes == {}
    assert group.members["a"].regex_topics == frozenset()
    assert group.group_epoch == epoch
    (second,) = machine.take_regex_resolutions()
    assert second.topics_version == 2
    assert _finish(machine, second)
    assert "rx-new" in group.resolved_regexes["rx-.*"]
    assert "rx-new" in group.members["a"].regex_topics


def test_a_result_covering_a_regex_nobody_subscribes_to_any_more_is_applied() -> None:
    """A member leaving with its regex meanwhile does not make the others' result stale."""
    machine = _off_loop_machine()
    topics = _table(30, "zz")
    _heartbeat(machine, "a", topics, 1, subscribed_topic_regex="rx-.*")
    (first,) = machine.take_regex_resolutions()
    _finish(machine, first)
    _heartbeat(machine, "b", topics, 1, subscribed_topic_regex="zz")
    (second,) = machine.take_regex_resolutions()
    assert second.patterns == ("rx-.*", "zz")
    machine.heartbeat(ConsumerHeartbeat("g", "b", -1), lambda t: topics.get(t, 0), 1)
    assert _finish(machine, second)
    assert set(machine.groups["g"].resolved_regexes) == {"rx-.*"}


def test_a_removed_group_drops_its_resolution() -> None:
    machine = _off_loop_machine()
    topics = _table(20)
    _heartbeat(machine, "a", topics, 1, subscribed_topic_regex="rx-.*")
    (resolution,) = machine.take_regex_resolutions()
    machine.remove_group("g")
    _heartbeat(machine, "a", topics, 1, subscribed_topic_regex="rx-.*")  # a new group "g"
    assert not _finish(machine, resolution)
    assert machine.groups["g"].resolved_regexes == {}


@pytest.mark.parametrize("set_memory", [regex.SET_MEMORY_MAX, 1 << 12])
def test_sets_match_as_each_pattern_alone(monkeypatch: pytest.MonkeyPatch, set_memory: int) -> None:
    """RE2 sets give each pattern's whole-name matches, also when a set's DFA runs out
    of memory (those names are matched pattern by pattern) or the set cannot compile."""
    monkeypatch.setattr(regex, "SET_MEMORY_MAX", set_memory)
    names = [f"topic-{i % 7}-{i}" for i in range(300)] + ["__consumer_offsets", "a", "ab"]
    names += ["ab" * 40 + "a", "ba" * 50, "a.b", "A-1"]
    patterns = ["topic-1-.*", "^topic-2.*$", "a|b", ".*", "", "a\\.b", "(?i)a-1", "__.*"]
    patterns += ["(a|b)*a(a|b){12}", "(a|b)*b(a|b){11}b", "topic-(1|2)-1\\d"]
    patterns += [f"topic-{k}-.*" for k in range(20)]  # more than one set
    found = match_names(patterns, names)
    for pattern in patterns:
        compiled = regex.compile_pattern(pattern)
        assert found[pattern] == {n for n in names if compiled.fullmatch(n)}, pattern


def test_a_heartbeat_during_a_resolution_in_the_worker_is_answered(tmp_path: Path) -> None:
    """The worker thread is held by another job: the resolution cannot run, and the
    coordinator still answers heartbeats; once released, the result is applied and
    saved, and the member is assigned the matched topics."""
    topics = _table(2_000)
    view = RegexTopics(lambda: topics)

    async def main() -> None:
        store = await open_store(Settings(data_dir=tmp_path))
        coordinator = GroupCoordinator(store, CoordinatorConfig(), consumer_config=IMMEDIATE)
        runner = coordinator.regexes.runner = ThreadRunner("test-regex")
        await coordinator.start()
        gate = threading.Event()
        hold = asyncio.ensure_future(runner.run(gate.wait))
        try:

            async def beat(request: ConsumerHeartbeat) -> dict[str, Any]:
                return await coordinator.consumer_group_heartbeat(
                    request, lambda t: topics.get(t, 0), 1, view
                )

            join = ConsumerHeartbeat(
                "g",
                "a",
                0,
                rebalance_timeout_ms=30_000,
                subscribed_topic_regex="rx-.*",
                owned=frozenset(),
            )
            joined = await beat(join)
            assert joined["error_code"] == ErrorCode.none
            assert joined["assignment"] == frozenset()
            epoch = joined["member_epoch"]
            steady = await beat(ConsumerHeartbeat("g", "a", epoch, owned=frozenset()))
            assert steady["error_code"] == ErrorCode.none
            group = coordinator.consumer.group("g")
            assert group is not None and group.resolved_regexes == {}
            assert not hold.done()  # the worker was held throughout
            gate.set()
            await hold
            await coordinator.regexes.settled()
            expected = frozenset(t for t in topics if t.startswith("rx-"))
            assert group.resolved_regexes == {"rx-.*": expected}
            assigned = await beat(ConsumerHeartbeat("g", "a", epoch, owned=frozenset()))
            assert {t for t, _ in assigned["assignment"]} == expected
        finally:
            gate.set()
            await coordinator.stop()
        # The applied result was saved: a restarted coordinator has it.
        again = GroupCoordinator(store, CoordinatorConfig(), consumer_config=IMMEDIATE)
        await again.start()
        try:
            group = again.consumer.group("g")
            assert group is not None
            assert group.members["a"].regex_topics == expected
        finally:
            await again.stop()
            await store.close()

    asyncio.run(main())
