"""The share groups' (KIP-932) rows of the settings table (`settings_table.SETTINGS` ends
with them): kept apart so the table stays one readable module. Each is `Setting`'s
fields; the names, defaults and bounds are Kafka's (`group.share.record.lock.duration.ms`
is bounded as Kafka bounds the setting itself, 1 s to 1 h). The `group.share.min/max.*`
ones bound what a share group's own configs (`share.session.timeout.ms`, ...) may be set
to, as Kafka's GroupConfig checks them; a broker session, heartbeat or lock value outside
them is allowed here (Kafka refuses to start), so tests may shorten a lock without
lowering the minimum; a delivery count limit or record lock limit outside them refuses
the start, as in Kafka (`settings_rules`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from contextplane.limits import INT_MAX, SHARE_PARTITION_RECORD_LOCKS_MAX


@dataclass(frozen=True)
class ShareGroupFields:
    """The share-group fields of `Settings` (its base: kept here with their rows)."""

    # Kafka's group.share.* defaults (KIP-932).
    group_share_session_timeout_ms: int = 45_000
    group_share_heartbeat_interval_ms: int = 5_000
    group_share_max_size: int = 200
    group_share_record_lock_duration_ms: int = 30_000
    # The bounds of a share group's own configs (Kafka's group.share.min/max.*).
    group_share_min_session_timeout_ms: int = 45_000
    group_share_max_session_timeout_ms: int = 60_000
    group_share_min_heartbeat_interval_ms: int = 5_000
    group_share_max_heartbeat_interval_ms: int = 15_000
    group_share_min_record_lock_duration_ms: int = 15_000
    group_share_max_record_lock_duration_ms: int = 60_000
    group_share_delivery_count_limit: int = 5
    group_share_min_delivery_count_limit: int = 2
    group_share_max_delivery_count_limit: int = 10
    group_share_partition_max_record_locks: int = 2_000
    group_share_min_partition_max_record_locks: int = 100
    group_share_max_partition_max_record_locks: int = 4_000
    group_share_max_share_sessions: int = 2_000
    # How often a share group's target assignment may be recomputed (Kafka 4.4).
    group_share_assignment_interval_ms: int = 1_000
    group_share_min_assignment_interval_ms: int = 0
    group_share_max_assignment_interval_ms: int = 15_000
    group_share_assignor_offload_enable: bool = True


SHARE_GROUP_SETTINGS: tuple[dict[str, Any], ...] = (
    dict(
        name="group.share.session.timeout.ms",
        attr="group_share_session_timeout_ms",
        unit="ms",
        meaning="a share-group (KIP-932) member that sends no heartbeat for this long leaves its "
        "group; the records it holds stay acquired until its share session closes or their "
        "locks expire, as in Kafka (a group's `share.session.timeout.ms` overrides it)",
        low=1,
        high=INT_MAX,
    ),
    dict(
        name="group.share.heartbeat.interval.ms",
        attr="group_share_heartbeat_interval_ms",
        unit="ms",
        meaning="how often share-group members heartbeat, as told in each heartbeat response "
        "(a group's `share.heartbeat.interval.ms` overrides it)",
        low=1,
        high=INT_MAX,
    ),
    dict(
        name="group.share.max.size",
        attr="group_share_max_size",
        unit="",
        meaning="most members of one share group (GROUP_MAX_SIZE_REACHED beyond)",
        low=1,
        high=1_000,
    ),
    dict(
        name="group.share.record.lock.duration.ms",
        attr="group_share_record_lock_duration_ms",
        unit="ms",
        meaning="how long a share consumer holds the records one ShareFetch acquired before they "
        "are offered to others (a group's `share.record.lock.duration.ms` overrides it)",
        low=1_000,
        high=3_600_000,
    ),
    dict(
        name="group.share.min.session.timeout.ms",
        attr="group_share_min_session_timeout_ms",
        unit="ms",
        meaning="the least a share group's `share.session.timeout.ms` may be set to",
        low=1,
        high=INT_MAX,
    ),
    dict(
        name="group.share.max.session.timeout.ms",
        attr="group_share_max_session_timeout_ms",
        unit="ms",
        meaning="the most a share group's `share.session.timeout.ms` may be set to",
        low=1,
        high=INT_MAX,
    ),
    dict(
        name="group.share.min.heartbeat.interval.ms",
        attr="group_share_min_heartbeat_interval_ms",
        unit="ms",
        meaning="the least a share group's `share.heartbeat.interval.ms` may be set to",
        low=1,
        high=INT_MAX,
    ),
    dict(
        name="group.share.max.heartbeat.interval.ms",
        attr="group_share_max_heartbeat_interval_ms",
        unit="ms",
        meaning="the most a share group's `share.heartbeat.interval.ms` may be set to",
        low=1,
        high=INT_MAX,
    ),
    dict(
        name="group.share.min.record.lock.duration.ms",
        attr="group_share_min_record_lock_duration_ms",
        unit="ms",
        meaning="the least a share group's `share.record.lock.duration.ms` may be set to",
        low=1_000,
        high=30_000,
    ),
    dict(
        name="group.share.max.record.lock.duration.ms",
        attr="group_share_max_record_lock_duration_ms",
        unit="ms",
        meaning="the most a share group's `share.record.lock.duration.ms` may be set to",
        low=30_000,
        high=3_600_000,
    ),
    dict(
        name="group.share.delivery.count.limit",
        attr="group_share_delivery_count_limit",
        unit="",
        meaning="a record of a share group delivered this many times without being accepted is "
        "archived (never delivered again; a group's `share.delivery.count.limit` overrides it)",
        low=2,
        high=10,
    ),
    dict(
        name="group.share.min.delivery.count.limit",
        attr="group_share_min_delivery_count_limit",
        unit="",
        meaning="the least a share group's `share.delivery.count.limit` may be set to",
        low=2,
        high=5,
    ),
    dict(
        name="group.share.max.delivery.count.limit",
        attr="group_share_max_delivery_count_limit",
        unit="",
        meaning="the most a share group's `share.delivery.count.limit` may be set to",
        low=5,
        high=25,
    ),
    dict(
        name="group.share.partition.max.record.locks",
        attr="group_share_partition_max_record_locks",
        unit="",
        meaning="most in-flight records (delivered, not yet done) per share partition: it bounds "
        "the state kept and stored for it (a group's `share.partition.max.record.locks` "
        "overrides it)",
        low=100,
        high=SHARE_PARTITION_RECORD_LOCKS_MAX,
    ),
    dict(
        name="group.share.min.partition.max.record.locks",
        attr="group_share_min_partition_max_record_locks",
        unit="",
        meaning="the least a share group's `share.partition.max.record.locks` may be set to",
        low=100,
        high=2_000,
    ),
    dict(
        name="group.share.max.partition.max.record.locks",
        attr="group_share_max_partition_max_record_locks",
        unit="",
        meaning="the most a share group's `share.partition.max.record.locks` may be set to",
        low=2_000,
        high=SHARE_PARTITION_RECORD_LOCKS_MAX,
    ),
    dict(
        name="group.share.max.share.sessions",
        attr="group_share_max_share_sessions",
        unit="",
        meaning="most share sessions (one per share consumer) the broker keeps "
        "(SHARE_SESSION_LIMIT_REACHED beyond)",
        low=1,
        high=INT_MAX,
    ),
    dict(
        name="group.share.assignment.interval.ms",
        attr="group_share_assignment_interval_ms",
        unit="ms",
        meaning="a share group's assignment is recomputed at most once per this interval: a "
        "member joining or leaving within it is assigned at a heartbeat after it (a group's "
        "`share.assignment.interval.ms` overrides it; 0: at once)",
        low=0,
        high=INT_MAX,
    ),
    dict(
        name="group.share.min.assignment.interval.ms",
        attr="group_share_min_assignment_interval_ms",
        unit="ms",
        meaning="the least a share group's `share.assignment.interval.ms` may be set to",
        low=0,
        high=INT_MAX,
    ),
    dict(
        name="group.share.max.assignment.interval.ms",
        attr="group_share_max_assignment_interval_ms",
        unit="ms",
        meaning="the most a share group's `share.assignment.interval.ms` may be set to",
        low=0,
        high=INT_MAX,
    ),
    dict(
        name="group.share.assignor.offload.enable",
        attr="group_share_assignor_offload_enable",
        unit="",
        meaning="accepted as Kafka's (an internal setting there); the assignor runs on the "
        "event loop, as its cost is linear in the subscribed topics and members",
    ),
    dict(
        name="errors.deadletterqueue.auto.create.topics.enable",
        attr="errors_deadletterqueue_auto_create_topics_enable",
        unit="",
        meaning="a share group's dead-letter topic (KIP-1191) that does not exist is created "
        "when a record is first copied there (else the record is archived without a copy); "
        "dynamic, as in Kafka (a broker config)",
    ),
    dict(
        name="errors.deadletterqueue.topic.name.prefix",
        attr="errors_deadletterqueue_topic_name_prefix",
        unit="",
        meaning="a share group's dead-letter topic must start with this (empty: any name); "
        "dynamic, as in Kafka (a broker config)",
    ),
)
