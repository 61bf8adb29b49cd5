"""The table of every broker setting, and of the Kafka broker settings that have no effect here.

`SETTINGS` names each setting (Kafka's name where Kafka has one), the `Settings` field it sets,
its unit and its meaning; type and default are the field's. The README's settings table is
rendered from it (`python -m contextplane.settings_doc --update-readme README.md`), and a test
fails when the two disagree. `IGNORED` (kept in `kafka_settings_ignored.py`) lists Kafka broker
settings accepted with no effect, so Kafka's server.properties files keep working; `UNSUPPORTED`
lists those that are refused because ignoring them would change what a client may do.
"""

from __future__ import annotations

from contextplane.kafka_settings_ignored import IGNORED, SASL_REFUSED, KafkaSetting
from contextplane.limits import INT_MAX
from contextplane.setting import Setting
from contextplane.settings_audit import AUDIT_SETTINGS
from contextplane.settings_autobalancer import AUTOBALANCER_SETTINGS
from contextplane.settings_cleaner import CLEANER_SETTINGS
from contextplane.settings_compaction import COMPACTION_SETTINGS
from contextplane.settings_consumer_groups import CONSUMER_GROUP_SETTINGS
from contextplane.settings_oauthbearer import OAUTHBEARER_SETTINGS
from contextplane.settings_object_reads import OBJECT_READ_SETTINGS
from contextplane.settings_object_wal import OBJECT_WAL_SETTINGS
from contextplane.settings_security import SECURITY_SETTINGS
from contextplane.settings_share_groups import SHARE_GROUP_SETTINGS
from contextplane.settings_telemetry import TELEMETRY_SETTINGS
from contextplane.settings_transactions import TRANSACTION_SETTINGS as TXN_SETTINGS

__all__ = [
    "ENV_PREFIX",
    "IGNORED",
    "INT_MAX",
    "SETTINGS",
    "TOOL_VARIABLES",
    "UNSUPPORTED",
    "KafkaSetting",
    "Setting",
]

ENV_PREFIX = "CONTEXTPLANE_"

SETTINGS: tuple[Setting, ...] = (
    Setting(
        "log.dirs",
        "data_dir",
        "",
        "the one data directory: metadata, WAL and `file://` objects",
        aliases=("log.dir", "data.dir"),
        default_text="`./data`",
    ),
    Setting("listener.host", "host", "", "the address the listener binds"),
    Setting(
        "listener.port", "port", "", "the listener's port (0: any free port)", low=0, high=65535
    ),
    Setting(
        "http.port",
        "http_port",
        "",
        "the HTTP port on the listener's host that serves the web console at / and "
        "Prometheus metrics at /metrics (-1: off; the default port taken is a warning, a port "
        "given and taken an error)",
        low=-1,
        high=65535,
    ),
    Setting(
        "http.request.head.timeout.ms",
        "http_request_head_timeout_ms",
        "ms",
        "how long a connection to `http.port` has to send a request's line and headers,"
        " from its accept or its last answer, before it is dropped (a client trickling"
        " bytes holds nothing longer)",
        low=1,
        high=3_600_000,
    ),
    Setting(
        "console.context.url",
        "console_context_url",
        "",
        "the context service (`contextplane context`) whose `/v1/views` the console's view"
        " freshness page shows: `http://host:port`",
        default_text="none (the page says how to set it)",
    ),
    Setting(
        "console.cost.prices",
        "console_cost_prices",
        "",
        "the price table the console's object store page prices usage with: a name of"
        " `deploy/prices/` (its newest) or a TOML file, as `contextplane cost --prices`",
    ),
    Setting(
        "advertised.host",
        "advertised_host",
        "",
        "the host Metadata and FindCoordinator tell clients",
        default_text="`listener.host`",
    ),
    Setting(
        "advertised.port",
        "advertised_port",
        "",
        "the port Metadata and FindCoordinator tell clients",
        default_text="the bound port",
        low=1,
        high=65535,
    ),
    Setting(
        "node.id", "node_id", "", "this broker's id", aliases=("broker.id",), low=0, high=INT_MAX
    ),
    Setting(
        "broker.rack",
        "broker_rack",
        "",
        "this broker's rack (free text), as Metadata and DescribeCluster report it",
        default_text="none",
    ),
    Setting(
        "replica.selector.class",
        "replica_selector_class",
        "",
        "which broker a consumer fetches from (KIP-392): empty or "
        "`org.apache.kafka.common.replica.LeaderSelector`, the leader (Kafka's default); "
        "`org.apache.kafka.common.replica.RackAwareReplicaSelector`, a live broker of the "
        "consumer's rack serving uploaded data, when its rack differs from the leader's",
        default_text="empty (the leader)",
    ),
    Setting(
        "broker.heartbeat.interval.ms",
        "broker_heartbeat_interval_ms",
        "ms",
        "how often this broker renews its lease in the broker registry",
        low=1,
    ),
    Setting(
        "broker.session.timeout.ms",
        "broker_session_timeout_ms",
        "ms",
        "the registry lease: a broker not heard from for this long is no longer listed,"
        " and its node.id may be taken",
        low=1,
    ),
    Setting(
        "partition.move.timeout.ms",
        "partition_move_timeout_ms",
        "ms",
        "a planned move whose source has not uploaded the partition's tail within this long is"
        " abandoned: the source serves it again, and its target takes it over only when the"
        " source's lease expires",
        low=1,
    ),
    Setting(
        "controlled.shutdown.enable",
        "controlled_shutdown_enable",
        "",
        "a clean stop in a cluster first hands over every partition this broker leads to the"
        " other live brokers (within shutdown.timeout.ms), as Kafka's controlled shutdown;"
        " false stops without: its partitions wait for its next start, offline meanwhile",
    ),
    Setting(
        "zone.produce.proxy.enable",
        "zone_produce_proxy_enable",
        "",
        "in a cluster with broker.rack set, a client of this broker's zone (a client.id"
        " token `contextplane_az=`, `ws_az=` or `automq_az=`) is told this broker leads the"
        " partitions led in other zones: it writes them here and this broker hands their"
        " records to the leader through the object store (ZoneProduce), so no record byte"
        " crosses zones; reads are served here from uploaded data (as AutoMQ's zone router)",
    ),
    Setting(
        "object.store.url",
        "object_store_url",
        "",
        "`file://`, `memory://` (tests) or `s3://bucket?endpoint=...&region=...`",
        default_text="`file://<log.dirs>/objects`",
    ),
    Setting(
        "metadata.url",
        "metadata_url",
        "",
        "the metadata store: `sqlite:///path` or `postgresql://user[:password]@host:port/db`"
        " (`--metadata`)",
        default_text="`sqlite:///<log.dirs>/metadata.db`",
    ),
    Setting(
        "num.partitions",
        "num_partitions",
        "",
        "partitions of an auto-created topic, or of CreateTopics with -1",
        low=1,
        high=INT_MAX,
    ),
    Setting(
        "default.replication.factor",
        "default_replication_factor",
        "",
        "replication factor of CreateTopics with -1 (durability comes from the WAL and "
        "object storage: a topic has one replica; with wal.url a CreateTopics may ask for"
        " up to the registered brokers, for tools that ask for 3, and still gets one)",
        low=1,
        high=1,
    ),
    Setting(
        "auto.create.topics.enable",
        "auto_create_topics_enable",
        "",
        "Metadata for an unknown topic creates it",
    ),
    Setting(
        "log.retention.ms",
        "retention_ms",
        "ms",
        "delete closed segments whose newest record is older than this (topic "
        "`retention.ms` overrides); -1: no limit",
        aliases=("retention.ms",),
        low=-1,
    ),
    Setting(
        "log.retention.minutes",
        "retention_ms",
        "minutes",
        "`log.retention.ms` in minutes, when that is not given",
        scale=60_000,
        default_text="unset",
        low=-1,
        high=INT_MAX,
    ),
    Setting(
        "log.retention.hours",
        "retention_ms",
        "hours",
        "`log.retention.ms` in hours, when neither that nor `log.retention.minutes` is given",
        scale=3_600_000,
        low=-1,
        high=INT_MAX,
    ),
    Setting(
        "log.retention.bytes",
        "retention_bytes",
        "bytes",
        "keep at most this many bytes per partition (topic `retention.bytes` overrides); "
        "-1: no limit",
        aliases=("retention.bytes",),
        low=-1,
    ),
    Setting(
        "log.retention.check.interval.ms",
        "retention_check_interval_ms",
        "ms",
        "how often retention runs (Kafka's default is 300000)",
        low=1,
    ),
    Setting(
        "log.segment.bytes",
        "segment_bytes",
        "bytes",
        "segment size for retention (topic `segment.bytes` overrides): only closed segments "
        "are deleted, as in Kafka",
        low=1,
        high=INT_MAX,
    ),
    Setting(
        "log.roll.ms",
        "segment_ms",
        "ms",
        "segment age for retention (topic `segment.ms` overrides)",
        low=1,
    ),
    Setting(
        "log.roll.hours",
        "segment_ms",
        "hours",
        "`log.roll.ms` in hours, when that is not given",
        scale=3_600_000,
        low=1,
        high=INT_MAX,
    ),
    Setting(
        "message.max.bytes",
        "message_max_bytes",
        "bytes",
        "largest record batch (topic `max.message.bytes` overrides)",
        low=0,
        high=INT_MAX,
    ),
    Setting(
        "message.max.decompression.ratio",
        "message_max_decompression_ratio",
        "",
        "a compressed batch whose records decompress to more than this many times the "
        "topic's `max.message.bytes` is refused (MESSAGE_TOO_LARGE); decompression stops there",
        low=1,
    ),
    Setting(
        "socket.request.max.bytes",
        "socket_request_max_bytes",
        "bytes",
        "largest request frame; larger ones close the connection, as does a request string "
        "(a name, an id) longer than 32,767 bytes, Kafka's fixed bound",
        low=1,
        high=INT_MAX,
    ),
    Setting(
        "fetch.max.bytes",
        "fetch_max_bytes",
        "bytes",
        "most bytes of record batches in one Fetch response, whatever the request's "
        "max_bytes asks (still at least one batch, so a consumer progresses)",
        low=0,
        high=INT_MAX,
    ),
    Setting(
        "max.request.partition.size.limit",
        "max_request_partition_size_limit",
        "",
        "most partitions one DescribeTopicPartitions response lists, whatever the "
        "request's limit asks (the rest are paged with its cursor)",
        low=1,
        high=INT_MAX,
    ),
    Setting(
        "group.initial.rebalance.delay.ms",
        "group_initial_rebalance_delay_ms",
        "ms",
        "wait for more members before the first rebalance of a group",
        low=0,
        high=INT_MAX,
    ),
    Setting(
        "offsets.topic.num.partitions",
        "offsets_topic_num_partitions",
        "",
        "partitions of the read-only internal topic `__consumer_offsets`, fixed when it is "
        "created (at the first start)",
        low=1,
        high=INT_MAX,
    ),
    Setting(
        "offsets.topic.retention.ms",
        "offsets_topic_retention_ms",
        "ms",
        "`retention.ms` of `__consumer_offsets` when it is created; it applies only if an "
        "operator adds `delete` to the topic's `cleanup.policy` (`compact`, as in Kafka), and "
        "then every half of it the coordinator writes a snapshot of every live offset and "
        "group again; -1: no limit (precedent: Kafka's `offsets.retention.minutes` default, "
        "7 days)",
        low=-1,
    ),
    Setting(
        "upload.bytes",
        "upload_bytes",
        "bytes",
        "upload a multi-partition object at this many pending bytes (or at a quarter of "
        "`memory.budget.bytes`, if less); the batch that reaches it is the object's last",
        low=1,
    ),
    Setting(
        "upload.interval.ms",
        "upload_interval_ms",
        "ms",
        "... or once the oldest pending byte has waited this long (the WAL already holds it "
        "durably; checked every 250 ms)",
        low=1,
    ),
    *OBJECT_READ_SETTINGS,
    Setting(
        "wal.fsync",
        "wal_fsync",
        "",
        "fdatasync the WAL before acknowledging (turn off only for experiments)",
    ),
    Setting(
        "wal.segment.bytes",
        "wal_segment_bytes",
        "bytes",
        "a WAL segment is rolled at this size; segments are deleted once uploaded",
        low=1,
    ),
    Setting(
        "memory.budget.bytes",
        "memory_budget_bytes",
        "bytes",
        "one budget for the log cache, block cache, in-flight uploads and reads, requests "
        "read and not yet handled (at most a quarter of it, whatever "
        "queued.max.request.bytes says), responses not yet read by their clients and "
        "object range records; batches waiting for upload may leave memory (the WAL has them)",
        low=1,
    ),
    Setting(
        "log.cache.bytes",
        "log_cache_bytes",
        "bytes",
        "cap on the log cache inside the memory budget",
        low=0,
    ),
    Setting(
        "wal.backlog.bytes",
        "wal_backlog_bytes",
        "bytes",
        "un-uploaded WAL bytes at which produce is refused (KAFKA_STORAGE_ERROR, retriable); "
        "from half of it (or of the memory budget) produce is throttled (`throttle_time_ms`, "
        "up to 1 s)",
        low=1,
    ),
    Setting(
        "metadata.reserved.bytes",
        "metadata_reserved_bytes",
        "bytes",
        "disk space kept for metadata commits, released when the disk is full so uploads can "
        "drain the WAL (what is free at a stop is kept for the next start)",
        low=0,
    ),
    Setting(
        "metadata.postgresql.connect.timeout.ms",
        "metadata_postgresql_connect_timeout_ms",
        "ms",
        "bound on opening a connection to a PostgreSQL metadata store (libpq `connect_timeout`,"
        " whole seconds, at least 2; the URL's own `connect_timeout` wins)",
        low=1,
    ),
    Setting(
        "metadata.postgresql.call.timeout.ms",
        "metadata_postgresql_call_timeout_ms",
        "ms",
        "bound on one PostgreSQL metadata call, waiting included: a request that needs it then"
        " answers a retriable error and a hung connection is dropped; each statement's"
        " `statement_timeout` is half of it (the URL's `options` may set its own)",
        low=100,
    ),
    Setting(
        "metadata.postgresql.keepalive.idle.ms",
        "metadata_postgresql_keepalive_idle_ms",
        "ms",
        "TCP keepalive probes on a PostgreSQL metadata connection after this long idle (then"
        " every as long, three unanswered drop it; libpq `keepalives_*` in the URL win)",
        low=1000,
    ),
    Setting(
        "metadata.postgresql.reconnect.backoff.max.ms",
        "metadata_postgresql_reconnect_backoff_max_ms",
        "ms",
        "while a PostgreSQL metadata store is unreachable, reconnection attempts back off"
        " (doubling from 100 ms) up to this; calls in between fail at once, retriably",
        low=1,
    ),
    Setting(
        "metadata.postgresql.listen",
        "metadata_postgresql_listen",
        "",
        "LISTEN for the changes other brokers commit (topics, ACLs, users, quotas, moves) and"
        " read them at once; off, they are read at the next heartbeat (for a pooler in"
        " transaction mode, such as PgBouncer's, which does not carry LISTEN)",
    ),
    Setting(
        "object.store.request.timeout.ms",
        "object_store_request_timeout_ms",
        "ms",
        "bound on one object store request, retries included; a read of an unreachable store "
        "then answers KAFKA_STORAGE_ERROR",
        low=1,
    ),
    Setting(
        "shutdown.timeout.ms",
        "shutdown_timeout_ms",
        "ms",
        "a clean stop uploads for at most this long; the rest stays in the WAL for the next start "
        "(a stop that uploaded everything leaves the WAL empty: the next start replays nothing)",
        low=0,
    ),
    Setting(
        "debug.probe.file",
        "debug_probe_file",
        "",
        "append one JSON line a second of event-loop lag (wall clock and the loop's CPU), GC "
        "pauses, the broker's Produce request times, RSS, memory budget use and object store "
        "requests to this file (a benchmark's instrument; empty: off)",
        default_text="empty (off)",
    ),
    Setting(
        "connections.max.idle.ms",
        "connections_max_idle_ms",
        "ms",
        "close a connection with nothing in progress after this long (Kafka's)",
        low=1,
    ),
    Setting(
        "max.connections",
        "max_connections",
        "",
        "connections open at once; at the limit new ones wait in the listen backlog, as in "
        "Kafka (also capped at `RLIMIT_NOFILE` − 256, so the broker keeps descriptors for "
        "its own files)",
        low=0,
        high=INT_MAX,
    ),
    Setting(
        "max.connections.per.ip",
        "max_connections_per_ip",
        "",
        "connections per client address; an extra one is closed at once",
        low=0,
        high=INT_MAX,
    ),
    Setting(
        "max.connections.per.ip.overrides",
        "max_connections_per_ip_overrides",
        "",
        "per-address limits, `host:count,host:count`",
        default_text="empty",
    ),
    Setting(
        "queued.max.request.bytes",
        "queued_max_request_bytes",
        "bytes",
        "bytes of requests read but not yet handled, unfinished frames included, counted as "
        "they arrive (a declared frame size takes nothing until its bytes do); when reached, "
        "connections past their 16 KiB free allowance read in turn as it drains, and one "
        "frame at a time may finish past it (Kafka's default is -1, unbounded: here one "
        "largest frame); held within memory.budget.bytes as well, to a quarter of it",
        low=-1,
    ),
    Setting(
        "request.receive.timeout.ms",
        "request_receive_timeout_ms",
        "ms",
        "a frame must arrive within this long of its first byte, waits for request memory "
        "included, or the connection is closed (librdkafka's `socket.timeout.ms`: a client "
        "has given up on a request by then)",
        low=1,
        high=INT_MAX,
    ),
    *SECURITY_SETTINGS,
) + tuple(
    Setting(**row)
    for row in (
        *AUDIT_SETTINGS,
        *OAUTHBEARER_SETTINGS,
        *TXN_SETTINGS,
        *CLEANER_SETTINGS,
        *COMPACTION_SETTINGS,
        *OBJECT_WAL_SETTINGS,
        *TELEMETRY_SETTINGS,
        *CONSUMER_GROUP_SETTINGS,
        *SHARE_GROUP_SETTINGS,
        *AUTOBALANCER_SETTINGS,
    )
)


# Kafka settings that would change what a client may do if they were honoured: refused,
# never ignored.
UNSUPPORTED: tuple[KafkaSetting, ...] = (
    KafkaSetting(
        "ssl.*",
        "this TLS setting is not supported (see the ssl.* settings above)",
        unless=frozenset(s.name for s in SETTINGS if s.name.startswith("ssl.")),
    ),
    *SASL_REFUSED,
    KafkaSetting(
        "listener.name.*",
        "of Kafka's per-listener settings, `listener.name.<listener>.ssl.*`, `<...>.sasl.enabled."
        "mechanisms`, `<...>.<mechanism>.sasl.jaas.config` and `<...>.oauthbearer.sasl.*` are "
        "supported",
    ),
)

# Variables with the CONTEXTPLANE_ prefix that configure tools and tests, not the broker.
TOOL_VARIABLES = frozenset(
    ENV_PREFIX + name
    for name in (
        "ALLOW_INTERPRETED",
        "CACHE",
        "CACHE_STARTED_EMPTY",
        "CONNECT_FILE_VERSION",
        "FULL_CONFORMANCE",
        "FUZZ_SCALE",
        "FUZZ_SHRINK",
        "GROUPS_REFERENCE",
        "KAFKA_CLIENTS_VERSION",
        "KAFKA_VERSION",
        "KCAT_PLAIN",
        "LOG_LEVEL",
    )
)
