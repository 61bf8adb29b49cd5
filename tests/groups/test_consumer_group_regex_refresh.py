"""Kafka 4.4's model of regex subscriptions in a consumer group (GroupMetadataManager's
maybeUpdateRegularExpressions): one resolved result per regex per group, resolved for
every member with the context of the member whose heartbeat triggered it, and resolved
again at most every `group.consumer.regex.refresh.interval.ms` even when no topic was
created or deleted (so an ACL change alone takes effect)."""

from __future__ import annotations

from contextplane.coordinators.consumer_group.machine import ConsumerGroupMachine
from contextplane.coordinators.consumer_group.messages import (
    ConsumerGroupConfig,
    ConsumerHeartbeat,
)
from contextplane.coordinators.consumer_group.regex import RegexTopics
from contextplane.protocol.error_codes import ErrorCode
from tests.groups.test_consumer_group import Clock, _regex_join

COUNTS = {"rx-open": 2, "rx-closed": 1, "other": 1}
INTERVAL_MS = 10_000


def _partitions(topic: str) -> int:
    return COUNTS.get(topic, 0)


def _topics(hidden: set[str], asked: list[str] | None = None, who: str = "") -> RegexTopics:
    """What one principal sees: every topic, DESCRIBE-able unless `hidden`."""

    def describable(found: frozenset[str]) -> frozenset[str]:
        if asked is not None:
            asked.append(who)
        return frozenset(t for t in found if t not in hidden)

    return RegexTopics(lambda: COUNTS, describable)


def _machine() -> tuple[ConsumerGroupMachine, Clock]:
    clock = Clock()
    config = ConsumerGroupConfig(assignment_interval_ms=0, regex_refresh_interval_ms=INTERVAL_MS)
    return ConsumerGroupMachine(clock, config), clock


def _join(machine: ConsumerGroupMachine, member: str, pattern: str, topics: RegexTopics) -> dict:
    response = _regex_join(
        machine, member, pattern, partitions=_partitions, topics_version=1, regex_topics=topics
    )
    assert response["error_code"] == ErrorCode.none
    return response


def _beat(machine: ConsumerGroupMachine, member: str, topics: RegexTopics) -> dict:
    group = machine.groups["g"]
    held = group.members[member]
    request = ConsumerHeartbeat("g", member, held.epoch, owned=held.assigned)
    response = machine.heartbeat(request, _partitions, 1, topics)
    assert response["error_code"] == ErrorCode.none
    return response


def test_an_acl_change_alone_takes_effect_at_the_first_heartbeat_after_the_interval() -> None:
    machine, clock = _machine()
    hidden = {"rx-closed"}
    _join(machine, "a", "rx-.*", _topics(hidden))
    member = machine.groups["g"].members["a"]
    assert member.regex_topics == {"rx-open"}
    # DESCRIBE on rx-closed granted; the topic table is unchanged (same version).
    hidden.clear()
    clock.now = INTERVAL_MS  # not yet past the interval (Kafka: strictly after it)
    _beat(machine, "a", _topics(hidden))
    assert member.regex_topics == {"rx-open"}
    clock.now = INTERVAL_MS + 1
    epoch = member.epoch
    _beat(machine, "a", _topics(hidden))
    assert member.regex_topics == {"rx-open", "rx-closed"}
    assert member.epoch > epoch
    assert ("rx-closed", 0) in member.assigned
    # And the next refresh is an interval after this one, not at every heartbeat.
    asked: list[str] = []
    clock.now += INTERVAL_MS
    _beat(machine, "a", _topics(hidden, asked, "a"))
    assert asked == []
    clock.now += 1
    _beat(machine, "a", _topics(hidden, asked, "a"))
    assert asked == ["a"]


def test_members_sharing_a_regex_share_one_result_whoever_joined_second() -> None:
    """The second member's regex is already resolved in the group: it takes that result
    (resolved with the first member's principal) and nothing is resolved for it."""
    machine, clock = _machine()
    asked: list[str] = []
    _join(machine, "a", "rx-.*", _topics(set(), asked, "a"))  # a may describe both
    _join(machine, "b", "rx-.*", _topics({"rx-closed"}, asked, "b"))  # b only rx-open
    group = machine.groups["g"]
    assert asked == ["a"]
    assert group.members["b"].regex_topics == {"rx-open", "rx-closed"}
    assert group.resolved_regexes == {"rx-.*": frozenset({"rx-open", "rx-closed"})}
    # A refresh triggered by b's heartbeat resolves the group's regex with b's principal,
    # for every member of the group.
    clock.now = INTERVAL_MS + 1
    _beat(machine, "b", _topics({"rx-closed"}, asked, "b"))
    assert asked == ["a", "b"]
    assert {m.regex_topics for m in group.members.values()} == {frozenset({"rx-open"})}


def test_a_new_regex_resolves_every_regex_of_the_group_with_the_joiners_principal() -> None:
    machine, _ = _machine()
    _join(machine, "a", "rx-.*", _topics(set()))
    _join(machine, "b", "oth.*", _topics({"rx-closed"}))
    group = machine.groups["g"]
    assert group.resolved_regexes == {
        "rx-.*": frozenset({"rx-open"}),
        "oth.*": frozenset({"other"}),
    }
    assert group.members["a"].regex_topics == {"rx-open"}


def test_a_regex_no_member_subscribes_to_is_forgotten_and_resolved_afresh() -> None:
    """Kafka deletes a resolved regex with its last subscriber: a later member with the
    same regex resolves it again, with its own principal."""
    machine, _ = _machine()
    _join(machine, "a", "rx-.*", _topics(set()))
    _join(machine, "keep", "oth.*", _topics(set()))
    leave = ConsumerHeartbeat("g", "a", -1)
    machine.heartbeat(leave, _partitions, 1, _topics(set()))
    group = machine.groups["g"]
    assert "rx-.*" not in group.resolved_regexes
    _join(machine, "c", "rx-.*", _topics({"rx-closed"}))
    assert group.members["c"].regex_topics == {"rx-open"}
