"""The consumer groups' (KIP-848) broker settings: their `Settings` fields, their rows of
the settings table and the rules across them, with Kafka's names, defaults and messages
(GroupCoordinatorConfig, and KafkaConfig for `group.coordinator.rebalance.protocols`).

Kafka bounds each int to 1 or more and then orders them: min <= value <= max for the
heartbeat interval and the session timeout, and the interval below the session. The
per-group configs `consumer.heartbeat.interval.ms` / `consumer.session.timeout.ms` are
bounded by the same min and max (`coordinators/consumer_group/group_configs.py`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from contextplane.limits import INT_MAX

if TYPE_CHECKING:
    from contextplane.settings import Settings

# Kafka's built-in assignors, by name and by class name (either may be listed).
_ASSIGNOR_PACKAGE = "org.apache.kafka.coordinator.group.assignor."
BUILTIN_ASSIGNORS = {
    "uniform": "uniform",
    "range": "range",
    _ASSIGNOR_PACKAGE + "UniformAssignor": "uniform",
    _ASSIGNOR_PACKAGE + "RangeAssignor": "range",
}
MIGRATION_POLICIES = ("bidirectional", "upgrade", "downgrade", "disabled")
REBALANCE_PROTOCOLS = ("classic", "consumer", "streams", "share")


@dataclass(frozen=True)
class ConsumerGroupSettings:
    """The `Settings` fields of the group.consumer.* settings (Settings inherits them)."""

    group_consumer_session_timeout_ms: int = 45_000
    group_consumer_min_session_timeout_ms: int = 45_000
    group_consumer_max_session_timeout_ms: int = 60_000
    group_consumer_heartbeat_interval_ms: int = 5_000
    group_consumer_min_heartbeat_interval_ms: int = 5_000
    group_consumer_max_heartbeat_interval_ms: int = 15_000
    group_consumer_assignment_interval_ms: int = 1_000
    group_consumer_min_assignment_interval_ms: int = 0
    group_consumer_max_assignment_interval_ms: int = 15_000
    group_consumer_assignor_offload_enable: bool = True
    group_consumer_regex_refresh_interval_ms: int = 600_000
    group_consumer_max_size: int = INT_MAX
    group_consumer_assignors: str = "uniform,range"
    group_consumer_migration_policy: str = "bidirectional"
    group_coordinator_rebalance_protocols: str = "classic,consumer,streams"


def _ms(name: str, attr: str, meaning: str) -> dict[str, Any]:
    return dict(name=name, attr=attr, unit="ms", meaning=meaning, low=1, high=INT_MAX)


CONSUMER_GROUP_SETTINGS: tuple[dict[str, Any], ...] = (
    _ms(
        "group.consumer.session.timeout.ms",
        "group_consumer_session_timeout_ms",
        "a consumer-protocol (KIP-848) member that sends no heartbeat for this long leaves "
        "its group (within the min and max session timeouts)",
    ),
    _ms(
        "group.consumer.min.session.timeout.ms",
        "group_consumer_min_session_timeout_ms",
        "the least session timeout, of the broker and of a group's `consumer.session.timeout.ms`",
    ),
    _ms(
        "group.consumer.max.session.timeout.ms",
        "group_consumer_max_session_timeout_ms",
        "the greatest session timeout, of the broker and of a group's "
        "`consumer.session.timeout.ms`",
    ),
    _ms(
        "group.consumer.heartbeat.interval.ms",
        "group_consumer_heartbeat_interval_ms",
        "how often consumer-protocol members heartbeat, as told in each heartbeat response "
        "(within the min and max heartbeat intervals, below the session timeout)",
    ),
    _ms(
        "group.consumer.min.heartbeat.interval.ms",
        "group_consumer_min_heartbeat_interval_ms",
        "the least heartbeat interval, of the broker and of a group's "
        "`consumer.heartbeat.interval.ms`",
    ),
    _ms(
        "group.consumer.max.heartbeat.interval.ms",
        "group_consumer_max_heartbeat_interval_ms",
        "the greatest heartbeat interval, of the broker and of a group's "
        "`consumer.heartbeat.interval.ms`",
    ),
    dict(
        name="group.consumer.assignment.interval.ms",
        attr="group_consumer_assignment_interval_ms",
        unit="ms",
        meaning="a consumer-protocol group's target assignment is recomputed at most this "
        "often (changes in between are batched; 0: at every change), as Kafka 4.3+; a "
        "group's `consumer.assignment.interval.ms` overrides it",
        low=0,
        high=INT_MAX,
    ),
    dict(
        name="group.consumer.min.assignment.interval.ms",
        attr="group_consumer_min_assignment_interval_ms",
        unit="ms",
        meaning="the least a consumer group's `consumer.assignment.interval.ms` may be set to",
        low=0,
        high=INT_MAX,
    ),
    dict(
        name="group.consumer.max.assignment.interval.ms",
        attr="group_consumer_max_assignment_interval_ms",
        unit="ms",
        meaning="the most a consumer group's `consumer.assignment.interval.ms` may be set to",
        low=0,
        high=INT_MAX,
    ),
    dict(
        name="group.consumer.assignor.offload.enable",
        attr="group_consumer_assignor_offload_enable",
        unit="",
        meaning="accepted as Kafka's (an internal setting there); the assignor runs on the "
        "event loop, as its cost is linear in the subscribed partitions and members",
    ),
    dict(
        name="group.consumer.regex.refresh.interval.ms",
        attr="group_consumer_regex_refresh_interval_ms",
        unit="ms",
        meaning="a consumer group's regex subscriptions are resolved again at its first "
        "heartbeat after this long even if no topic was created or deleted (so a topic "
        "becoming DESCRIBE-able takes effect), as Kafka; at least 10000",
        low=10_000,
        high=INT_MAX,
    ),
    dict(
        name="group.consumer.max.size",
        attr="group_consumer_max_size",
        unit="",
        meaning="most members of one consumer-protocol group (GROUP_MAX_SIZE_REACHED beyond)",
        low=1,
        high=INT_MAX,
    ),
    dict(
        name="group.consumer.assignors",
        attr="group_consumer_assignors",
        unit="",
        meaning="the server-side assignors a consumer-protocol member may ask for (others: "
        "UNSUPPORTED_ASSIGNOR), by name (`uniform`, `range`) or Kafka's class name; the "
        "first is used when none is asked for",
    ),
    dict(
        name="group.consumer.migration.policy",
        attr="group_consumer_migration_policy",
        unit="",
        meaning="`bidirectional`, `upgrade`, `downgrade` or `disabled`: which conversions of "
        "a group with members between the classic and the consumer protocol are allowed "
        "(empty groups always convert, as in Kafka)",
    ),
    dict(
        name="group.coordinator.rebalance.protocols",
        attr="group_coordinator_rebalance_protocols",
        unit="",
        meaning="the group protocols served, from `classic` (required), `consumer`, "
        "`streams`, `share` (deprecated in Kafka: share groups do not depend on it); "
        "without `consumer` ConsumerGroupHeartbeat and ConsumerGroupDescribe answer "
        "UNSUPPORTED_VERSION (still listed by ApiVersions, as Kafka 4.4 lists them)",
    ),
)


def items(text: str) -> list[str]:
    """A LIST setting's items, trimmed, empty ones dropped."""
    return [item.strip() for item in text.split(",") if item.strip()]


def assignor_names(settings: ConsumerGroupSettings) -> tuple[str, ...]:
    """`group.consumer.assignors` as assignor names (checked at start)."""
    return tuple(BUILTIN_ASSIGNORS[entry] for entry in items(settings.group_consumer_assignors))


def consumer_protocol_enabled(settings: ConsumerGroupSettings) -> bool:
    return "consumer" in items(settings.group_coordinator_rebalance_protocols)


# Kafka's order of its checks; a field's name with dots is the setting's.
_ORDERS = (
    ("group_consumer_max_heartbeat_interval_ms", ">=", "group_consumer_min_heartbeat_interval_ms"),
    ("group_consumer_heartbeat_interval_ms", ">=", "group_consumer_min_heartbeat_interval_ms"),
    ("group_consumer_heartbeat_interval_ms", "<=", "group_consumer_max_heartbeat_interval_ms"),
    ("group_consumer_max_session_timeout_ms", ">=", "group_consumer_min_session_timeout_ms"),
    ("group_consumer_session_timeout_ms", ">=", "group_consumer_min_session_timeout_ms"),
    ("group_consumer_session_timeout_ms", "<=", "group_consumer_max_session_timeout_ms"),
    ("group_consumer_heartbeat_interval_ms", "<", "group_consumer_session_timeout_ms"),
    (
        "group_consumer_max_assignment_interval_ms",
        ">=",
        "group_consumer_min_assignment_interval_ms",
    ),
    ("group_consumer_assignment_interval_ms", ">=", "group_consumer_min_assignment_interval_ms"),
    ("group_consumer_assignment_interval_ms", "<=", "group_consumer_max_assignment_interval_ms"),
)
_WORDS = {">=": "greater than or equal to", "<=": "less than or equal to", "<": "less than"}


def first_problem(settings: Settings) -> str | None:
    """The first of Kafka's rules across the group.consumer.* settings that `settings`
    breaks, with Kafka's message (None: it keeps them all)."""
    s = settings
    for left, relation, right in _ORDERS:
        a, b = getattr(s, left), getattr(s, right)
        holds = {">=": a >= b, "<=": a <= b, "<": a < b}[relation]
        if not holds:
            return f"{left.replace('_', '.')} must be {_WORDS[relation]} {right.replace('_', '.')}"
    policy = s.group_consumer_migration_policy
    if policy.strip().lower() not in MIGRATION_POLICIES:
        return (
            f"Invalid value {policy} for configuration group.consumer.migration.policy: "
            f"String must be one of (case insensitive): {', '.join(MIGRATION_POLICIES)}"
        )
    return _assignors_problem(s.group_consumer_assignors) or _protocols_problem(
        s.group_coordinator_rebalance_protocols
    )


def _assignors_problem(text: str) -> str | None:
    if not items(text):
        return "group.consumer.assignors must name at least one assignor (e.g. uniform)"
    seen: set[str] = set()
    for entry in items(text):
        name = BUILTIN_ASSIGNORS.get(entry)
        if name is None:
            # Kafka loads any other entry as a class; none can be loaded here.
            return (
                f"Invalid value {entry} for configuration group.consumer.assignors: "
                "Class cannot be found"
            )
        if name in seen:
            return (
                f"Invalid value {entry} for configuration group.consumer.assignors: Assignor "
                f"name '{name}' is already registered by another configured assignor. "
                "Assignor names, whether built-in or custom, must be unique"
            )
        seen.add(name)
    return None


def _protocols_problem(text: str) -> str | None:
    listed = items(text)
    for protocol in listed:
        if protocol not in REBALANCE_PROTOCOLS:
            return (
                f"Invalid value {text} for configuration group.coordinator.rebalance.protocols:"
                f" String must be one of: {', '.join(REBALANCE_PROTOCOLS)}"
            )
    if "classic" not in listed:
        return "Disabling the 'classic' protocol is not supported."
    return None


def deprecations(settings: Settings) -> list[str]:
    """Kafka 4.4's warnings at start when `group.coordinator.rebalance.protocols` is
    given (deprecated: Kafka 5.0 enables every protocol)."""
    if "group.coordinator.rebalance.protocols" not in settings.given:
        return []
    listed = items(settings.group_coordinator_rebalance_protocols)
    warnings = []
    if "share" in listed:
        warnings.append(
            "'share' in `group.coordinator.rebalance.protocols` is deprecated. Share groups "
            "are controlled by the 'share.version' feature. This config will be removed in "
            "Kafka 5.0."
        )
    disabled = [p for p in ("classic", "consumer", "streams") if p not in listed]
    if disabled:
        warnings.append(
            "The config `group.coordinator.rebalance.protocols` is deprecated and will be "
            f"removed in Kafka 5.0. The following protocol(s) are currently disabled: "
            f"{', '.join(disabled)}. Please remove the configuration, which will restore "
            "all protocols to the default enabled state, to prepare for the upgrade."
        )
    return warnings
