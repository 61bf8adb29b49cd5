"""Broker settings: plain data, read from a properties file, the environment and overrides.

Every setting is a row of `settings_table.SETTINGS` (Kafka's name where Kafka has one).
Precedence: defaults < file < environment (`CONTEXTPLANE_` + the name upper-cased with
dots as underscores, e.g. CONTEXTPLANE_NUM_PARTITIONS) < the command line (`--set` and
the flags `--data-dir`, `--host`, `--port`, `--object-store`, which must agree when both
name one setting). Every int setting's range is in the table, checked for every source.
Within one source, when several names set one field, Kafka's order decides
(`log.retention.ms` over `log.retention.minutes` over `log.retention.hours`).

A name that is not in the table is an error naming the closest known one, unless it is a
Kafka broker setting in `settings_table.IGNORED` (`zookeeper.*`, `num.network.threads`,
...): those have no effect here, are accepted so that Kafka's server.properties files keep
working, and are reported once at start.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from contextplane import limits, listener_settings, properties_file, settings_rules
from contextplane.properties_file import PropertiesSyntaxError, properties_lines
from contextplane.security import oauthbearer_settings, sasl_settings
from contextplane.settings_autobalancer import AutoBalancerFields
from contextplane.settings_cluster import ClusterFields
from contextplane.settings_consumer_groups import ConsumerGroupSettings
from contextplane.settings_hints import family_suggestion
from contextplane.settings_security import SECURITY_DERIVED, InterBrokerFields
from contextplane.settings_share_groups import ShareGroupFields
from contextplane.settings_table import (
    ENV_PREFIX,
    IGNORED,
    SETTINGS,
    TOOL_VARIABLES,
    UNSUPPORTED,
    Setting,
)


@dataclass(frozen=True)
class Settings(
    ShareGroupFields, ConsumerGroupSettings, InterBrokerFields, AutoBalancerFields, ClusterFields
):
    data_dir: Path = Path("data")
    host: str = "127.0.0.1"
    port: int = 9092
    # The HTTP surface beside the Kafka listener (/metrics), on the listener's host; -1: off.
    http_port: int = 8080
    http_request_head_timeout_ms: int = 30_000  # http_server.py's request-head deadline
    # The console's freshness page's context service ("": none); its object store prices.
    console_context_url: str = ""
    console_cost_prices: str = "aws-us-east-1"
    advertised_host: str | None = None
    advertised_port: int | None = None
    node_id: int = 1
    broker_rack: str | None = None  # free text, reported by Metadata and DescribeCluster
    replica_selector_class: str = ""  # KIP-392: Kafka's default keeps consumers on leaders
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
    max_request_partition_size_limit: int = limits.DESCRIBE_PARTITIONS_PER_RESPONSE
    group_initial_rebalance_delay_ms: int = 3000
    # KIP-1191's share-group dead-letter settings (broker/share_dead_letters.py).
    errors_deadletterqueue_auto_create_topics_enable: bool = False
    errors_deadletterqueue_topic_name_prefix: str = "dlq."
    offsets_topic_num_partitions: int = limits.OFFSETS_TOPIC_PARTITIONS
    offsets_topic_retention_ms: int = limits.OFFSETS_TOPIC_RETENTION_MS
    # Kafka's log.segment.bytes / log.roll.ms: retention deletes whole closed segments.
    segment_bytes: int = 1024 * 1024 * 1024
    segment_ms: int = 7 * 24 * 3600 * 1000
    # Upload bounds of a multi-partition object (time or size, whichever comes first).
    upload_bytes: int = limits.UPLOAD_BYTES_MAX
    upload_interval_ms: int = limits.UPLOAD_INTERVAL_MS
    # Catch-up reads from objects: coalescing, span and part sizes, GETs in flight.
    object_read_coalesce_bytes: int = limits.OBJECT_READ_COALESCE_BYTES
    object_read_span_bytes: int = limits.OBJECT_READ_SPAN_BYTES
    object_read_part_bytes: int = limits.OBJECT_READ_PART_BYTES
    object_read_concurrency: int = limits.OBJECT_READ_CONCURRENCY
    # Read-ahead and its window; catch-up fetches assembled at once; their send threads.
    object_read_ahead_enable: bool = True
    object_read_ahead_min_bytes: int = limits.OBJECT_READ_AHEAD_MIN_BYTES
    object_read_ahead_max_bytes: int = limits.OBJECT_READ_AHEAD_MAX_BYTES
    object_read_fetch_concurrency: int = limits.OBJECT_READ_FETCH_CONCURRENCY
    response_send_threads: int = limits.RESPONSE_SEND_THREADS
    # A partition's object index, loaded on first need, is dropped this long unused.
    object_index_idle_ms: int = limits.OBJECT_INDEX_IDLE_MS
    wal_fsync: bool = True
    # The WAL's medium: "" (files under data_dir/wal) or an object store URL (RFC 0004 §4).
    wal_url: str = ""
    wal_object_max_in_flight: int = limits.WAL_OBJECT_MAX_IN_FLIGHT
    wal_object_max_bytes: int = limits.WAL_OBJECT_BYTES_MAX
    wal_segment_bytes: int = limits.WAL_SEGMENT_BYTES
    # OpenTelemetry traces' OTLP/HTTP collector (tracing.py); empty: the OTEL_* variables.
    otel_exporter_otlp_endpoint: str = ""
    log_cache_bytes: int = limits.LOG_CACHE_BYTES_MAX
    retention_check_interval_ms: int = limits.RETENTION_CHECK_INTERVAL_MS
    # Storage under pressure: memory, WAL backlog, metadata disk reserve, deadlines.
    memory_budget_bytes: int = limits.MEMORY_BUDGET_BYTES
    wal_backlog_bytes: int = limits.WAL_BACKLOG_BYTES
    metadata_reserved_bytes: int = limits.METADATA_RESERVED_BYTES
    # A PostgreSQL metadata store's bounded waits and change notices (postgres_connection.py).
    metadata_postgresql_connect_timeout_ms: int = limits.METADATA_CONNECT_TIMEOUT_MS
    metadata_postgresql_call_timeout_ms: int = limits.METADATA_CALL_TIMEOUT_MS
    metadata_postgresql_keepalive_idle_ms: int = limits.METADATA_KEEPALIVE_IDLE_MS
    metadata_postgresql_reconnect_backoff_max_ms: int = limits.METADATA_RECONNECT_BACKOFF_MAX_MS
    metadata_postgresql_listen: bool = True
    object_store_request_timeout_ms: int = limits.OBJECT_STORE_REQUEST_TIMEOUT_MS
    shutdown_timeout_ms: int = limits.SHUTDOWN_TIMEOUT_MS
    # Connections and request buffering (Kafka's names and defaults but two bounds).
    connections_max_idle_ms: int = limits.CONNECTIONS_IDLE_MS_MAX
    max_connections: int = limits.CONNECTIONS_MAX
    max_connections_per_ip: int = limits.CONNECTIONS_MAX
    # "host:count,host:count", as Kafka's max.connections.per.ip.overrides.
    max_connections_per_ip_overrides: str = ""
    queued_max_request_bytes: int = limits.QUEUED_REQUEST_BYTES_MAX
    request_receive_timeout_ms: int = limits.REQUEST_RECEIVE_TIMEOUT_MS
    # Authorization (Kafka's names and defaults): empty = no authorizer, allow everything.
    authorizer_class_name: str = ""
    super_users: str = ""  # "User:admin;User:ops"
    allow_everyone_if_no_acl_found: bool = False
    # Client quotas: rates are measured over quota.window.num windows of this many seconds.
    quota_window_num: int = limits.QUOTA_WINDOW_NUM
    quota_window_size_seconds: int = limits.QUOTA_WINDOW_SIZE_SECONDS
    # TLS of SSL and SASL_SSL listeners (Kafka's names; `listener.name.<listener>.ssl.*`
    # overrides any of them for one listener: `listener_ssl`).
    ssl_keystore_type: str = "PEM"
    # The HMAC-SHA256 key of masking policies whose action is `hash` (broker/masking.py).
    masking_hmac_key: str = ""
    # Who may use the schema registry beside the broker (security/registry_access.py).
    registry_authentication_method: str = "NONE"
    registry_authentication_realm: str = "SchemaRegistry"
    # The registry's wait for `_schemas` at start (Confluent's kafkastore.init.timeout.ms).
    registry_kafkastore_init_timeout_ms: int = 60_000
    # HTTPS on the registry's port (services/schema_registry/https.py): PEM, as listeners'.
    registry_ssl_keystore_location: str = ""
    registry_ssl_key_password: str = ""
    registry_ssl_truststore_location: str = ""
    registry_ssl_client_authentication: str = "NONE"
    # Kafka client properties of the internal consumer that reads `_schemas` and the
    # masking policies from the broker leading them (broker/topic_follower.py).
    internal_client_config: str = ""
    ssl_keystore_location: str = ""
    ssl_keystore_password: str = ""
    ssl_key_password: str = ""
    ssl_keystore_certificate_chain: str = ""
    ssl_keystore_key: str = ""
    ssl_truststore_type: str = "PEM"
    ssl_truststore_location: str = ""
    ssl_truststore_password: str = ""
    ssl_truststore_certificates: str = ""
    ssl_enabled_protocols: str = "TLSv1.2,TLSv1.3"
    ssl_protocol: str = "TLSv1.3"
    ssl_client_auth: str = "none"
    ssl_principal_mapping_rules: str = "DEFAULT"
    # listener name -> {ssl setting name -> value}, from listener.name.<name>.ssl.*
    listener_ssl: dict[str, dict[str, str]] = field(default_factory=dict)
    # A listener without TLS (PLAINTEXT, SASL_PLAINTEXT) may bind beyond loopback.
    allow_plaintext_non_loopback: bool = False
    # The listeners served, from `listeners` and the settings around it (empty: one
    # PLAINTEXT listener on host:port). Derived, not a setting of its own.
    listener_specs: tuple[listener_settings.ListenerSpec, ...] = ()
    # SASL (Kafka's names and defaults; GSSAPI, Kafka's default mechanism, is refused on
    # a SASL listener: this broker has no Kerberos).
    sasl_enabled_mechanisms: str = "GSSAPI"
    sasl_server_max_receive_size: int = limits.SASL_RECEIVE_BYTES_MAX
    connection_failed_authentication_delay_ms: int = limits.FAILED_AUTHENTICATION_DELAY_MS
    connections_max_reauth_ms: int = 0
    # listener.name.<listener>.sasl.enabled.mechanisms and
    # listener.name.<listener>.<mechanism>.sasl.jaas.config as given (name -> value),
    # checked by security/sasl_settings.py. Derived, not a setting of its own.
    listener_sasl: dict[str, str] = field(default_factory=dict)
    # OAUTHBEARER token validation (Kafka's sasl.oauthbearer.* broker settings).
    sasl_oauthbearer_jwks_url: str = ""
    sasl_oauthbearer_jwks_refresh_ms: int = oauthbearer_settings.DEFAULT_REFRESH_MS
    sasl_oauthbearer_expected_issuer: str = ""
    sasl_oauthbearer_expected_audience: str = ""  # comma-separated
    sasl_oauthbearer_allow_unverified_issuer: bool = False
    sasl_oauthbearer_allow_unverified_audience: bool = False
    sasl_oauthbearer_clock_skew_seconds: int = oauthbearer_settings.DEFAULT_CLOCK_SKEW_SECONDS
    sasl_oauthbearer_sub_claim_name: str = "sub"
    sasl_oauthbearer_scope_claim_name: str = "scope"
    # The security audit and read receipts (audit_sink.py, read_receipts.py).
    audit_topic_retention_ms: int = limits.AUDIT_TOPIC_RETENTION_MS
    audit_topic_retention_bytes: int = limits.AUDIT_TOPIC_RETENTION_BYTES
    audit_denial_records_per_second: int = limits.AUDIT_DENIAL_RECORDS_PER_SECOND
    audit_read_receipts_retention_ms: int = limits.AUDIT_TOPIC_RETENTION_MS
    audit_read_receipts_retention_bytes: int = limits.AUDIT_READ_RECEIPTS_RETENTION_BYTES
    audit_file: str = ""  # also a JSON-lines file of the audit records
    audit_buffer_records: int = limits.AUDIT_BUFFER_RECORDS
    audit_flush_interval_ms: int = limits.AUDIT_FLUSH_INTERVAL_MS
    audit_overflow_policy: str = "fail-open"  # or "fail-closed"
    audit_allowed_topics: str = ""  # "orders,payments.*": allowed reads/writes audited
    audit_read_receipts_enable: bool = True
    audit_read_receipts_window_ms: int = limits.AUDIT_READ_RECEIPTS_WINDOW_MS
    # The transaction coordinator (coordinators/transactions.py).
    transaction_max_timeout_ms: int = limits.TRANSACTION_MAX_TIMEOUT_MS
    transaction_abort_timed_out_transaction_cleanup_interval_ms: int = (
        limits.TRANSACTION_ABORT_INTERVAL_MS
    )
    transactional_id_expiration_ms: int = limits.TRANSACTIONAL_ID_EXPIRATION_MS
    transaction_remove_expired_transaction_cleanup_interval_ms: int = (
        limits.TRANSACTION_REMOVE_EXPIRED_INTERVAL_MS
    )
    producer_id_expiration_ms: int = limits.PRODUCER_ID_EXPIRATION_MS
    producer_id_expiration_check_interval_ms: int = limits.PRODUCER_ID_EXPIRATION_CHECK_INTERVAL_MS
    # Deletion of unreferenced objects, the orphan sweep and the log cleaner
    # (storage/object_deleter.py, orphan_sweep.py, cleaner.py).
    log_segment_delete_delay_ms: int = limits.SEGMENT_DELETE_DELAY_MS
    object_store_orphan_min_age_ms: int = limits.ORPHAN_MIN_AGE_MS
    object_store_orphan_sweep_interval_ms: int = limits.ORPHAN_SWEEP_INTERVAL_MS
    log_cleaner_enable: bool = True
    log_cleaner_backoff_ms: int = limits.CLEANER_BACKOFF_MS
    log_cleaner_dedupe_buffer_size: int = limits.CLEANER_DEDUPE_BUFFER_BYTES
    log_cleaner_io_max_bytes_per_second: float = limits.CLEANER_IO_MAX_BYTES_PER_SECOND
    # Defaults of the topic configs the cleaner reads (a topic's own value overrides).
    log_cleaner_min_cleanable_ratio: float = limits.CLEANER_MIN_CLEANABLE_RATIO
    log_cleaner_delete_retention_ms: int = limits.CLEANER_DELETE_RETENTION_MS
    log_cleaner_min_compaction_lag_ms: int = limits.CLEANER_MIN_COMPACTION_LAG_MS
    log_cleaner_max_compaction_lag_ms: int = limits.CLEANER_MAX_COMPACTION_LAG_MS
    log_cleanup_policy: str = limits.CLEANUP_POLICY
    # Object compaction (storage/object_compactor.py, compaction_plan.py).
    object_compaction_enable: bool = True
    object_compaction_interval_ms: int = limits.OBJECT_COMPACTION_INTERVAL_MS
    object_compaction_min_age_ms: int = limits.OBJECT_COMPACTION_MIN_AGE_MS
    object_compaction_max_objects: int = limits.OBJECT_COMPACTION_MAX_OBJECTS
    object_compaction_stream_split_bytes: int = limits.OBJECT_COMPACTION_STREAM_SPLIT_BYTES
    object_compaction_stream_object_bytes: int = limits.OBJECT_COMPACTION_STREAM_OBJECT_BYTES
    object_compaction_merged_bytes: int = limits.OBJECT_COMPACTION_MERGED_BYTES
    object_compaction_live_ratio: float = limits.OBJECT_COMPACTION_LIVE_RATIO
    object_compaction_read_bytes_per_second: int = limits.OBJECT_COMPACTION_READ_BYTES_PER_SECOND
    # The benchmark's probes (broker/probes.py): a JSON-lines file, empty = off.
    debug_probe_file: str = ""
    # Kafka settings given that have no effect here: name -> why (reported at start).
    ignored: dict[str, str] = field(default_factory=dict)
    # The settings given (not defaults), by the name they were given as: DescribeConfigs
    # reports them as the broker's static configs (a topic config's synonyms).
    given: dict[str, str] = field(default_factory=dict)

    @property
    def advertised(self) -> tuple[str, int]:
        return (self.advertised_host or self.host, self.advertised_port or self.port)

    @property
    def listeners(self) -> tuple[listener_settings.ListenerSpec, ...]:
        """Every listener served, the first being the one `host`/`port` describe."""
        if self.listener_specs:
            return self.listener_specs
        return (
            listener_settings.ListenerSpec(
                "PLAINTEXT",
                "PLAINTEXT",
                self.host,
                self.port,
                self.advertised_host,
                self.advertised_port,
            ),
        )

    @property
    def connections_per_ip_overrides(self) -> dict[str, int]:
        return parse_connection_overrides(self.max_connections_per_ip_overrides)

    @property
    def resolved_object_store_url(self) -> str:
        return self.object_store_url or (self.data_dir / "objects").resolve().as_uri()

    @property
    def resolved_metadata_url(self) -> str:
        return self.metadata_url or f"sqlite:///{(self.data_dir / 'metadata.db').resolve()}"


# Kafka's ssl.* settings, each of which listener.name.<listener>.ssl.* may override.
_SSL_NAMES = frozenset(s.name for s in SETTINGS if s.name.startswith("ssl."))
# Settings fields that are not settings of their own: derived from others.
DERIVED_FIELDS = frozenset({"ignored", "given", "listener_specs"}) | SECURITY_DERIVED


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
_FIELD_TYPES = {f.name: str(f.type) for f in fields(Settings)}


def ignored_reason(name: str, value: object) -> str | None:
    """Why a Kafka setting has no effect here, or None when it is not one; raises when it
    must not be ignored (a security setting, or a value that would change behaviour)."""
    # A setting named exactly (ssl.endpoint.identification.algorithm) wins over a
    # refused family (ssl.*) it belongs to.
    exact = [i for i in IGNORED if i.pattern == name]
    if not exact:
        for unsupported in UNSUPPORTED:
            if unsupported.matches(name):
                message = f"setting {name!r} is not supported: {unsupported.reason}"
                suggestion = family_suggestion(name)
                if suggestion is not None:
                    message += f"; did you mean {suggestion!r}?"
                raise SettingsError(message)
    for ignored in exact or IGNORED:
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
    known += listener_settings.NAMES
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
    by_env.update({env_name(name): name for name in listener_settings.NAMES})
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


# Settings with a fixed set of values (case-insensitive; "" is unset), checked where they
# are read so that a file's error names its line.
_CHOICES = {
    "ssl.client.auth": ("", "required", "requested", "none"),
    "contextplane.registry.ssl.client.authentication": ("", "required", "requested", "none"),
}
# LIST settings whose items have a fixed set of values (Kafka's ValidList); the value is
# kept trimmed and without repeats, as the topic config it is the default of.
_LIST_CHOICES = {"log.cleanup.policy": ("compact", "delete")}


def _checked_list(name: str, raw: str, allowed: tuple[str, ...]) -> str:
    items = [item.strip() for item in raw.split(",")] if raw.strip() else []
    for item in items:
        if item not in allowed:
            raise SettingsError(
                f"setting {name!r}: {raw!r}: each item must be one of {', '.join(allowed)}"
            )
    return ",".join(dict.fromkeys(items))


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
            elif kind == "float":  # Java's Double.parseDouble: "1e6", "Infinity"
                value = float(text)
                if value != value:
                    raise ValueError(text)
            else:
                value = text
        except ValueError:
            readable = {"bool": "boolean (true or false)", "int | None": "int"}.get(kind, kind)
            raise SettingsError(f"setting {name!r}: {raw!r} is not a valid {readable}") from None
    choices = _CHOICES.get(setting.name)
    if choices is not None and str(value).strip().lower() not in choices:
        raise SettingsError(
            f"setting {name!r}: {raw!r} is not one of {', '.join(c for c in choices if c)}"
        )
    list_choices = _LIST_CHOICES.get(setting.name)
    if list_choices is not None:
        value = _checked_list(name, str(value), list_choices)
    if isinstance(value, int | float) and not isinstance(value, bool):
        _check_range(setting, name, value)
    if setting.scale != 1 and isinstance(value, int):
        value = -1 if value < 0 else value * setting.scale
    return value


def _check_range(setting: Setting, name: str, value: float) -> None:
    low, high = setting.low, setting.high
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"[{low}, {high}]" if high is not None else f"{low} or more"
        raise SettingsError(f"setting {name!r}: {value} is out of range: {bounds}")


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


# The authorizer.class.name values this broker implements.
def _check(settings: Settings) -> Settings:
    """Checks across settings, beyond each one's range in the table."""
    problem = settings_rules.first_problem(settings)
    if problem is not None:
        raise SettingsError(problem)
    return settings


def _read_config(path: Path) -> list[tuple[str, str, str]]:
    """(origin, name, value) of each entry of a properties file; origin is file:line."""
    resolved = path.expanduser().resolve()
    try:
        text = properties_file.read_properties_text(resolved)
    except FileNotFoundError:
        raise SettingsError(f"config file not found: {resolved}") from None
    except OSError as exc:
        raise SettingsError(f"config file {resolved}: {exc.strerror}") from None
    try:
        return [(f"{path}:{n}", name, value) for n, name, value in properties_lines(text)]
    except PropertiesSyntaxError as exc:
        raise SettingsError(f"{path}: {exc}") from None


def load_settings(
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: dict[str, Any] | None = None,
    flags: dict[str, tuple[str, str]] | None = None,
) -> Settings:
    """Defaults < file < environment < command line. The command line is `overrides`
    (`--set`) and `flags` (flag -> (setting, value), e.g. "--port" -> ("listener.port",
    "9093")); a flag and `--set` that set one setting to different values are an error."""
    sources: list[tuple[str, list[tuple[str, str, Any]]]] = []
    if config_file is not None:
        sources.append((str(config_file), _read_config(config_file)))
    environment = _from_environment(os.environ if environ is None else environ)
    sources.append(("the environment", [(env_name(n), n, v) for n, v in environment.items()]))
    command_line = [("--set", name, value) for name, value in (overrides or {}).items()]
    command_line += [(flag, name, value) for flag, (name, value) in (flags or {}).items()]
    sources.append(("the command line", command_line))
    values: dict[str, Any] = {}
    # attr -> how it was given, for messages: "listener.port (--port)".
    given_as: dict[str, str] = {}
    # attr -> (the name it was given as, its value): a later source replaces an earlier.
    given_names: dict[str, tuple[str, str]] = {}
    ignored: dict[str, str] = {}
    listeners: dict[str, str] = {}
    listener_ssl: dict[str, dict[str, str]] = {}
    listener_sasl: dict[str, str] = {}
    for origin, entries in sources:
        chosen: dict[str, tuple[int, Setting, str, str, Any]] = {}
        for where, name, value in entries:
            known = _BY_NAME.get(name)
            if known is None:
                if name in listener_settings.NAMES:
                    listeners[name] = str(value)
                    continue
                if sasl_settings.is_listener_sasl_setting(name):
                    listener_sasl[name] = str(value)
                    continue
                per_listener = listener_settings.listener_ssl_name(name, _SSL_NAMES)
                if per_listener is not None:
                    listener, ssl_name = per_listener
                    listener_ssl.setdefault(listener, {})[ssl_name] = str(value)
                    continue
                try:
                    reason = ignored_reason(name, value)
                except SettingsError as exc:
                    raise _located(exc, where, origin) from None
                if reason is None:
                    raise _unknown(name, where if origin != "the command line" else "--set")
                ignored[name] = reason
                continue
            rank, setting = known
            current = chosen.get(setting.attr)
            if current is not None and origin == "the command line" and current[3] != where:
                _same_on_command_line(setting, current, (rank, setting, name, where, value))
            if current is None or rank < current[0]:
                chosen[setting.attr] = (rank, setting, name, where, value)
        for attr, (_, setting, name, where, value) in chosen.items():
            try:
                values[attr] = _coerce(setting, name, value)
            except SettingsError as exc:
                raise _located(exc, where, origin) from None
            given_as[attr] = name if where in ("--set", name) else f"{name} ({where})"
            given_names[attr] = (name, str(value))
    try:
        found = listener_settings.read(listeners, listener_settings.controller_names(sources))
        values["listener_specs"] = listener_settings.resolve(
            found, listeners, values, given_as, (Settings.host, Settings.port)
        )
        values["listener_ssl"] = listener_settings.check_listener_ssl(
            listener_ssl, values["listener_specs"]
        )
    except listener_settings.ListenerError as exc:
        raise SettingsError(str(exc)) from None
    values.update(found.inter_broker)  # inter_broker_listener and inter_broker_setting
    ignored.update({name: f"no effect: {why}" for name, why in found.unused.items()})
    given = dict(given_names.values())
    return _check(Settings(**values, listener_sasl=listener_sasl, ignored=ignored, given=given))


def _located(exc: SettingsError, where: str, origin: str) -> SettingsError:
    """A file's error names the file and line, the environment's the variable; the
    command line's names itself already."""
    if origin == "the command line":
        return exc
    if origin == "the environment":
        return SettingsError(f"environment variable {where}: {exc}")
    return SettingsError(f"{where}: {exc}")


def _same_on_command_line(
    setting: Setting,
    first: tuple[int, Setting, str, str, Any],
    second: tuple[int, Setting, str, str, Any],
) -> None:
    """A flag and --set (or two names of one setting) on one command line must agree."""
    a = _coerce(setting, first[2], first[4])
    b = _coerce(setting, second[2], second[4])
    if a != b:
        raise SettingsError(
            f"{_spelt(first)} and {_spelt(second)} disagree: give {setting.name} once"
        )


def _spelt(entry: tuple[int, Setting, str, str, Any]) -> str:
    _, _, name, where, value = entry
    return f"--set {name}={value}" if where == "--set" else f"{where} {value}"
