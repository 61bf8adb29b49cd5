"""Dynamic broker configs (KIP-226): AlterConfigs and IncrementalAlterConfigs on BROKER
resources, per broker (the resource named by its node id) and as the cluster default (the
empty name), stored in the metadata store and applied without restart.

Kafka's precedence holds: per-broker over cluster default over the broker's static
settings over the default. The broker keeps one `Settings` object that every component
reads; a dynamic config is applied by replacing the field it sets in that object, so the
next read sees it (produce's batch limit, retention, the cleaner, the share dead-letter
settings: `APPLIED`). Components that derive a value once at start (the WAL's space
reserve from `message.max.bytes`) keep it until the next start.

A name Kafka 4.4 makes dynamic is accepted when it is `APPLIED` or when it has no effect
on this broker even at start (`settings_table.IGNORED`: thread counts, flush intervals);
one Kafka makes static, or this broker cannot apply live (TLS stores, connection limits),
is refused with INVALID_REQUEST as Kafka refuses a static one. A name Kafka does not know
is stored and described as Kafka does (a custom config: sensitive, no value shown), up to
limits.BROKER_CUSTOM_CONFIGS_MAX of them per resource, with at most
limits.BROKER_CUSTOM_CONFIG_BYTES_MAX bytes of names and values: a change that would
leave the resource above either (and above what it holds now) is refused whole with
POLICY_VIOLATION, the code Kafka's controller answers for an operation over its bounds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from contextplane import limits
from contextplane.broker.configs import BROKER_CONFIGS
from contextplane.broker.kafka_broker_configs import (
    CLUSTER_WIDE,
    KAFKA_BROKER_CONFIGS,
    LISTENER,
    PER_BROKER,
    STATIC,
    base_name,
    mode_of,
)
from contextplane.errors import KafkaError
from contextplane.java_numbers import java_double_text
from contextplane.metadata.store import MetadataStore
from contextplane.protocol.error_codes import ErrorCode
from contextplane.settings import Settings, SettingsError, _coerce, ignored_reason
from contextplane.settings_table import SETTINGS

log = logging.getLogger(__name__)

# Dynamic in Kafka 4.4 and applied here on the next read of the setting.
APPLIED = (
    "log.retention.ms",
    "log.retention.bytes",
    "log.cleanup.policy",
    "log.segment.bytes",
    "log.roll.ms",
    "log.segment.delete.delay.ms",
    "message.max.bytes",
    "log.cleaner.backoff.ms",
    "log.cleaner.dedupe.buffer.size",
    "log.cleaner.delete.retention.ms",
    "log.cleaner.min.compaction.lag.ms",
    "log.cleaner.max.compaction.lag.ms",
    "log.cleaner.min.cleanable.ratio",
    "log.cleaner.io.max.bytes.per.second",
    "errors.deadletterqueue.auto.create.topics.enable",
    "errors.deadletterqueue.topic.name.prefix",
)
_ROWS = {name: row for row in SETTINGS for name in row.names}
# The settings fields APPLIED names set, each with its names in Kafka's precedence.
_FIELDS = {_ROWS[name].attr: _ROWS[name].names for name in APPLIED}
# Kafka's synonyms of a broker config (DynamicBrokerConfig.brokerConfigSynonyms).
_SYNONYMS = {
    name: names
    for names in (
        ("log.roll.ms", "log.roll.hours"),
        ("log.retention.ms", "log.retention.minutes", "log.retention.hours"),
        ("log.flush.interval.ms", "log.flush.scheduler.interval.ms"),
    )
    for name in names
}
# Broker configs Kafka gives no default (their value is null unless set by that name).
NO_KAFKA_DEFAULT = frozenset({"log.retention.ms", "log.retention.minutes", "log.roll.ms"})
# Described without a DEFAULT_CONFIG synonym: what they default to depends on the host.
_HOST_DEFAULTS = frozenset({"node.id", "listeners", "advertised.listeners"})
# DescribeConfigs' ConfigSource values.
DYNAMIC_BROKER, DYNAMIC_DEFAULT, STATIC_BROKER, DEFAULT = 2, 3, 4, 5
DEFAULT_RESOURCE = ""


def broker_synonyms(name: str) -> tuple[str, ...]:
    return _SYNONYMS.get(name, (name,))


def accepted(name: str) -> bool:
    """Whether this broker lets `name` be set dynamically."""
    if name in APPLIED:
        return True
    return mode_of(name) == CLUSTER_WIDE and name not in _ROWS and _no_effect(name)


def _no_effect(name: str) -> bool:
    try:
        return ignored_reason(name, "") is not None
    except SettingsError:
        return False


def text(value: Any) -> str:
    """A settings value as Kafka prints a config value."""
    if isinstance(value, bool):
        return str(value).lower()
    return java_double_text(value) if isinstance(value, float) else str(value)


class DynamicBrokerConfigs:
    """The stored dynamic configs of this broker and of the cluster default, applied to
    the broker's `Settings` (loaded at start and again when another broker changed them)."""

    def __init__(self, store: MetadataStore, settings: Settings) -> None:
        self._store = store
        self.settings = settings
        self.node = str(settings.node_id)
        # The static values, kept on the object: a broker restarted in the same process
        # with the same object must not take its dynamic values for static ones.
        if not hasattr(settings, "_static_values"):
            static = {attr: getattr(settings, attr) for attr in _FIELDS}
            object.__setattr__(settings, "_static_values", static)
        self._static: dict[str, Any] = settings._static_values
        self._defaults = self._default_values(Settings())
        # resource name ('' or this node's id) -> name -> value, as stored.
        self.stored: dict[str, dict[str, str]] = {}
        self._lock = asyncio.Lock()
        # Called after a change applied: a component sleeping on an old value (the
        # cleaner's log.cleaner.backoff.ms) wakes to read the new one.
        self.on_change: list[Callable[[], None]] = []

    async def load(self) -> None:
        stored = await self._store.broker_configs()
        self.stored = {r: c for r, c in stored.items() if r in (DEFAULT_RESOURCE, self.node)}
        self._apply()

    def levels(self) -> list[tuple[int, Mapping[str, str]]]:
        """Where a value may come from, in Kafka's precedence."""
        return [
            (DYNAMIC_BROKER, self.stored.get(self.node, {})),
            (DYNAMIC_DEFAULT, self.stored.get(DEFAULT_RESOURCE, {})),
            (STATIC_BROKER, self.settings.given),
            (DEFAULT, self.kafka_defaults()),
        ]

    def kafka_defaults(self) -> dict[str, str]:
        """The DEFAULT_CONFIG values: this broker's defaults of the configs it describes."""
        return self._defaults

    @staticmethod
    def _default_values(defaults: Settings) -> dict[str, str]:
        values = {
            name: value(defaults)
            for name, value in BROKER_CONFIGS.items()
            if name not in NO_KAFKA_DEFAULT and name not in _HOST_DEFAULTS
        }
        names = [name for dynamic in APPLIED for name in broker_synonyms(dynamic)]
        # Every config Kafka describes: this broker's default where it has the setting,
        # else Kafka's (a config this broker has no equivalent of).
        names += [name for name, config in KAFKA_BROKER_CONFIGS.items() if config.described]
        # And contextplane's own settings (names Kafka does not know), all described.
        names += [row.name for row in SETTINGS if mode_of(row.name) is None]
        for name in names:
            if name in values or name in NO_KAFKA_DEFAULT or name in _HOST_DEFAULTS:
                continue
            row = _ROWS.get(name)
            kafka = KAFKA_BROKER_CONFIGS.get(name)
            kafka_default = kafka.default if kafka is not None else None
            if row is not None:
                value = getattr(defaults, row.attr)
                if row.scale != 1 and isinstance(value, int) and value > 0:
                    value //= row.scale
                # An empty setting stands for Kafka's none (a path, a password).
                if value not in (None, "") or (value == "" and kafka_default == ""):
                    values[name] = text(value)
            elif kafka_default is not None:
                values[name] = kafka_default
        return values

    def synonyms(self, name: str) -> list[tuple[str, str | None, int]]:
        """DescribeConfigs' synonyms of broker config `name` (ConfigHelper.configSynonyms:
        each level's synonyms in order, from `name` on)."""
        found: list[tuple[str, str | None, int]] = []
        for source, values in self.levels():
            for synonym in broker_synonyms(name):
                if synonym in values:
                    found.append((synonym, values[synonym], source))
        while found and found[0][0] != name:
            found.pop(0)
        return found

    def check_resource(self, resource: str) -> None:
        """ConfigAdminManager.validateResourceNameIsCurrentNodeId (INVALID_REQUEST)."""
        if resource not in (DEFAULT_RESOURCE, self.node):
            try:
                int(resource)
            except ValueError:
                _refuse(f"Node id must be an integer, but it is: {resource}")
            _refuse(f"Unexpected broker id, expected {self.node}, but received {resource}")

    async def alter(
        self,
        resource: str,
        change: Callable[[dict[str, str]], dict[str, str]],
        validate_only: bool,
    ) -> None:
        """Replace `resource`'s dynamic configs with `change` of the stored ones, read
        again from the store (another broker may have altered them since this one last
        loaded them), one alteration of this broker at a time."""
        self.check_resource(resource)
        async with self._lock:
            current = (await self._store.broker_configs()).get(resource, {})
            await self.set(resource, change(dict(current)), validate_only, current)

    def check(
        self, resource: str, configs: Mapping[str, str], current: Mapping[str, str] | None = None
    ) -> None:
        """KafkaError(INVALID_REQUEST) with Kafka's message when `configs` cannot be the
        dynamic configs of `resource` (DynamicBrokerConfig.validateConfigs' order), then
        POLICY_VIOLATION when they hold more custom configs than a resource may keep
        (`current`: what it holds now, which a change may shrink but not grow past them)."""
        self.check_resource(resource)
        names = list(configs)
        _refuse_names([n for n in names if mode_of(n) == STATIC or _static_here(n)], "")
        _refuse_names(
            [n for n in names if mode_of(n) == LISTENER],
            "These security configs can be dynamically updated only per-listener using the "
            "listener prefix",
        )
        for name in names:
            kafka = KAFKA_BROKER_CONFIGS.get(base_name(name))
            refusal = kafka.refusal(configs[name]) if kafka is not None else None
            if refusal is not None:
                _refuse(refusal)
        if resource == DEFAULT_RESOURCE:
            _refuse_names(
                [n for n in names if mode_of(n) == PER_BROKER],
                "Cannot update these configs at default cluster level, broker id must be specified",
            )
        _refuse_names([n for n in names if mode_of(n) is not None and not accepted(n)], "")
        for name in names:
            if name in APPLIED:
                try:
                    _coerce(_ROWS[name], name, configs[name])
                except SettingsError as exc:
                    _refuse(str(exc))
        _check_custom_bound(resource, configs, current or {})

    async def set(
        self,
        resource: str,
        configs: dict[str, str],
        validate_only: bool,
        current: Mapping[str, str] | None = None,
    ) -> None:
        """Replace `resource`'s dynamic configs (stored first), then apply them."""
        self.check(resource, configs, current)
        if validate_only:
            return
        await self._store.set_broker_configs(resource, configs)
        if configs:
            self.stored[resource] = dict(configs)
        else:
            self.stored.pop(resource, None)
        self._apply()

    def _apply(self) -> None:
        """Each APPLIED field from the most specific level naming it, else its static
        value. A stored value this version refuses is skipped, as Kafka skips it."""
        changed = False
        for attr, names in _FIELDS.items():
            value = self._static[attr]
            for resource in (self.node, DEFAULT_RESOURCE):
                configs = self.stored.get(resource, {})
                given = [name for name in names if name in configs]
                if not given:
                    continue
                try:
                    value = _coerce(_ROWS[given[0]], given[0], configs[given[0]])
                except SettingsError as exc:
                    log.error("dynamic broker config %s ignored: %s", given[0], exc)
                    continue
                break
            if getattr(self.settings, attr) != value:
                log.info("broker config %s is now %s", names[0], text(value))
                # The one Settings object every component reads: see the module's doc.
                object.__setattr__(self.settings, attr, value)
                changed = True
        if changed:
            for listener in self.on_change:
                listener()


def is_custom(name: str) -> bool:
    """A name neither Kafka 4.4 nor this broker knows: stored as given, described hidden."""
    return mode_of(name) is None and name not in _ROWS


def _custom_size(configs: Mapping[str, str]) -> tuple[int, int]:
    """How many custom configs `configs` holds, and their names' and values' bytes."""
    custom = [(name, value) for name, value in configs.items() if is_custom(name)]
    size = sum(len(name.encode()) + len(value.encode()) for name, value in custom)
    return len(custom), size


def _check_custom_bound(
    resource: str, configs: Mapping[str, str], current: Mapping[str, str]
) -> None:
    """POLICY_VIOLATION when `configs` would keep more custom configs (count or bytes) than
    limits allow and more than `current` does (one stored above them may still shrink)."""
    count, size = _custom_size(configs)
    held_count, held_size = _custom_size(current)
    label = "the cluster default" if resource == DEFAULT_RESOURCE else f"broker {resource}"
    if count > limits.BROKER_CUSTOM_CONFIGS_MAX and count > held_count:
        raise KafkaError(
            ErrorCode.policy_violation,
            f"Cannot keep {count} custom configs (names Kafka does not know) for {label}: "
            f"at most {limits.BROKER_CUSTOM_CONFIGS_MAX} per broker resource",
        )
    if size > limits.BROKER_CUSTOM_CONFIG_BYTES_MAX and size > held_size:
        raise KafkaError(
            ErrorCode.policy_violation,
            f"Cannot keep {size} bytes of custom configs (names Kafka does not know and their "
            f"values) for {label}: at most {limits.BROKER_CUSTOM_CONFIG_BYTES_MAX} bytes per "
            "broker resource",
        )


def _static_here(name: str) -> bool:
    """A setting of this broker that Kafka does not know: static here."""
    return mode_of(name) is None and name in _ROWS


def _refuse_names(names: list[str], message: str) -> None:
    if names:
        _refuse(f"{message or 'Cannot update these configs dynamically'}: [{', '.join(names)}]")


def _refuse(message: str) -> None:
    raise KafkaError(ErrorCode.invalid_request, message)
