"""`ConsumerGroupMachine`: every KIP-848 consumer group of one coordinator, as one pure
state machine (Kafka's `GroupMetadataManager.consumerGroupHeartbeat` and friends).

Rules of this file:

* As the classic machine: no clock (time is the injected `now_ms`), no asyncio, timers
  as data that the owner fires once `next_deadline()` has passed; every method runs to
  completion and returns the response.
* A heartbeat is one step: validate (messages.py), find or create the group and the
  member, fence stale epochs and update the member (heartbeat_member.py), bump the group
  epoch if what the assignor sees changed, compute the target if the group epoch is
  ahead of it and the assignment interval allows, reconcile the member (reconcile.py),
  restart its session.
* Regex subscriptions (regex.py) are resolved as Kafka resolves them: one result per
  regex per group, every regex of the group at once, with the view of the member whose
  heartbeat triggered it (its matches cut to what that principal may describe), when a
  regex is new to the group, the topic table's version moved, or
  `regex_refresh_interval_ms` passed since the last resolution; never at a steady
  heartbeat before that. A member's regex topics count as subscribed topics. Large
  resolutions run off the loop (regex_resolution.py): the owner takes them with
  `take_regex_resolutions`, runs their `match` in a worker thread and hands the result
  to `regex_resolved`, which applies it if it is still current.
* A member leaves (epoch -1), expires (session timeout) or fails to revoke in time
  (rebalance timeout) the same way: it is removed, the partitions it held are free at
  once, the group epoch is bumped, and a later heartbeat computes the new target.
* Errors are Kafka's, with Kafka's messages: a request the machine refuses changes
  nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from contextplane.coordinators.consumer_group.assignors import ASSIGNORS, TopicPartition
from contextplane.coordinators.consumer_group.classic_path import ClassicPath
from contextplane.coordinators.consumer_group.group import (
    CONSUMER_GROUP_TYPE,
    LEAVE_GROUP_MEMBER_EPOCH,
    LEAVE_GROUP_STATIC_MEMBER_EPOCH,
    ConsumerGroup,
    ConsumerMember,
)
from contextplane.coordinators.consumer_group.group_configs import (
    ASSIGNMENT_INTERVAL,
    HEARTBEAT_INTERVAL,
    SESSION_TIMEOUT,
)
from contextplane.coordinators.consumer_group.heartbeat_member import (
    apply_request,
    heartbeat_member,
    leaving_member,
)
from contextplane.coordinators.consumer_group.messages import (
    ConsumerGroupConfig,
    ConsumerHeartbeat,
    HeartbeatRefused,
    heartbeat_error,
    validate_heartbeat,
)
from contextplane.coordinators.consumer_group.reconcile import MemberState, reconcile
from contextplane.coordinators.consumer_group.regex import (
    NO_TOPICS,
    InvalidPattern,
    RegexMatches,
    RegexTopics,
)
from contextplane.coordinators.consumer_group.regex_resolution import (
    RegexResolution,
    RegexResolutions,
)
from contextplane.coordinators.consumer_group.timers import (
    ClassicDeadline,
    ConsumerTimer,
    RevocationDeadline,
    SessionExpiry,
)
from contextplane.coordinators.group_state.timers import Timers
from contextplane.protocol.error_codes import ErrorCode

# Bound on timers run by one `fire_due_timers` call.
_TIMER_ACTIONS_PER_CALL_MAX = 100_000

PartitionCounts = Callable[[str], int]


class ConsumerGroupMachine:
    def __init__(
        self, now_ms: Callable[[], int], config: ConsumerGroupConfig | None = None
    ) -> None:
        self.now_ms = now_ms
        self.config = config or ConsumerGroupConfig()
        self.groups: dict[str, ConsumerGroup] = {}
        self.timers: Timers[ConsumerTimer] = Timers()
        self.regexes = RegexMatches()
        self.resolutions = RegexResolutions(self.regexes)
        # Per-group configs (group_configs.py): group id -> name -> value.
        self.group_configs: dict[str, dict[str, int]] = {}
        # Groups changed by timers since the owner last took them (to be saved).
        self.changed_by_timers: set[str] = set()
        # Groups whose last consumer-protocol member left while classic members remain:
        # the owner may turn them back into classic groups (`take_downgrades`).
        self.downgrades_due: set[str] = set()
        # JoinGroup / SyncGroup / Heartbeat / LeaveGroup of classic members.
        self.classic = ClassicPath(self)

    # -- timers -------------------------------------------------------------------------

    def next_deadline(self) -> int | None:
        return self.timers.next_deadline()

    def fire_due_timers(self) -> int:
        fired = 0
        while fired < _TIMER_ACTIONS_PER_CALL_MAX:
            timer = self.timers.pop_due(self.now_ms())
            if timer is None:
                break
            group = self.groups.get(timer.group_id)
            if group is not None and timer.member_id in group.members:
                # Session expired, or partitions not revoked within the rebalance timeout:
                # the member is fenced, as Kafka's timers do.
                self._remove_member(group, group.members[timer.member_id])
                self.changed_by_timers.add(group.group_id)
            fired += 1
        return fired

    def session_timeout_ms(self, group_id: str) -> int:
        overrides = self.group_configs.get(group_id)
        if overrides is None:
            return self.config.session_timeout_ms
        return overrides.get(SESSION_TIMEOUT, self.config.session_timeout_ms)

    def heartbeat_interval_ms(self, group_id: str) -> int:
        overrides = self.group_configs.get(group_id)
        if overrides is None:
            return self.config.heartbeat_interval_ms
        return overrides.get(HEARTBEAT_INTERVAL, self.config.heartbeat_interval_ms)

    def assignment_interval_ms(self, group_id: str) -> int:
        overrides = self.group_configs.get(group_id)
        if overrides is None:
            return self.config.assignment_interval_ms
        return overrides.get(ASSIGNMENT_INTERVAL, self.config.assignment_interval_ms)

    def member_session_ms(self, group_id: str, member: ConsumerMember) -> int:
        """A classic member's session is the one it joined with, as in Kafka."""
        if member.classic is not None:
            return member.classic.session_timeout_ms
        return self.session_timeout_ms(group_id)

    def take_downgrades(self) -> set[str]:
        due, self.downgrades_due = self.downgrades_due, set()
        return due

    def _schedule(self, timer: ConsumerTimer, delay_ms: int) -> None:
        self.timers.schedule(timer.key, self.now_ms() + max(0, delay_ms), timer)

    # -- the heartbeat ------------------------------------------------------------------

    def heartbeat(
        self,
        request: ConsumerHeartbeat,
        partitions: PartitionCounts,
        topics_version: int | None = None,
        regex_topics: RegexTopics = NO_TOPICS,
    ) -> dict[str, Any]:
        """The response's field values (assignment as partitions by topic name, or None).
        `partitions` gives a topic's partition count (0 if it does not exist);
        `topics_version` changes whenever a count or a name may have (None: it is
        unknown); `regex_topics` the topics a regex may match and the ones of them the
        principal may describe."""
        existed = request.group_id in self.groups
        try:
            validate_heartbeat(request, self.config.assignors)
            if request.subscribed_topic_regex:  # an empty regex subscribes to nothing
                try:
                    self.regexes.check(request.subscribed_topic_regex)
                except InvalidPattern as exc:
                    raise HeartbeatRefused(ErrorCode.invalid_regular_expression, str(exc)) from None
            if request.member_epoch in (LEAVE_GROUP_MEMBER_EPOCH, LEAVE_GROUP_STATIC_MEMBER_EPOCH):
                return self._leave(request, partitions)
            return self._heartbeat(request, partitions, topics_version, regex_topics)
        except HeartbeatRefused as refused:
            group = self.groups.get(request.group_id)
            if not existed and group is not None and not group.members:
                del self.groups[request.group_id]  # a refused join creates no group
            return heartbeat_error(refused.code, refused.message)

    def _group(self, group_id: str, create: bool) -> ConsumerGroup:
        group = self.groups.get(group_id)
        if group is None:
            if not create:
                raise HeartbeatRefused(ErrorCode.group_id_not_found, f"Group {group_id} not found.")
            group = ConsumerGroup(group_id, assignor_name=self.config.assignors[0])
            self.groups[group_id] = group
        return group

    def _heartbeat(
        self,
        request: ConsumerHeartbeat,
        partitions: PartitionCounts,
        topics_version: int | None,
        regex_topics: RegexTopics,
    ) -> dict[str, Any]:
        joining = request.member_epoch == 0
        group = self._group(request.group_id, create=joining)
        member, is_new, replaced = heartbeat_member(group, request)
        if is_new and replaced is None and len(group.members) >= self.config.max_size:
            raise HeartbeatRefused(
                ErrorCode.group_max_size_reached,
                f"The consumer group has reached its maximum capacity of "
                f"{self.config.max_size} members.",
            )
        before = member.assigned
        bump = False
        if is_new:
            group.members[member.member_id] = member
        if replaced is not None:
            # A static member back under a new member id takes over its predecessor's
            # place and target: no rebalance.
            group.target[member.member_id] = group.target.pop(replaced.member_id, frozenset())
            self._drop(group, replaced)
        bump |= apply_request(member, request)
        if member.instance_id is not None:
            group.static_members[member.instance_id] = member.member_id
        self._advance(group, member, bump, request.owned, partitions, topics_version, regex_topics)
        self._schedule(
            SessionExpiry(group.group_id, member.member_id),
            self.member_session_ms(group.group_id, member),
        )
        # Kafka sends the assignment on a join, when it changed, or when the member's view
        # of what it owns differs from it.
        send_assignment = (
            joining
            or member.assigned != before
            or (request.owned is not None and request.owned != member.assigned)
        )
        return {
            "error_code": ErrorCode.none,
            "error_message": None,
            "member_id": member.member_id,
            "member_epoch": member.epoch,
            "heartbeat_interval_ms": self.heartbeat_interval_ms(group.group_id),
            "assignment": member.assigned if send_assignment else None,
        }

    def _advance(
        self,
        group: ConsumerGroup,
        member: ConsumerMember,
        bump: bool,
        owned: frozenset[TopicPartition] | None,
        partitions: PartitionCounts,
        topics_version: int | None,
        regex_topics: RegexTopics,
    ) -> None:
        """After a member's request changed it (`bump`: what the assignor sees): the group
        epoch, the target if due, and the member's reconciliation with what it `owned`."""
        # Looked up again only when the subscriptions or the topics changed: it costs a
        # lookup per name the group subscribes to, and a member may name 100,000.
        topics_changed = topics_version is None or topics_version != group.metadata_topics_version
        if bump or topics_changed or self._regex_refresh_due(group):
            # Regexes are resolved again when the topics changed, a regex is new to the
            # group, or the refresh interval passed: never at a steady heartbeat.
            group.forget_unused_regexes()
            self._resolve_regexes(group, topics_changed, topics_version, regex_topics, partitions)
            bump |= group.members_take_resolved_regexes()
            # The subscribed topics that exist (a topic has at least one partition).
            metadata = {t: n for t in group.subscribed_topics() if (n := partitions(t))}
            group.metadata_topics_version = topics_version
            if metadata != group.subscription_metadata:
                group.subscription_metadata = metadata
                bump = True
        if bump:
            group.group_epoch += 1
        if group.group_epoch > group.assignment_epoch and self._assignment_due(group):
            self._new_target(group)
        current = member.reconciliation()
        step = reconcile(
            current,
            group.assignment_epoch,
            group.target.get(member.member_id, frozenset()),
            owned,
            group.held_by_others(member.member_id),
        )
        was_revoking = member.state is MemberState.UNREVOKED_PARTITIONS
        member.apply(step, recomputed=step is not current)
        revocation = RevocationDeadline(group.group_id, member.member_id)
        # A classic member is told to revoke at its next Heartbeat and bounded by its join
        # timer instead (classic_path.py).
        if member.state is MemberState.UNREVOKED_PARTITIONS and member.classic is None:
            if not was_revoking:
                self._schedule(revocation, member.rebalance_timeout_ms)
        else:
            self.timers.cancel(revocation.key)

    def _regex_refresh_due(self, group: ConsumerGroup) -> bool:
        """Kafka's periodic refresh: strictly after group.consumer.regex.refresh.interval.ms
        (so a topic that became DESCRIBE-able is picked up without a topic change)."""
        if not group.resolved_regexes:
            return False
        last = group.regexes_resolved_ms
        return last is None or self.now_ms() > last + self.config.regex_refresh_interval_ms

    def _resolve_regexes(
        self,
        group: ConsumerGroup,
        topics_changed: bool,
        topics_version: int | None,
        topics: RegexTopics,
        partitions: PartitionCounts,
    ) -> None:
        """Kafka's maybeUpdateRegularExpressions: when the group has a regex not resolved
        yet, the topics changed or the refresh is due, every regex of the group is
        resolved once with the heartbeating member's view (one match pass per pattern
        and topics version, one authorizer call per pattern): here if the work is small,
        else off the loop, the heartbeat answering from the current results meanwhile."""
        regexes = group.subscribed_regexes()
        if not regexes or not (
            topics_changed
            or regexes != group.resolved_regexes.keys()
            or self._regex_refresh_due(group)
        ):
            return
        resolution = RegexResolution(
            group, tuple(sorted(regexes)), topics_version, topics, partitions, self.now_ms()
        )
        self.resolutions.prepare(resolution)
        if not self.resolutions.inline(resolution):
            self.resolutions.want(resolution)
            return
        found = resolution.match()
        self.resolutions.matched(resolution, found)
        group.resolved_regexes = {p: topics.describable(found[p]) for p in resolution.patterns}
        group.regexes_resolved_ms = resolution.requested_ms

    def take_regex_resolutions(self) -> list[RegexResolution]:
        """Resolutions to run off the loop (`RegexResolution.match`), then hand to
        `regex_resolved` with their matches cut to what the view may describe."""
        return self.resolutions.take_due()

    def regex_resolved(
        self, resolution: RegexResolution, describable: dict[str, frozenset[str]]
    ) -> bool:
        """Kafka's handleRegularExpressionsResult, in one step: the result becomes the
        group's if it is still current (else it is dropped: the one waiting, or the next
        heartbeat, resolves again); the members take it, and if their topics changed,
        the group epoch is bumped (the next heartbeat computes the target). True if the
        group changed (to be saved)."""
        if not self.resolutions.finished(resolution):
            return False
        group = self.groups.get(resolution.group_id)
        if group is not resolution.group:
            return False
        if not resolution.current(group):
            if not self.resolutions.waiting(group.group_id):
                group.regexes_resolved_ms = None  # the next heartbeat resolves again
            return False
        group.resolved_regexes = {p: describable[p] for p in sorted(group.subscribed_regexes())}
        group.regexes_resolved_ms = resolution.requested_ms
        if group.members_take_resolved_regexes():
            # The topic table is the one the metadata was read at (current): only the
            # topics subscribed or unsubscribed since are looked at, in Python.
            subscribed = group.subscribed_topics()
            metadata = dict(group.subscription_metadata)
            for topic in metadata.keys() - subscribed:
                del metadata[topic]
            for topic in subscribed - metadata.keys():
                if count := resolution.partitions(topic):
                    metadata[topic] = count
            group.subscription_metadata = metadata
            group.group_epoch += 1
        return True

    def _assignment_due(self, group: ConsumerGroup) -> bool:
        """Kafka 4.3+ batches changes: a new target at most once per assignment interval
        (the group is Assigning meanwhile), computed by the next heartbeat after it."""
        last = group.last_assignment_ms
        interval = self.assignment_interval_ms(group.group_id)
        return last is None or self.now_ms() - last >= interval

    def _new_target(self, group: ConsumerGroup) -> None:
        group.last_assignment_ms = self.now_ms()
        group.assignor_name = self._preferred_assignor(group)
        assignor = ASSIGNORS[group.assignor_name]
        subscriptions = {m.member_id: m.topics() for m in group.members.values()}
        counts = group.subscription_metadata
        group.target = assignor(subscriptions, counts, group.target)
        group.assignment_epoch = group.group_epoch

    def _preferred_assignor(self, group: ConsumerGroup) -> str:
        """The assignor most members ask for (ties: the configured order); the default
        (the first configured) when none asks."""
        votes = Counter(m.server_assignor for m in group.members.values() if m.server_assignor)
        if not votes:
            return self.config.assignors[0]
        order = {name: i for i, name in enumerate(self.config.assignors)}
        return min(votes, key=lambda name: (-votes[name], order.get(name, len(order))))

    # -- leaving ------------------------------------------------------------------------

    def _leave(self, request: ConsumerHeartbeat, partitions: PartitionCounts) -> dict[str, Any]:
        group = self._group(request.group_id, create=False)
        member = leaving_member(group, request)
        if request.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH:
            # It keeps its place and partitions for one session timeout, so a restart
            # under the same instance id takes them back without a rebalance.
            member.previous_epoch = member.epoch
            member.epoch = LEAVE_GROUP_STATIC_MEMBER_EPOCH
            self.timers.cancel(RevocationDeadline(group.group_id, member.member_id).key)
            self._schedule(
                SessionExpiry(group.group_id, member.member_id),
                self.session_timeout_ms(group.group_id),
            )
        else:
            self._remove_member(group, member)
        return {
            "error_code": ErrorCode.none,
            "error_message": None,
            "member_id": request.member_id,
            "member_epoch": request.member_epoch,
            "heartbeat_interval_ms": 0,
            "assignment": None,
        }

    def _drop(self, group: ConsumerGroup, member: ConsumerMember) -> None:
        group.members.pop(member.member_id, None)
        group.forget_unused_regexes()
        group.target.pop(member.member_id, None)
        if (
            member.instance_id is not None
            and group.static_members.get(member.instance_id) == member.member_id
        ):
            del group.static_members[member.instance_id]
        for timer in (
            SessionExpiry(group.group_id, member.member_id),
            RevocationDeadline(group.group_id, member.member_id),
            ClassicDeadline(group.group_id, member.member_id, "join"),
            ClassicDeadline(group.group_id, member.member_id, "sync"),
        ):
            self.timers.cancel(timer.key)

    def _remove_member(self, group: ConsumerGroup, member: ConsumerMember) -> None:
        """The member is gone: what it held is free now; the others get a new target (at
        a later heartbeat, as the assignment interval allows)."""
        self._drop(group, member)
        if member.classic is None and group.all_classic_except(set()):
            self.downgrades_due.add(group.group_id)
        topics = group.subscribed_topics()
        group.subscription_metadata = {
            t: n for t, n in group.subscription_metadata.items() if t in topics
        }
        group.group_epoch += 1

    # -- groups -------------------------------------------------------------------------

    def load_group(self, group: ConsumerGroup) -> None:
        """A group read back from the store: its members' sessions start now (Kafka
        restarts them on load too), and a member that was revoking gets its rebalance
        timeout again."""
        self.groups[group.group_id] = group
        self.resolutions.forget(group.group_id)  # one for a group it replaces is dropped
        for member in group.members.values():
            self._schedule(
                SessionExpiry(group.group_id, member.member_id),
                self.member_session_ms(group.group_id, member),
            )
            if member.state is MemberState.UNREVOKED_PARTITIONS:
                self._schedule(
                    RevocationDeadline(group.group_id, member.member_id),
                    member.rebalance_timeout_ms,
                )

    def adopt(self, group: ConsumerGroup) -> None:
        """A classic group converted to this protocol (migration.py): its members are
        classic ones, each with its own session."""
        self.load_group(group)

    def group(self, group_id: str) -> ConsumerGroup | None:
        return self.groups.get(group_id)

    def remove_group(self, group_id: str) -> None:
        self.resolutions.forget(group_id)
        group = self.groups.pop(group_id, None)
        if group is None:
            return
        for member in list(group.members.values()):
            self._drop(group, member)

    def shutdown(self) -> None:
        self.groups.clear()
        self.resolutions.clear()  # the owner cancelled the ones in flight
        self.timers = Timers()

    def removable_empty_groups(self) -> list[str]:
        return [g.group_id for g in self.groups.values() if not g.members]

    def list_groups(
        self, states_filter: Iterable[str] = (), types_filter: Iterable[str] = ()
    ) -> list[dict[str, Any]]:
        states = {s.strip().lower() for s in states_filter}
        types = {t.strip().lower() for t in types_filter}
        if types and CONSUMER_GROUP_TYPE not in types:
            return []
        listed = []
        for group in self.groups.values():
            state = group.state().value
            if states and state.lower() not in states:
                continue
            listed.append(
                {
                    "group_id": group.group_id,
                    "protocol_type": CONSUMER_GROUP_TYPE,
                    "group_state": state,
                    "group_type": CONSUMER_GROUP_TYPE,
                }
            )
        return listed

    # -- offsets ------------------------------------------------------------------------

    def validate_offset_commit(
        self,
        group: ConsumerGroup,
        member_id: str,
        instance_id: str | None,
        member_epoch: int,
        api_version: int,
        transactional: bool = False,
    ) -> ErrorCode | None:
        """Kafka's ConsumerGroup.validateOffsetCommit: None if the commit may proceed."""
        if member_epoch < 0 and not group.members:
            return None  # an admin client or a consumer without group management
        if transactional and member_epoch < 0 and not member_id and instance_id is None:
            return None
        member = group.members.get(member_id)
        if member is None:
            return ErrorCode.unknown_member_id
        if member.classic is not None:
            # A classic member commits with its generation (= its member epoch) at any
            # version, and a stale one is told ILLEGAL_GENERATION, as Kafka does.
            return None if member_epoch == member.epoch else ErrorCode.illegal_generation
        if not transactional and api_version < 9:
            return ErrorCode.unsupported_version
        if member_epoch != member.epoch:
            return ErrorCode.stale_member_epoch
        return None

    def validate_offset_fetch(
        self, group: ConsumerGroup, member_id: str | None, member_epoch: int
    ) -> ErrorCode | None:
        """Kafka's ConsumerGroup.validateOffsetFetch (OffsetFetch v9+ names the member):
        epoch -1 is an admin client's or a fetch outside group management, allowed."""
        if member_epoch == -1:
            return None
        member = group.members.get(member_id or "")
        if member is None:
            return ErrorCode.unknown_member_id
        if member_epoch != member.epoch:
            return ErrorCode.stale_member_epoch
        return None
