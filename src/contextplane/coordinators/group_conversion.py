"""A group id changing protocol: Kafka's online upgrade of a classic group to a KIP-848
consumer group when a consumer-protocol member joins it, and the downgrade back once the
last consumer-protocol member left a group of classic members. Either way the group's
consumer group rows and its classic group row are written in one store transaction, so a
restart finds one group."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from contextplane.coordinators.classic_stored import ClassicGroupSaver
from contextplane.coordinators.consumer_group.machine import ConsumerGroupMachine
from contextplane.coordinators.consumer_group.messages import (
    ConsumerHeartbeat,
    HeartbeatRefused,
    heartbeat_error,
    validate_heartbeat,
)
from contextplane.coordinators.consumer_group.migration import (
    UpgradeRefused,
    from_classic_group,
    to_classic_group,
    upgrade_refusal,
)
from contextplane.coordinators.consumer_group_saver import ConsumerGroupSaver
from contextplane.coordinators.group_state import Group, GroupStateMachine
from contextplane.coordinators.group_state.states import GroupState
from contextplane.logsafe import escape
from contextplane.protocol.error_codes import ErrorCode

log = logging.getLogger(__name__)


class GroupConversion:
    def __init__(
        self,
        state: GroupStateMachine,
        consumer: ConsumerGroupMachine,
        classic: ClassicGroupSaver,
        saver: ConsumerGroupSaver,
        now_ms: Callable[[], int],
    ) -> None:
        self._state = state
        self._consumer = consumer
        self._classic = classic
        self._saver = saver
        self._now_ms = now_ms

    def before_heartbeat(self, request: ConsumerHeartbeat) -> tuple[dict[str, Any] | None, bool]:
        """A ConsumerGroupHeartbeat naming a classic group: (its error response, or None
        to go on; whether the group was upgraded)."""
        classic = self._state.group(request.group_id)
        if classic is None:
            return None, False
        empty = classic.is_in(GroupState.EMPTY) and not classic.members
        if not empty or classic.pending_join:
            if request.member_epoch != 0:
                return heartbeat_error(
                    ErrorCode.group_id_not_found,
                    f"Group {request.group_id} is not a consumer group.",
                ), False
            try:  # a request Kafka refuses converts nothing
                validate_heartbeat(request, self._consumer.config.assignors)
            except HeartbeatRefused as exc:
                return heartbeat_error(exc.code, exc.message), False
            refused = self._upgrade(classic)
            return refused, refused is None
        if request.member_epoch > 0:
            # An Empty classic group: the member is not known here, so it is told to
            # rejoin, as Kafka tells a member its coordinator forgot.
            return heartbeat_error(
                ErrorCode.unknown_member_id,
                f"Member {request.member_id} is not a member of group {request.group_id}.",
            ), False
        if request.member_epoch == 0:
            self._classic.remove_group(request.group_id)  # upgrade of an empty group
        return None, False

    async def save(self, group_id: str, member_id: str | None = None) -> bool:
        """A converted group's consumer group rows and classic group row, together."""

        async def write(classic: dict[str, bytes | None]) -> bool:
            return await self._saver.save([group_id], member_id, classic)

        return await self._classic.write_with(group_id, write)

    def _upgrade(self, classic: Group) -> dict[str, Any] | None:
        """Kafka's online upgrade of a classic group with members (migration.py); the
        heartbeat's error response if it is refused (the group stays classic)."""
        group_id = classic.group_id
        refusal = upgrade_refusal(classic, self._consumer.config)
        if refusal is not None:
            return heartbeat_error(ErrorCode.group_id_not_found, refusal)
        # Parked JoinGroup / SyncGroup are told to rejoin even if a later check refuses,
        # as in Kafka.
        self._state.answer_parked(group_id, ErrorCode.rebalance_in_progress)
        max_size = self._consumer.config.max_size
        if len(classic.members) >= max_size:
            return heartbeat_error(
                ErrorCode.group_max_size_reached,
                f"The consumer group has reached its maximum capacity of {max_size} members.",
            )
        try:
            converted = from_classic_group(classic, self._consumer.config.assignors[0])
        except UpgradeRefused as exc:
            return heartbeat_error(ErrorCode.group_id_not_found, str(exc))
        self._classic.remove_group(group_id)  # its row goes at the next flush
        self._consumer.adopt(converted)
        log.info(
            "converted classic group %s with %d members to a consumer group at epoch %d",
            escape(group_id),
            len(converted.members),
            converted.group_epoch,
        )
        return None

    async def downgrade_due(self) -> None:
        """Consumer groups whose last consumer-protocol member left while classic members
        remain become classic groups again, when the policy and group.max.size allow."""
        for group_id in sorted(self._consumer.take_downgrades()):
            group = self._consumer.group(group_id)
            if group is None or not group.all_classic_except(set()):
                continue
            if not self._consumer.config.downgrade_enabled():
                log.info("group %s stays a consumer group: online downgrade is disabled",
                         escape(group_id))  # fmt: skip
                continue
            if len(group.members) > self._state.config.max_group_size:
                log.info("group %s stays a consumer group: it exceeds group.max.size",
                         escape(group_id))  # fmt: skip
                continue
            classic = to_classic_group(group, self._now_ms())
            self._consumer.remove_group(group_id)
            self._saver.forget(group_id)
            with self._classic.serving(group_id):
                self._state.adopt(
                    classic,
                    f"Downgrade group {group_id} from consumer to classic for member leaving.",
                )
            log.info("converted consumer group %s to a classic group at generation %d",
                     escape(group_id), classic.generation_id)  # fmt: skip
            await self.save(group_id)
