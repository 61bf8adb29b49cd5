"""What goes into the consumer group machine and what comes out of a refusal: the
ConsumerGroupHeartbeat request as plain values, the group.consumer.* settings, and
Kafka's validation of a heartbeat (`validate_heartbeat`, Kafka's
throwIfConsumerGroupHeartbeatRequestIsInvalid) with its error response.

Rules of this file: plain data and pure functions; topics by name (the handler resolves
ids); None in a request means "unchanged since the last heartbeat", as on the wire.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from contextplane.coordinators.consumer_group.assignors import TopicPartition
from contextplane.coordinators.consumer_group.group import (
    LEAVE_GROUP_MEMBER_EPOCH,
    LEAVE_GROUP_STATIC_MEMBER_EPOCH,
)
from contextplane.protocol.error_codes import ErrorCode
from contextplane.settings_consumer_groups import ConsumerGroupSettings, assignor_names

# Kafka's group.consumer.* defaults and their bounds' defaults.
SESSION_TIMEOUT_MS_DEFAULT = 45_000
SESSION_TIMEOUT_MS_MIN = 45_000
SESSION_TIMEOUT_MS_MAX = 60_000
HEARTBEAT_INTERVAL_MS_DEFAULT = 5_000
HEARTBEAT_INTERVAL_MS_MIN = 5_000
HEARTBEAT_INTERVAL_MS_MAX = 15_000
# Kafka 4.3+: a group's target is recomputed at most this often (0: at every change).
ASSIGNMENT_INTERVAL_MS_DEFAULT = 1_000
MAX_SIZE_DEFAULT = 2**31 - 1
# Kafka's group.consumer.regex.refresh.interval.ms (at least 10 s there).
REGEX_REFRESH_INTERVAL_MS_DEFAULT = 600_000


@dataclass(frozen=True)
class ConsumerGroupConfig:
    session_timeout_ms: int = SESSION_TIMEOUT_MS_DEFAULT
    heartbeat_interval_ms: int = HEARTBEAT_INTERVAL_MS_DEFAULT
    assignment_interval_ms: int = ASSIGNMENT_INTERVAL_MS_DEFAULT
    regex_refresh_interval_ms: int = REGEX_REFRESH_INTERVAL_MS_DEFAULT
    # group.consumer.assignors: the first is the default.
    assignors: tuple[str, ...] = ("uniform", "range")
    max_size: int = MAX_SIZE_DEFAULT
    # group.consumer.migration.policy: which conversions of a group with members between
    # the classic and the consumer protocol are allowed.
    migration_policy: str = "bidirectional"

    def upgrade_enabled(self) -> bool:
        return self.migration_policy in ("bidirectional", "upgrade")

    def downgrade_enabled(self) -> bool:
        return self.migration_policy in ("bidirectional", "downgrade")


def consumer_group_config(settings: ConsumerGroupSettings) -> ConsumerGroupConfig:
    """The machine's config from the broker's group.consumer.* settings."""
    return ConsumerGroupConfig(
        session_timeout_ms=settings.group_consumer_session_timeout_ms,
        heartbeat_interval_ms=settings.group_consumer_heartbeat_interval_ms,
        assignment_interval_ms=settings.group_consumer_assignment_interval_ms,
        regex_refresh_interval_ms=settings.group_consumer_regex_refresh_interval_ms,
        assignors=assignor_names(settings),
        max_size=settings.group_consumer_max_size,
        migration_policy=settings.group_consumer_migration_policy,
    )


@dataclass(frozen=True, slots=True)
class ConsumerHeartbeat:
    """A ConsumerGroupHeartbeat request as plain values; topics by name (the handler
    resolves ids). None means "unchanged since the last heartbeat", as on the wire."""

    group_id: str
    member_id: str
    member_epoch: int
    instance_id: str | None = None
    rack_id: str | None = None
    rebalance_timeout_ms: int = -1
    subscribed_topic_names: tuple[str, ...] | None = None
    subscribed_topic_regex: str | None = None
    server_assignor: str | None = None
    owned: frozenset[TopicPartition] | None = None
    # The topics the owned partitions were listed under (an entry may list none).
    owned_topics: frozenset[str] = frozenset()
    # Whether TopicPartitions listed any topic, one no topic has included (dropped from
    # `owned`): a joining member must list none, as Kafka checks the request itself.
    owned_listed: bool = False
    client_id: str = ""
    client_host: str = ""
    api_version: int = 1


class HeartbeatRefused(Exception):
    """A heartbeat answered with an error; nothing changed."""

    def __init__(self, code: ErrorCode, message: str | None = None) -> None:
        super().__init__(message or code.name)
        self.code = code
        self.message = message


def heartbeat_error(code: ErrorCode, message: str | None = None) -> dict[str, Any]:
    return {
        "error_code": code,
        "error_message": message,
        "member_id": None,
        "member_epoch": 0,
        "heartbeat_interval_ms": 0,
        "assignment": None,
    }


def validate_heartbeat(request: ConsumerHeartbeat, assignors: Iterable[str]) -> None:
    """Kafka's throwIfConsumerGroupHeartbeatRequestIsInvalid."""

    def invalid(message: str) -> HeartbeatRefused:
        return HeartbeatRefused(ErrorCode.invalid_request, message)

    if not request.group_id:
        raise invalid("GroupId can't be empty.")
    if request.instance_id == "":
        raise invalid("InstanceId can't be empty.")
    if request.rack_id == "":
        raise invalid("RackId can't be empty.")
    if request.api_version >= 1 and not request.member_id:
        raise invalid("MemberId can't be empty.")
    epoch = request.member_epoch
    if epoch > 0 or epoch == LEAVE_GROUP_MEMBER_EPOCH:
        if not request.member_id:
            raise invalid("MemberId can't be empty.")
    elif epoch == 0:
        if request.rebalance_timeout_ms == -1:
            raise invalid("RebalanceTimeoutMs must be provided in first request.")
        if request.owned is None or request.owned or request.owned_listed:
            raise invalid("TopicPartitions must be empty when (re-)joining.")
        if request.subscribed_topic_names is None and request.subscribed_topic_regex is None:
            raise invalid(
                "Either SubscribedTopicNames or SubscribedTopicRegex must be non-null when "
                "(re-)joining."
            )
    elif epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH:
        if request.instance_id is None:
            raise invalid("InstanceId can't be null.")
    else:
        raise invalid(f"MemberEpoch is invalid: {epoch}")
    names = list(assignors)
    if request.server_assignor is not None and request.server_assignor not in names:
        raise HeartbeatRefused(
            ErrorCode.unsupported_assignor,
            f"ServerAssignor {request.server_assignor} is not supported. Supported assignors: "
            f"{', '.join(names)}.",
        )
