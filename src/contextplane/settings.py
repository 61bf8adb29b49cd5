"""Broker settings: plain data, read from a properties file, the environment and overrides.

Every setting is a row of `settings_table.SETTINGS` (Kafka's name where Kafka has one).
Precedence: defaults < file < environment (`CONTEXTPLANE_` + the name upper-cased with
dots as underscores, e.g. CONTEXTPLANE_NUM_PARTITIONS) < explicit overrides (`--set`).
Within one source, when several names set one field, Kafka's order decides
(`log.retention.ms` over `log.retention.minutes` over `log.retention.hours`).

A name that is not in the table is an error naming the closest known one, unless it is a
Kafka broker setting in `settings_table.IGNORED` (`zookeeper.*`, `num.network.threads`,
...): those have no effect here, are accepted so that Kafka's server.properties files keep
working, and are reported once at start.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contextplane import limits
from contextplane.settings_table import (
    ENV_PREFIX,
    IGNORED,
    SETTINGS,
    TOOL_VARIABLES,
    UNSUPPORTED,
    Setting,
)


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("data")
    host: str = "127.0.0.1"
    port: int = 9092
    advertised_host: str | None = None
    advertised_port: int | None = None
    node_id: int = 1
    # "file://" (under data_dir/objects), "memory://", or "s3://bucket?endpoint=..."
    object_store_url: str = ""
    metadata_url: str = ""
    num_partitions: int = 1
    default_replication_factor: int = 1
    auto_create_topics_enable: bool = True
    retention_ms: int = 7 * 24 * 3600 * 1000
    retention_bytes: int = -1
    message_max_bytes: int = limits.MESSAGE_BYTES_MAX
    # A batch's records may decompress to at most this many times max.message.bytes.
    message_max_decompression_ratio: int = limits.MESSAGE_DECOMPRESSION_RATIO_MAX
    socket_request_max_bytes: int = limits.SOCKET_REQUEST_BYTES_MAX
    # The most one Fetch response carries (Kafka's broker fetch.max.bytes).
    fetch_max_bytes: int = limits.FETCH_BYTES_MAX
    group_initial_rebalance_delay_ms: int = 3000
    # Kafka's log.segment.bytes / log.roll.ms: retention deletes whole closed segments.
    segment_bytes: int = 1024 * 1024 * 1024
    segment_ms: int = 7 * 24 * 3600 * 1000
    # Upload bounds of a multi-partition object (time or size, whichever comes first).
    upload_bytes: int = limits.UPLOAD_BYTES_MAX
    upload_interval_ms: int = limits.UPLOAD_INTERVAL_MS
    wal_fsync: bool = True
    wal_segment_bytes: int = limits.WAL_SEGMENT_BYTES
    log_cache_bytes: int = limits.LOG_CACHE_BYTES_MAX
    retention_check_interval_ms: int = limits.RETENTION_CHECK_INTERVAL_MS
    # Storage under pressure: memory and WAL backlog bounds, metadata disk reserve,
    # object store request bound, shutdown deadline.
    memory_budget_bytes: int = limits.MEMORY_BUDGET_BYTES
    wal_backlog_bytes: int = limits.WAL_BACKLOG_BYTES
    metadata_reserved_bytes: int = limits.METADATA_RESERVED_BYTES
    object_store_request_timeout_ms: int = limits.OBJECT_STORE_REQUEST_TIMEOUT_MS
    shutdown_timeout_ms: int = limits.SHUTDOWN_TIMEOUT_MS
    # Connections and request buffering (Kafka's names and, but for the request bytes
    # bound and the receive deadline, Kafka's defaults).
    connections_max_idle_ms: int = limits.CONNECTIONS_IDLE_MS_MAX
    max_connections: int = limits.CONNECTIONS_MAX
    max_connections_per_ip: int = limits.CONNECTIONS_MAX
    # "host:count,host:count", as Kafka's max.connections.per.ip.overrides.
    max_connections_per_ip_overrides: str = ""
    queued_max_request_bytes: int = limits.QUEUED_REQUEST_BYTES_MAX
    request_receive_timeout_ms: int = limits.REQUEST_RECEIVE_TIMEOUT_MS
    # Kafka settings given that have no effect here: name -> why (reported at start).
    ignored: dict[str, str] = field(default_factory=dict)

    @property
    def advertised(self) -> tuple[str, int]:
        return (self.advertised_host or self.host, self.advertised_port or self.port)

    @property
    def connections_per_ip_overrides(self) -> dict[str, int]:
        return parse_connection_overrides(self.max_connections_per_ip_overrides)

    @property
    def resolved_object_store_url(self) -> str:
        return self.object_store_url or (self.data_dir / "objects").resolve().as_uri()

    @property
    def resolved_metadata_url(self) -> str:
        return self.metadata_url or f"sqlite:///{(self.data_dir / 'metadata.db').resolve()}"


class SettingsError(ValueError):
    """A setting's name or value, or the config file's syntax, is invalid; the message
    names it."""


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper().replace(".", "_")


# Every accepted name -> (precedence within one source, its row).
_BY_NAME: dict[str, tuple[int, Setting]] = {
    name: (rank, setting)
    for rank, (name, setting) in enumerate(
        (name, setting) for setting in SETTINGS for name in setting.names
    )
}
_FIELD_TYPES = {f.name: str(f.type) for f in dataclasses.fields(Settings)}


def ignored_reason(name: str, value: object) -> str | None:
    """Why a Kafka setting has no effect here, or None when it is not one; raises when it
    must not be ignored (a security setting, or a value that would change behaviour)."""
    for unsupported in UNSUPPORTED:
        if unsupported.matches(name):
            raise SettingsError(f"setting {name!r} is not supported: {unsupported.reason}")
    for ignored in IGNORED:
        if ignored.matches(name):
            if ignored.accepts and str(value).strip().lower() not in ignored.accepts:
                raise SettingsError(
                    f"setting {name}={value} is not supported: {ignored.reason} "
                    f"(accepted: {', '.join(ignored.accepts)})"
                )
            return f"no effect: {ignored.reason}"
    return None


def _closest(name: str, candidates: list[str]) -> str | None:
    matches = difflib.get_close_matches(name, candidates, n=1, cutoff=0.75)
    return matches[0] if matches else None


def _unknown(name: str, origin: str) -> SettingsError:
    known = list(_BY_NAME) + [i.pattern for i in IGNORED if not i.pattern.endswith("*")]
    message = f"unknown setting {name!r}"
    suggestion = _closest(name, known)
    if suggestion is not None:
        message += f"; did you mean {suggestion!r}?"
    else:
        message += " (the settings are listed in README.md)"
    return SettingsError(message if origin == "--set" else f"{origin}: {message}")


def _from_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """Settings given as CONTEXTPLANE_<NAME> variables; an unknown one is an error."""
    by_env = {env_name(name): name for name in _BY_NAME}
    by_env.update({env_name(i.pattern): i.pattern for i in IGNORED if "*" not in i.pattern})
    found: dict[str, str] = {}
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX) or key in TOOL_VARIABLES:
            continue
        name = by_env.get(key)
        if name is None:
            prefixes = [env_name(i.pattern[:-1]) for i in IGNORED if i.pattern.endswith("*")]
            if any(key.startswith(prefix) for prefix in prefixes):
                name = key.removeprefix(ENV_PREFIX).lower().replace("_", ".")
            else:
                message = f"unknown setting in the environment: {key}"
                suggestion = _closest(key, list(by_env))
                if suggestion is not None:
                    message += f"; did you mean {suggestion}?"
                raise SettingsError(message)
        found[name] = value
    return found


def _coerce(setting: Setting, name: str, raw: Any) -> Any:
    kind = _FIELD_TYPES[setting.attr]
    if not isinstance(raw, str):
        value: Any = raw
    else:
        text = raw.strip()
        if kind == "Path" and "," in text:
            raise SettingsError(f"setting {name!r}: {raw!r}: this broker uses one directory")
        try:
            if kind == "Path":
                value = Path(text)
            elif kind == "bool":
                if text.lower() not in ("true", "false"):
                    raise ValueError(text)
                value = text.lower() == "true"
            elif kind in ("int", "int | None"):
                value = int(text)
            else:
                value = text
        except ValueError:
            readable = {"bool": "boolean (true or false)", "int | None": "int"}.get(kind, kind)
            raise SettingsError(f"setting {name!r}: {raw!r} is not a valid {readable}") from None
    if setting.scale != 1 and isinstance(value, int):
        value = -1 if value < 0 else value * setting.scale
    return value


def parse_connection_overrides(text: str) -> dict[str, int]:
    """Kafka's max.connections.per.ip.overrides: "host:count,host:count" (the count
    follows the last colon, so IPv6 addresses need no brackets)."""
    overrides: dict[str, int] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        host, sep, count = item.rpartition(":")
        host = host.strip().removeprefix("[").removesuffix("]")
        try:
            value = int(count)
        except ValueError:
            value = -1
        if not sep or not host or value < 0:
            raise SettingsError(
                f"max.connections.per.ip.overrides: {item!r} is not host:count "
                "(a count of 0 or more)"
            )
        overrides[host] = value
    return overrides


def _check(settings: Settings) -> Settings:
    """Ranges Kafka checks at start-up, so a typo fails loudly instead of refusing clients."""
    for name, value, low in (
        ("connections.max.idle.ms", settings.connections_max_idle_ms, 1),
        ("max.connections", settings.max_connections, 0),
        ("max.connections.per.ip", settings.max_connections_per_ip, 0),
        ("request.receive.timeout.ms", settings.request_receive_timeout_ms, 1),
        ("fetch.max.bytes", settings.fetch_max_bytes, 0),
    ):
        if value < low:
            raise SettingsError(f"{name}: {value} is below the minimum of {low}")
    if settings.queued_max_request_bytes == 0 or settings.queued_max_request_bytes < -1:
        raise SettingsError("queued.max.request.bytes: must be -1 (no bound) or positive")
    overrides = settings.connections_per_ip_overrides
    if settings.max_connections_per_ip == 0 and not overrides:
        raise SettingsError(
            "max.connections.per.ip can be set to zero only if "
            "max.connections.per.ip.overrides property is set."
        )
    return settings


def parse_properties(text: str) -> dict[str, str]:
    values = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith(("#", "!")):
            continue
        sep = min((i for i in (line.find("="), line.find(":")) if i >= 0), default=-1)
        if sep < 0:
            raise SettingsError(f"line {number}: expected name=value, got {line!r}")
        values[line[:sep].strip()] = line[sep + 1 :].strip()
    return values


def load_settings(
    config_file: Path | None = None,
    environ: dict[str, str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> Settings:
    sources: list[tuple[str, dict[str, Any]]] = []
    if config_file is not None:
        sources.append((str(config_file), parse_properties(config_file.read_text())))
    environment = _from_environment(os.environ if environ is None else environ)
    sources.append(("the environment", environment))
    sources.append(("--set", dict(overrides or {})))
    values: dict[str, Any] = {}
    ignored: dict[str, str] = {}
    for origin, given in sources:
        chosen: dict[str, tuple[int, Setting, str, Any]] = {}
        for name, value in given.items():
            known = _BY_NAME.get(name)
            if known is None:
                reason = ignored_reason(name, value)
                if reason is None:
                    raise _unknown(name, origin)
                ignored[name] = reason
                continue
            rank, setting = known
            current = chosen.get(setting.attr)
            if current is None or rank < current[0]:
                chosen[setting.attr] = (rank, setting, name, value)
        for attr, (_, setting, name, value) in chosen.items():
            values[attr] = _coerce(setting, name, value)
    return _check(Settings(**values, ignored=ignored))
