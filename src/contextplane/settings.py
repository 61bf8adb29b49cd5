"""Broker settings: plain data, read from a properties file and the environment.

Kafka's own names are used where Kafka has one (`num.partitions`, `retention.ms`, ...).
Precedence: defaults < file < environment (`CONTEXTPLANE_` + the name upper-cased with
dots as underscores, e.g. CONTEXTPLANE_NUM_PARTITIONS) < explicit overrides.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contextplane import limits


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
    extra: dict[str, str] = field(default_factory=dict)

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


# Kafka property name -> Settings attribute.
_NAMES = {
    "data.dir": "data_dir",
    "log.dirs": "data_dir",
    "listener.host": "host",
    "listener.port": "port",
    "advertised.host": "advertised_host",
    "advertised.port": "advertised_port",
    "node.id": "node_id",
    "object.store.url": "object_store_url",
    "metadata.url": "metadata_url",
    "num.partitions": "num_partitions",
    "default.replication.factor": "default_replication_factor",
    "auto.create.topics.enable": "auto_create_topics_enable",
    "retention.ms": "retention_ms",
    "log.retention.ms": "retention_ms",
    "retention.bytes": "retention_bytes",
    "log.retention.bytes": "retention_bytes",
    "message.max.bytes": "message_max_bytes",
    "message.max.decompression.ratio": "message_max_decompression_ratio",
    "socket.request.max.bytes": "socket_request_max_bytes",
    "group.initial.rebalance.delay.ms": "group_initial_rebalance_delay_ms",
    "upload.bytes": "upload_bytes",
    "log.segment.bytes": "segment_bytes",
    "upload.interval.ms": "upload_interval_ms",
    "log.roll.ms": "segment_ms",
    "wal.fsync": "wal_fsync",
    "wal.segment.bytes": "wal_segment_bytes",
    "log.cache.bytes": "log_cache_bytes",
    "log.retention.check.interval.ms": "retention_check_interval_ms",
    # storage under pressure
    "memory.budget.bytes": "memory_budget_bytes",
    "wal.backlog.bytes": "wal_backlog_bytes",
    "metadata.reserved.bytes": "metadata_reserved_bytes",
    "object.store.request.timeout.ms": "object_store_request_timeout_ms",
    "shutdown.timeout.ms": "shutdown_timeout_ms",
    "connections.max.idle.ms": "connections_max_idle_ms",
    "max.connections": "max_connections",
    "max.connections.per.ip": "max_connections_per_ip",
    "max.connections.per.ip.overrides": "max_connections_per_ip_overrides",
    "queued.max.request.bytes": "queued_max_request_bytes",
    "request.receive.timeout.ms": "request_receive_timeout_ms",
}


class SettingsError(ValueError):
    """A setting's value or the config file's syntax is invalid; the message names it."""


def _coerce(attr: str, raw: Any) -> Any:
    kind = {f.name: f.type for f in dataclasses.fields(Settings)}[attr]
    if not isinstance(raw, str):
        return raw
    try:
        if kind == "Path":
            return Path(raw)
        if kind == "bool":
            if raw.lower() not in ("true", "false"):
                raise ValueError(raw)
            return raw.lower() == "true"
        if kind in ("int", "int | None"):
            return int(raw)
    except ValueError:
        raise SettingsError(f"setting {attr!r}: {raw!r} is not a valid {kind}") from None
    return raw


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
    raw: dict[str, Any] = {}
    if config_file is not None:
        raw.update(parse_properties(config_file.read_text()))
    env = os.environ if environ is None else environ
    for name in _NAMES:
        key = "CONTEXTPLANE_" + name.upper().replace(".", "_")
        if key in env:
            raw[name] = env[key]
    raw.update(overrides or {})
    values: dict[str, Any] = {}
    extra: dict[str, str] = {}
    attrs = {f.name for f in dataclasses.fields(Settings)}
    for name, value in raw.items():
        attr = _NAMES.get(name, name if name in attrs else None)
        if attr is None:
            extra[name] = str(value)
            continue
        values[attr] = _coerce(attr, value)
    return _check(Settings(**values, extra=extra))
