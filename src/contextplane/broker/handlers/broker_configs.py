"""BROKER config resources in DescribeConfigs, AlterConfigs and IncrementalAlterConfigs:
the broker's configs with their sources and synonyms (ConfigHelper.createBrokerConfigEntry)
and its dynamic configs (broker/dynamic_configs.py), per broker or as the cluster default.

A broker's configs are Kafka's and contextplane's own settings (`wal.url`,
`zone.produce.proxy.enable`, ...: static, read-only), as Kafka lists every setting of its
broker; an own setting holding a secret is described sensitive, a URL without its password.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from contextplane.broker.configs import BROKER_CONFIGS
from contextplane.broker.dynamic_configs import (
    APPLIED,
    DEFAULT,
    DEFAULT_RESOURCE,
    DYNAMIC_DEFAULT,
    NO_KAFKA_DEFAULT,
    DynamicBrokerConfigs,
    accepted,
    text,
)
from contextplane.broker.kafka_broker_configs import KAFKA_BROKER_CONFIGS, base_name, mode_of
from contextplane.errors import KafkaError
from contextplane.protocol.error_codes import ErrorCode
from contextplane.settings import Settings
from contextplane.settings_table import SETTINGS

SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3
# DescribeConfigsResponse's ConfigType of each ConfigDef type.
_TYPES = {"BOOLEAN": 1, "STRING": 2, "INT": 3, "SHORT": 4, "LONG": 5, "DOUBLE": 6, "LIST": 7}
_TYPES |= {"CLASS": 8, "PASSWORD": 9}
_ATTRS = {row.name: row.attr for row in SETTINGS}
# Settings named in another unit than their field holds (log.retention.hours).
_SCALED = {row.name for row in SETTINGS if row.scale != 1}
# The broker configs Kafka 4.4 describes (its CONFIG_DEF less the internal ones).
_KAFKA_DESCRIBED = {name for name, config in KAFKA_BROKER_CONFIGS.items() if config.described}
# contextplane's own settings (names Kafka does not know), each with its table row.
_OWN = {row.name: row for row in SETTINGS if mode_of(row.name) is None}
_FIELD_TYPES = {field.name: str(field.type) for field in dataclasses.fields(Settings)}
# An own setting's name that marks a secret (described as Kafka describes a PASSWORD).
_SECRET_ENDINGS = (".password", ".key", ".secret")
_SECRET_QUERY_WORDS = ("password", "secret", "token")
# The documentation of a Kafka config this broker has no equivalent of.
NO_EQUIVALENT = "No equivalent in contextplane: described with Apache Kafka 4.4's default."


def describe_broker(
    dynamic: DynamicBrokerConfigs,
    request: Any,
    name: str,
    keys: set[str] | None,
    config_type: Callable[[str], int],
) -> list[dict[str, Any]]:
    """The configs of BROKER resource `name`: this broker's all (with `node_id`), or only
    the cluster default's dynamic ones (the empty name), as Kafka lists them."""
    if name not in (DEFAULT_RESOURCE, dynamic.node):
        try:
            int(name)
        except ValueError:
            raise KafkaError(
                ErrorCode.invalid_request, f"Broker id must be an integer, but it is: {name}"
            ) from None
        raise KafkaError(
            ErrorCode.invalid_request,
            f"Unexpected broker id, expected {dynamic.node} or empty string, but received {name}",
        )
    if name == DEFAULT_RESOURCE:
        names = set(dynamic.stored.get(DEFAULT_RESOURCE, {}))
    else:
        names = set(BROKER_CONFIGS) | set(APPLIED) | _KAFKA_DESCRIBED | set(_OWN)
        for configs in dynamic.stored.values():
            names |= set(configs)
    synonyms_wanted = getattr(request, "include_synonyms", False)
    entries = []
    for config in sorted(names):
        if keys is None or config in keys:
            entry = _entry(dynamic, config, name == DEFAULT_RESOURCE, synonyms_wanted)
            entry["config_type"] = entry["config_type"] or config_type(config)
            if getattr(request, "include_documentation", False):
                entry["documentation"] = _documentation(config)
            entries.append(entry)
    return entries


def _documentation(name: str) -> str | None:
    if name in _OWN:
        return _OWN[name].meaning
    return None if _equivalent(name) else NO_EQUIVALENT


def _own_type(name: str) -> int:
    """The ConfigType of own setting `name`, from its Settings field's type."""
    if name.endswith(_SECRET_ENDINGS):
        return _TYPES["PASSWORD"]
    declared = _FIELD_TYPES[_OWN[name].attr]
    if declared.startswith("bool"):
        return _TYPES["BOOLEAN"]
    if declared.startswith("float"):
        return _TYPES["DOUBLE"]
    if declared.startswith("int"):
        return _TYPES["LONG"] if _OWN[name].unit in ("ms", "bytes") else _TYPES["INT"]
    return _TYPES["STRING"]


def _shown(name: str, value: str | None) -> str | None:
    """An own URL setting's value without the password in it (user info or a query
    parameter); every other value as it is."""
    if value is None or name not in _OWN or not name.endswith((".url", ".endpoint")):
        return value
    parts = urlsplit(value)
    netloc = parts.netloc
    if parts.password is not None:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.partition(':')[0]}:***@{host}"
    query = parse_qsl(parts.query, keep_blank_values=True)
    hidden = [
        (key, "***" if any(word in key.lower() for word in _SECRET_QUERY_WORDS) else item)
        for key, item in query
    ]
    if netloc == parts.netloc and hidden == query:
        return value
    return urlunsplit(parts._replace(netloc=netloc, query=urlencode(hidden, safe="*/:")))


def _equivalent(name: str) -> bool:
    """Whether this broker has a setting of its own behind broker config `name`."""
    return name in BROKER_CONFIGS or name in _ATTRS or name in APPLIED


def _entry(
    dynamic: DynamicBrokerConfigs, name: str, default_only: bool, synonyms_wanted: bool
) -> dict[str, Any]:
    kafka = KAFKA_BROKER_CONFIGS.get(base_name(name))
    # A custom config, or a password, as Kafka hides them.
    sensitive = (
        (mode_of(name) is None and name not in _ATTRS)
        or (kafka is not None and kafka.type == "PASSWORD")
        or (name in _OWN and name.endswith(_SECRET_ENDINGS))
    )
    synonyms = dynamic.synonyms(name)
    if default_only:
        synonyms = [s for s in synonyms if s[2] == DYNAMIC_DEFAULT]
    value: str | None
    if sensitive:
        value = None
    elif name in NO_KAFKA_DEFAULT:  # null unless set by this very name, as in Kafka
        value = synonyms[0][1] if synonyms else None
    elif name in BROKER_CONFIGS:
        value = BROKER_CONFIGS[name](dynamic.settings)
    elif name in _SCALED:  # the hours forms: as given, else their default
        value = synonyms[0][1] if synonyms else None
    elif name in _ATTRS:
        setting = getattr(dynamic.settings, _ATTRS[name])
        # An empty setting stands for Kafka's none (a path, an issuer).
        none = setting is None or (setting == "" and kafka is not None and kafka.default is None)
        value = None if none else text(setting)
    else:
        value = synonyms[0][1] if synonyms else None
    if default_only and synonyms:
        value = synonyms[0][1]
    source = synonyms[0][2] if synonyms else DEFAULT
    return {
        "name": name,
        "value": _shown(name, value),
        "read_only": not accepted(name),
        "config_source": source,
        "is_default": source == DEFAULT,
        "is_sensitive": sensitive,
        "synonyms": [
            {"name": n, "value": None if sensitive else _shown(name, v), "source": s}
            for n, v, s in (synonyms if synonyms_wanted else [])
        ],
        "config_type": _own_type(name)
        if name in _OWN
        else _TYPES.get(kafka.type if kafka is not None else "", 0),
        "documentation": None,
    }


async def alter_broker(
    dynamic: DynamicBrokerConfigs, resource: Any, incremental: bool, validate_only: bool
) -> None:
    """Replace (AlterConfigs) or change (IncrementalAlterConfigs) a BROKER resource's
    dynamic configs; KafkaError with Kafka's code and message when refused."""

    def change(configs: dict[str, str]) -> dict[str, str]:
        if not incremental:
            return {c.name: c.value for c in resource.configs}
        for one in resource.configs:
            _apply_change(dynamic, configs, one)
        return configs

    await dynamic.alter(resource.resource_name, change, validate_only)


def _apply_change(dynamic: DynamicBrokerConfigs, configs: dict[str, str], change: Any) -> None:
    """One IncrementalAlterConfigs operation (ConfigAdminManager.prepareIncrementalConfigs)."""
    name, operation = change.name, change.config_operation
    if operation == SET:
        configs[name] = change.value
    elif operation == DELETE:
        configs.pop(name, None)
    else:
        verb = "append" if operation == APPEND else "subtract"
        kafka = KAFKA_BROKER_CONFIGS.get(name)
        if kafka is None:
            raise KafkaError(ErrorCode.invalid_config, f"Unknown config name: {name}")
        if kafka.type != "LIST":
            raise KafkaError(
                ErrorCode.invalid_config,
                f"Config value {verb} is not allowed for config key: {name}",
            )
        old = configs.get(name, dynamic.kafka_defaults().get(name, ""))
        items = old.split(",") if old else []
        given = change.value.split(",")
        if operation == APPEND:
            items += [item for item in given if item not in items]
        else:
            items = [item for item in items if item not in given]
        configs[name] = ",".join(items)
