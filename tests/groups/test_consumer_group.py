"""The KIP-848 consumer group machine: assignors, reconciliation, heartbeats, timers.

Every machine test checks the group's invariants after each step: no partition held by
two members, a target entry per member, static members mapped to themselves."""

from __future__ import annotations

import dataclasses
import itertools
import random

import pytest

from contextplane.coordinators.consumer_group import group_configs
from contextplane.coordinators.consumer_group.assignors import range_assignor, uniform
from contextplane.coordinators.consumer_group.group import ConsumerGroup
from contextplane.coordinators.consumer_group.machine import ConsumerGroupMachine
from contextplane.coordinators.consumer_group.messages import (
    ConsumerGroupConfig,
    ConsumerHeartbeat,
)
from contextplane.coordinators.consumer_group.reconcile import (
    MemberState,
    Reconciliation,
    reconcile,
)
from contextplane.coordinators.consumer_group.regex import RegexTopics
from contextplane.coordinators.consumer_group.views import describe_group
from contextplane.protocol.error_codes import ErrorCode

TP = tuple[str, int]


def _all(topic: str, count: int) -> set[TP]:
    return {(topic, p) for p in range(count)}


# -- assignors --------------------------------------------------------------------------


@pytest.mark.parametrize("assignor", [uniform, range_assignor])
@pytest.mark.parametrize("members", [1, 2, 3, 4, 7])
def test_assignors_give_every_partition_to_one_member_balanced(assignor, members) -> None:
    subs = {f"m{i}": frozenset({"a", "b"}) for i in range(members)}
    counts = {"a": 6, "b": 5}
    result = assignor(subs, counts, {})
    held = list(itertools.chain.from_iterable(result.values()))
    assert sorted(held) == sorted(_all("a", 6) | _all("b", 5))
    sizes = [len(p) for p in result.values()]
    if assignor is uniform:
        assert max(sizes) - min(sizes) <= 1


def test_range_gives_contiguous_ranges_in_member_order() -> None:
    result = range_assignor({"m2": frozenset({"t"}), "m1": frozenset({"t"})}, {"t": 5}, {})
    assert result == {"m1": frozenset(_all("t", 3)), "m2": frozenset({("t", 3), ("t", 4)})}


def test_uniform_is_sticky_a_join_moves_only_what_the_newcomer_needs() -> None:
    subs = {"m1": frozenset({"t"}), "m2": frozenset({"t"})}
    before = uniform(subs, {"t": 6}, {})
    after = uniform({**subs, "m3": frozenset({"t"})}, {"t": 6}, before)
    assert [len(after[m]) for m in ("m1", "m2", "m3")] == [2, 2, 2]
    for member in ("m1", "m2"):
        assert after[member] <= before[member]  # nobody gains at another's expense


def test_uniform_heterogeneous_subscriptions_only_assign_subscribed_topics() -> None:
    subs = {"m1": frozenset({"a"}), "m2": frozenset({"a", "b"}), "m3": frozenset({"b"})}
    result = uniform(subs, {"a": 4, "b": 4}, {})
    assert all(t == "a" for t, _ in result["m1"])
    assert all(t == "b" for t, _ in result["m3"])
    assert sorted(len(p) for p in result.values()) == [2, 3, 3]


def test_uniform_drops_partitions_of_unsubscribed_or_shrunk_topics() -> None:
    current = {"m1": frozenset({("gone", 0), ("t", 9), ("t", 0)})}
    result = uniform({"m1": frozenset({"t"})}, {"t": 2}, current)
    assert result == {"m1": frozenset(_all("t", 2))}


@pytest.mark.parametrize("seed", range(30))
def test_uniform_properties_on_random_groups(seed: int) -> None:
    """Every partition of a subscribed topic goes to exactly one member subscribed to it;
    with identical subscriptions the sizes differ by at most one and every member keeps
    as much of its valid current assignment as its quota allows."""
    rng = random.Random(seed)
    counts = {t: rng.randint(0, 12) for t in ("a", "b", "c")}
    members = [f"m{i}" for i in range(rng.randint(1, 7))]
    homogeneous = rng.random() < 0.5
    shared = frozenset(rng.sample(sorted(counts), rng.randint(1, 3)))
    subs = {
        m: shared if homogeneous else frozenset(rng.sample(sorted(counts), rng.randint(1, 3)))
        for m in members
    }
    everything = [(t, p) for t in sorted(counts) for p in range(counts[t] + 2)]
    current = {m: frozenset(rng.sample(everything, rng.randint(0, 6))) for m in members}
    result = uniform(subs, counts, current)
    wanted = {(t, p) for m in members for t in subs[m] for p in range(counts[t])}
    held = [tp for parts in result.values() for tp in parts]
    assert sorted(held) == sorted(wanted)
    for member, parts in result.items():
        assert all(t in subs[member] for t, _ in parts)
    if homogeneous:
        sizes = [len(p) for p in result.values()]
        assert max(sizes) - min(sizes) <= 1
        quota = len(wanted) // len(members)
        claimed: set[TP] = set()
        for member in sorted(members):
            valid = {tp for tp in current[member] if tp in wanted and tp not in claimed}
            claimed |= valid
            assert len(result[member] & valid) >= min(len(valid), quota)


# -- reconciliation ---------------------------------------------------------------------


def _stable(epoch: int, *assigned: TP) -> Reconciliation:
    return Reconciliation(MemberState.STABLE, epoch, frozenset(assigned), frozenset())


def test_revocation_comes_first_and_keeps_the_epoch() -> None:
    current = _stable(1, ("t", 0), ("t", 1))
    step = reconcile(current, 2, frozenset({("t", 0), ("t", 2)}), None, set())
    assert step.state is MemberState.UNREVOKED_PARTITIONS
    assert step.epoch == 1
    assert step.assigned == {("t", 0)}  # nothing new while revoking
    assert step.revoking == {("t", 1)}
    # Still owned according to the member: nothing moves.
    owned = frozenset({("t", 0), ("t", 1)})
    assert reconcile(step, 2, frozenset({("t", 0), ("t", 2)}), owned, set()) == step
    # Released: the member reaches the target epoch and gets the new partition.
    done = reconcile(step, 2, frozenset({("t", 0), ("t", 2)}), frozenset({("t", 0)}), set())
    assert done == _stable(2, ("t", 0), ("t", 2))


def test_a_partition_still_held_elsewhere_is_not_assigned() -> None:
    step = reconcile(_stable(1), 2, frozenset({("t", 0), ("t", 1)}), frozenset(), {("t", 1)})
    assert step.state is MemberState.UNRELEASED_PARTITIONS
    assert step.epoch == 2
    assert step.assigned == {("t", 0)}
    later = reconcile(step, 2, frozenset({("t", 0), ("t", 1)}), None, set())
    assert later == _stable(2, ("t", 0), ("t", 1))


def test_a_member_that_already_dropped_partitions_skips_revocation() -> None:
    current = _stable(1, ("t", 0), ("t", 1))
    step = reconcile(current, 2, frozenset({("t", 0)}), frozenset({("t", 0)}), set())
    assert step == _stable(2, ("t", 0))


# -- the machine ------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


COUNTS = {"t": 6, "u": 3}


def _partitions(topic: str) -> int:
    return COUNTS.get(topic, 0)


def _join(machine: ConsumerGroupMachine, member: str, topics=("t",), **fields) -> dict:
    request = ConsumerHeartbeat(
        group_id="g",
        member_id=member,
        member_epoch=0,
        rebalance_timeout_ms=fields.pop("rebalance_timeout_ms", 30_000),
        subscribed_topic_names=tuple(topics),
        owned=frozenset(),
        **fields,
    )
    return _checked(machine, request)


def _beat(machine: ConsumerGroupMachine, member: str, epoch: int, owned=None, **fields) -> dict:
    request = ConsumerHeartbeat(
        group_id="g",
        member_id=member,
        member_epoch=epoch,
        owned=None if owned is None else frozenset(owned),
        **fields,
    )
    return _checked(machine, request)


def _checked(machine: ConsumerGroupMachine, request: ConsumerHeartbeat) -> dict:
    response = machine.heartbeat(request, _partitions)
    for group in machine.groups.values():
        assert group.invariants() == []
    return response


def _group(machine: ConsumerGroupMachine) -> ConsumerGroup:
    group = machine.group("g")
    assert group is not None
    return group


# Targets at every change (group.consumer.assignment.interval.ms=0), for the tests that
# are not about batching.
IMMEDIATE = ConsumerGroupConfig(assignment_interval_ms=0)


def test_two_members_split_with_revocation_first() -> None:
    machine = ConsumerGroupMachine(Clock(), IMMEDIATE)
    a = _join(machine, "a")
    # A new group is at epoch 1; the first subscription bumps it (as Kafka 4.4 answers).
    assert (a["member_epoch"], a["assignment"]) == (2, _all("t", 6))
    b = _join(machine, "b")
    assert b["member_epoch"] == 3 and b["assignment"] == frozenset()  # all still with a
    # a is told to give up three partitions, keeping its epoch.
    a = _beat(machine, "a", 2, owned=_all("t", 6))
    assert a["member_epoch"] == 2 and a["assignment"] == _all("t", 3)
    assert _group(machine).state().value == "Reconciling"
    # b asks again before a released them: still nothing (and nothing new to say).
    b = _beat(machine, "b", 3, owned=())
    assert b["assignment"] is None and _group(machine).members["b"].assigned == frozenset()
    # a acknowledges the revocation: it moves to epoch 3; b gets the freed partitions.
    a = _beat(machine, "a", 2, owned=a["assignment"])
    assert (a["member_epoch"], a["assignment"]) == (3, None)
    b = _beat(machine, "b", 3, owned=())
    assert b["assignment"] == {("t", 3), ("t", 4), ("t", 5)}
    assert _group(machine).state().value == "Stable"


def test_targets_are_batched_by_the_assignment_interval() -> None:
    """Kafka 4.3+: a change after a recent target leaves the group Assigning until a
    heartbeat comes after group.consumer.assignment.interval.ms (1 s by default)."""
    clock = Clock()
    machine = ConsumerGroupMachine(clock)
    assert _join(machine, "a")["member_epoch"] == 2  # the first target is immediate
    b = _join(machine, "b")
    group = _group(machine)
    assert (b["member_epoch"], b["assignment"]) == (2, frozenset())
    assert (group.state().value, group.group_epoch, group.assignment_epoch) == ("Assigning", 3, 2)
    a = _beat(machine, "a", 2, owned=_all("t", 6))
    assert a["assignment"] is None and group.state().value == "Assigning"
    clock.now = 1_000
    a = _beat(machine, "a", 2, owned=_all("t", 6))
    assert (a["member_epoch"], a["assignment"]) == (2, _all("t", 3))
    assert (group.state().value, group.assignment_epoch) == ("Reconciling", 3)
    # A leave frees its partitions at once; the new target waits for the interval.
    a = _beat(machine, "a", 2, owned=_all("t", 3))
    b = _beat(machine, "b", 2, owned=())
    assert (b["member_epoch"], b["assignment"]) == (3, {("t", 3), ("t", 4), ("t", 5)})
    assert _beat(machine, "b", -1)["member_epoch"] == -1
    assert (group.state().value, group.group_epoch) == ("Assigning", 4)
    assert _beat(machine, "a", 3, owned=_all("t", 3))["assignment"] is None
    clock.now = 2_000
    a = _beat(machine, "a", 3, owned=_all("t", 3))
    assert (a["member_epoch"], a["assignment"]) == (4, _all("t", 6))


def test_a_groups_own_assignment_interval_overrides_the_brokers() -> None:
    """`consumer.assignment.interval.ms` (a GROUP config): 0 for this group makes every
    change a new target at once, while the broker's interval is 1 s."""
    clock = Clock()
    machine = ConsumerGroupMachine(clock)
    machine.group_configs["g"] = {group_configs.ASSIGNMENT_INTERVAL: 0}
    _join(machine, "a")
    b = _join(machine, "b")
    assert _group(machine).state().value == "Reconciling"  # not Assigning: no wait
    assert b["member_epoch"] == 3
    # Past the broker's 1 s but within the group's 5 s: the next change waits.
    machine.group_configs["g"] = {group_configs.ASSIGNMENT_INTERVAL: 5_000}
    clock.now = 1_000
    c = _join(machine, "c")
    assert _group(machine).state().value == "Assigning"
    clock.now = 5_000
    _beat(machine, "c", c["member_epoch"], owned=())
    assert _group(machine).state().value != "Assigning"


def test_three_members_take_kafkas_partitions() -> None:
    """The uniform assignor's choices for identical subscriptions, as Kafka 4.4 makes them:
    the member that had everything keeps the lowest of its quota, the others fill up in
    member order (b and c join within one assignment interval, as in Kafka's run)."""
    clock = Clock()
    machine = ConsumerGroupMachine(clock)
    _join(machine, "a")
    _join(machine, "b")
    _join(machine, "c")
    clock.now = 1_000
    assert _beat(machine, "a", 2, owned=_all("t", 6))["assignment"] == _all("t", 2)
    target = _group(machine).target
    assert target == {
        "a": frozenset(_all("t", 2)),
        "b": frozenset({("t", 2), ("t", 3)}),
        "c": frozenset({("t", 4), ("t", 5)}),
    }


def test_leave_frees_partitions_at_once_for_the_others() -> None:
    machine = ConsumerGroupMachine(Clock(), IMMEDIATE)
    _join(machine, "a")
    _join(machine, "b")
    a = _beat(machine, "a", 2, owned=_all("t", 6))
    a = _beat(machine, "a", 2, owned=a["assignment"])
    _beat(machine, "b", 3, owned=())
    left = _beat(machine, "b", -1)
    assert left["member_epoch"] == -1 and left["error_code"] == ErrorCode.none
    a = _beat(machine, "a", 3, owned=_all("t", 3))
    assert a["assignment"] == _all("t", 6) and a["member_epoch"] == 4


def test_errors_as_kafka_gives_them() -> None:
    machine = ConsumerGroupMachine(Clock())
    assert _beat(machine, "x", 1)["error_code"] == ErrorCode.group_id_not_found
    _join(machine, "a")
    assert _beat(machine, "x", 1)["error_code"] == ErrorCode.unknown_member_id
    assert _beat(machine, "a", 5)["error_code"] == ErrorCode.fenced_member_epoch
    assert _beat(machine, "a", -3)["error_code"] == ErrorCode.invalid_request
    assert _beat(machine, "", 1)["error_code"] == ErrorCode.invalid_request
    no_timeout = ConsumerHeartbeat("g", "n", 0, subscribed_topic_names=("t",), owned=frozenset())
    assert _checked(machine, no_timeout)["error_code"] == ErrorCode.invalid_request
    owned_on_join = ConsumerHeartbeat(
        "g", "n", 0, rebalance_timeout_ms=1, subscribed_topic_names=("t",),
        owned=frozenset({("t", 0)}),
    )  # fmt: skip
    assert _checked(machine, owned_on_join)["error_code"] == ErrorCode.invalid_request
    unknown = _join(machine, "n", server_assignor="sticky")
    assert unknown["error_code"] == ErrorCode.unsupported_assignor
    regex = ConsumerHeartbeat(
        "g", "n", 0, rebalance_timeout_ms=1, subscribed_topic_regex="t(", owned=frozenset()
    )
    bad = _checked(machine, regex)
    assert bad["error_code"] == ErrorCode.invalid_regular_expression
    assert bad["error_message"] == (
        "SubscribedTopicRegex `t(` is not a valid regular expression: missing ): t(."
    )
    static_leave = _beat(machine, "a", -2)
    assert static_leave["error_code"] == ErrorCode.invalid_request  # -2 needs an instance id


def test_a_refused_join_creates_no_group() -> None:
    machine = ConsumerGroupMachine(Clock(), ConsumerGroupConfig(max_size=0))
    assert _join(machine, "a")["error_code"] == ErrorCode.group_max_size_reached
    assert machine.group("g") is None


def test_lost_response_previous_epoch_is_accepted_with_a_subset() -> None:
    machine = ConsumerGroupMachine(Clock(), IMMEDIATE)
    _join(machine, "a")
    _join(machine, "b")
    _beat(machine, "a", 2, owned=_all("t", 6))
    a = _beat(machine, "a", 2, owned=_all("t", 3))
    assert a["member_epoch"] == 3
    # The response carrying epoch 3 was lost: a heartbeat at epoch 2 with a subset is fine.
    again = _beat(machine, "a", 2, owned=_all("t", 3))
    assert again["error_code"] == ErrorCode.none and again["member_epoch"] == 3
    # At epoch 2 but claiming partitions it no longer has: fenced.
    fenced = _beat(machine, "a", 2, owned=_all("t", 6))
    assert fenced["error_code"] == ErrorCode.fenced_member_epoch
    # Listing a topic it holds nothing of is not a subset either (Kafka compares topic by
    # topic, so an empty entry for another topic fences too).
    other_topic = ConsumerHeartbeat(
        "g", "a", 2, owned=_all("t", 3), owned_topics=frozenset({"t", "u"})
    )
    assert _checked(machine, other_topic)["error_code"] == ErrorCode.fenced_member_epoch


def test_session_expiry_removes_the_member_and_rebalances() -> None:
    clock = Clock()
    config = ConsumerGroupConfig(session_timeout_ms=45_000, assignment_interval_ms=0)
    machine = ConsumerGroupMachine(clock, config)
    _join(machine, "a")
    _join(machine, "b")
    clock.now = 30_000
    a = _beat(machine, "a", 2, owned=_all("t", 6))
    a = _beat(machine, "a", 2, owned=a["assignment"])
    clock.now = 46_000  # b's session (from t=0) is over, a's (t=30 s) is not
    machine.fire_due_timers()
    assert set(_group(machine).members) == {"a"}
    a = _beat(machine, "a", a["member_epoch"], owned=a["assignment"])
    assert a["assignment"] == _all("t", 6)


def test_a_member_that_does_not_revoke_in_time_is_removed() -> None:
    clock = Clock()
    machine = ConsumerGroupMachine(clock, IMMEDIATE)
    _join(machine, "a", rebalance_timeout_ms=10_000)
    _join(machine, "b")
    _beat(machine, "a", 2, owned=_all("t", 6))  # told to revoke: deadline in 10 s
    clock.now = 5_000
    _beat(machine, "a", 2, owned=_all("t", 6))  # still holding: the deadline stands
    _beat(machine, "b", 3, owned=())
    clock.now = 10_001
    machine.fire_due_timers()
    assert set(_group(machine).members) == {"b"}
    b = _beat(machine, "b", _group(machine).members["b"].epoch, owned=())
    assert b["assignment"] == _all("t", 6)


def test_static_member_leaves_with_minus_two_and_comes_back_without_a_rebalance() -> None:
    machine = ConsumerGroupMachine(Clock(), IMMEDIATE)
    _join(machine, "a", instance_id="i1")
    _join(machine, "b")
    a = _beat(machine, "a", 2, owned=_all("t", 6), instance_id="i1")
    a = _beat(machine, "a", 2, owned=a["assignment"], instance_id="i1")
    a = {"assignment": _group(machine).members["a"].assigned}
    epoch = _group(machine).group_epoch
    left = _beat(machine, "a", -2, instance_id="i1")
    assert left["member_epoch"] == -2
    busy = _join(machine, "a2", instance_id="i1")
    assert busy["error_code"] == ErrorCode.none
    assert busy["assignment"] == a["assignment"]  # its partitions back, at once
    assert _group(machine).group_epoch == epoch  # no rebalance
    clash = _join(machine, "a3", instance_id="i1")
    assert clash["error_code"] == ErrorCode.unreleased_instance_id


def test_offset_commit_and_fetch_check_the_member_epoch() -> None:
    machine = ConsumerGroupMachine(Clock())
    _join(machine, "a")
    group = _group(machine)
    assert machine.validate_offset_commit(group, "a", None, 2, 9) is None
    assert machine.validate_offset_commit(group, "a", None, 0, 9) == ErrorCode.stale_member_epoch
    assert machine.validate_offset_commit(group, "x", None, 2, 9) == ErrorCode.unknown_member_id
    assert machine.validate_offset_commit(group, "a", None, 2, 8) == ErrorCode.unsupported_version
    # An admin commit (-1, no member) only while the group is empty.
    assert machine.validate_offset_commit(group, "", None, -1, 9) == ErrorCode.unknown_member_id
    assert machine.validate_offset_fetch(group, None, -1) is None
    assert machine.validate_offset_fetch(group, "x", -1) is None
    assert machine.validate_offset_fetch(group, "x", 2) == ErrorCode.unknown_member_id
    assert machine.validate_offset_fetch(group, "a", 0) == ErrorCode.stale_member_epoch
    _beat(machine, "a", -1)
    assert machine.validate_offset_commit(group, "", None, -1, 9) is None


@pytest.mark.parametrize("seed", range(20))
def test_random_membership_never_assigns_a_partition_twice(seed: int) -> None:
    """Members join, heartbeat (acknowledging revocations or not), leave and expire at
    random; after every step no partition is held by two members, and once everyone
    heartbeats honestly the group becomes Stable with every partition assigned."""
    rng = random.Random(seed)
    clock = Clock()
    machine = ConsumerGroupMachine(clock)
    epochs: dict[str, int] = {}
    owned: dict[str, frozenset[TP]] = {}
    names = [f"m{i}" for i in range(5)]
    for _ in range(200):
        clock.now += rng.randint(0, 3_000)
        machine.fire_due_timers()
        group = machine.group("g")
        for gone in [m for m in epochs if group is None or m not in group.members]:
            epochs.pop(gone)
            owned.pop(gone)
        member = rng.choice(names)
        topics = rng.choice([("t",), ("t", "u"), ("u",)])
        if member not in epochs:
            response = _join(machine, member, topics)
        elif rng.random() < 0.1:
            _beat(machine, member, -1)
            epochs.pop(member)
            owned.pop(member)
            continue
        else:
            honest = rng.random() < 0.7
            response = _beat(
                machine, member, epochs[member], owned=owned[member] if honest else None
            )
        assert response["error_code"] == ErrorCode.none, response
        epochs[member] = response["member_epoch"]
        if response["assignment"] is not None:
            owned[member] = response["assignment"]
    # Everybody heartbeats honestly until nothing moves.
    for _ in range(10):
        clock.now += 1_000  # past the assignment interval
        for member in list(epochs):
            response = _beat(machine, member, epochs[member], owned=owned[member])
            epochs[member] = response["member_epoch"]
            if response["assignment"] is not None:
                owned[member] = response["assignment"]
    group = machine.group("g")
    if group is not None and group.members:
        assert group.state().value == "Stable"
        wanted = set().union(*(_all(t, COUNTS[t]) for t in group.subscribed_topics()))
        held = [tp for m in group.members.values() for tp in m.assigned]
        assert sorted(held) == sorted(wanted)


def test_partition_counts_are_read_again_when_the_topics_version_changes() -> None:
    """A heartbeat looks the subscribed topics up only when a subscription or the topic
    table's version changed (a member may subscribe to 100,000 names)."""
    machine = ConsumerGroupMachine(Clock(), IMMEDIATE)
    counts = {"t": 2}
    looked_up: list[str] = []

    def partitions(topic: str) -> int:
        looked_up.append(topic)
        return counts.get(topic, 0)

    names = ("t", *(f"absent-{i}" for i in range(1_000)))
    join = ConsumerHeartbeat("g", "a", 0, rebalance_timeout_ms=30_000, owned=frozenset())
    joined = machine.heartbeat(
        dataclasses.replace(join, subscribed_topic_names=names), partitions, topics_version=1
    )
    assert (joined["member_epoch"], joined["assignment"]) == (2, _all("t", 2))
    assert len(looked_up) == len(names)
    assert _group(machine).subscription_metadata == {"t": 2}  # only the topics that exist

    counts["t"] = 4  # the table changes, and with it its version
    looked_up.clear()
    beat = ConsumerHeartbeat("g", "a", 2, owned=frozenset(_all("t", 2)))
    assert machine.heartbeat(beat, partitions, topics_version=1)["assignment"] is None
    assert looked_up == []
    grown = machine.heartbeat(beat, partitions, topics_version=2)
    assert (grown["member_epoch"], grown["assignment"]) == (3, _all("t", 4))
    assert len(looked_up) == len(names)
    assert _group(machine).invariants() == []


# -- regex subscriptions (RE2) ----------------------------------------------------------


def _regex_join(machine: ConsumerGroupMachine, member: str, pattern: str, **kw) -> dict:
    request = ConsumerHeartbeat(
        group_id="g",
        member_id=member,
        member_epoch=0,
        rebalance_timeout_ms=30_000,
        subscribed_topic_regex=pattern,
        owned=frozenset(),
    )
    return machine.heartbeat(request, **kw)


def test_a_regex_matches_whole_names_and_follows_the_topic_table() -> None:
    """RE2 semantics, whole-name matches (Java's matches()), evaluated again when the
    topic table's version changes and never at a heartbeat that changes nothing."""
    counts = {"orders-1": 2, "orders-eu": 1, "xorders-1": 4, "orders": 1}
    names_listed = []

    def names() -> list[str]:
        names_listed.append(1)
        return list(counts)

    machine = ConsumerGroupMachine(Clock(), IMMEDIATE)
    kw = {
        "partitions": lambda t: counts.get(t, 0),
        "topics_version": 1,
        "regex_topics": RegexTopics(names),
    }
    joined = _regex_join(machine, "a", "orders-.*", **kw)
    assert joined["error_code"] == ErrorCode.none
    assert joined["assignment"] == {("orders-1", 0), ("orders-1", 1), ("orders-eu", 0)}
    member = _group(machine).members["a"]
    assert member.regex_topics == {"orders-1", "orders-eu"}
    listed = len(names_listed)
    epoch = joined["member_epoch"]
    steady = ConsumerHeartbeat("g", "a", epoch, owned=frozenset(joined["assignment"]))
    for _ in range(5):
        assert machine.heartbeat(steady, **kw)["member_epoch"] == epoch
    assert len(names_listed) == listed  # not evaluated at steady heartbeats
    # A topic created: the next heartbeat (a new table version) picks it up.
    counts["orders-new"] = 1
    kw["topics_version"] = 2
    grown = machine.heartbeat(steady, **kw)
    assert grown["member_epoch"] > epoch
    assert ("orders-new", 0) in grown["assignment"]
    # Deleted: dropped from the subscription and the assignment.
    del counts["orders-1"]
    kw["topics_version"] = 3
    beat = ConsumerHeartbeat("g", "a", grown["member_epoch"], owned=frozenset(grown["assignment"]))
    shrunk = machine.heartbeat(beat, **kw)
    assert shrunk["assignment"] == {("orders-eu", 0), ("orders-new", 0)}
    described = describe_group(_group(machine))["members"][0]
    assert described["subscribed_topic_regex"] == "orders-.*"


def test_regex_matches_are_cut_to_what_the_heartbeating_principal_may_describe() -> None:
    """Kafka resolves a group's regexes with the context of the member whose heartbeat
    triggered it and drops the topics it may not DESCRIBE; each pattern is authorized
    once per resolution, however many members share it (one result per regex per
    group)."""
    counts = {"__consumer_offsets": 3, "orders-1": 1, "orders-secret": 1}
    asked: list[frozenset[str]] = []
    hidden = {"orders-secret"}

    def describable(found: frozenset[str]) -> frozenset[str]:
        asked.append(found)
        return frozenset(t for t in found if t not in hidden)

    machine = ConsumerGroupMachine(Clock(), IMMEDIATE)
    kw = {
        "partitions": lambda t: counts.get(t, 0),
        "topics_version": 1,
        "regex_topics": RegexTopics(lambda: counts, describable),
    }
    _regex_join(machine, "a", ".*", **kw)
    assert _regex_join(machine, "b", ".*", **kw)["error_code"] == ErrorCode.none
    # b's regex is already resolved in the group: it takes that result, asks nothing.
    assert asked == [frozenset(counts)]
    group = _group(machine)
    assert {m.regex_topics for m in group.members.values()} == {
        frozenset({"__consumer_offsets", "orders-1"})
    }
    # The topic table moves: every member's regex again, the shared pattern asked once,
    # with the view of the member heartbeating now.
    asked.clear()
    hidden = set()
    kw["topics_version"] = 2
    epoch = group.members["a"].epoch
    machine.heartbeat(ConsumerHeartbeat("g", "a", epoch, owned=None), **kw)
    assert asked == [frozenset(counts)]
    assert all(m.regex_topics == set(counts) for m in group.members.values())


def test_regex_patterns_are_bounded_and_checked_by_re2() -> None:
    machine = ConsumerGroupMachine(Clock(), IMMEDIATE)
    too_long = _regex_join(machine, "a", "a" * 1025, partitions=_partitions)
    assert too_long["error_code"] == ErrorCode.invalid_regular_expression
    assert "longer than 1024 bytes" in too_long["error_message"]
    # Back-references and lookarounds are not RE2: refused, as RE2/J refuses them.
    for pattern in (r"(a)\1", "(?=a)b"):
        refused = _regex_join(machine, "a", pattern, partitions=_partitions)
        assert refused["error_code"] == ErrorCode.invalid_regular_expression, pattern
    # A pattern that backtracking engines take exponential time on is linear here.
    ok = _regex_join(
        machine,
        "a",
        "(a+)+$",
        partitions=_partitions,
        topics_version=1,
        regex_topics=RegexTopics(lambda: ["a" * 5000 + "b"]),
    )
    assert ok["error_code"] == ErrorCode.none
    # A pattern over RE2's memory bound is refused, not compiled unbounded.
    huge = _regex_join(machine, "b", "((a{1,100}){1,100}){1,100}", partitions=_partitions)
    assert huge["error_code"] == ErrorCode.invalid_regular_expression
    assert machine.group("g") is not None and set(_group(machine).members) == {"a"}
