"""Kafka broker settings this broker accepts with no effect, and why (`IGNORED`), so
Kafka's server.properties files keep working; `KafkaSetting` is also the row type of
`settings_table.UNSUPPORTED`, those that are refused."""

from __future__ import annotations

from dataclasses import dataclass

from contextplane.settings_oauthbearer import OAUTHBEARER_SETTINGS


@dataclass(frozen=True)
class KafkaSetting:
    """A Kafka broker setting (or a family of them) that this broker does not implement,
    and why."""

    pattern: str  # a name, or a prefix ending in "*"
    reason: str
    # Values that have no effect, when only some do (any other is an error); empty: any.
    accepts: tuple[str, ...] = ()
    # Names the pattern leaves out: settings of the table above.
    unless: frozenset[str] = frozenset()

    def matches(self, name: str) -> bool:
        if name in self.unless:
            return False
        if self.pattern.endswith("*"):
            return name.startswith(self.pattern[:-1])
        return name == self.pattern


_NO_QUORUM = (
    "no controller quorum; the controller holds a lease in the metadata store, which"
    " also keeps leadership"
)
_NO_INTERNAL_TOPICS = (
    "no transaction or share-group state topics; producer state is in the metadata store"
)
_ONE_LOOP = "one asyncio event loop serves every connection"
_NO_REPLICAS = "no replicas; acknowledged data is in the WAL, then object storage"

IGNORED: tuple[KafkaSetting, ...] = (
    KafkaSetting("zookeeper.*", "no ZooKeeper; metadata is in the metadata store"),
    KafkaSetting("process.roles", _NO_QUORUM),
    KafkaSetting("controller.*", _NO_QUORUM),
    KafkaSetting("auto.leader.rebalance.enable", _NO_QUORUM),
    KafkaSetting("metadata.log.*", "metadata is in the metadata store"),
    KafkaSetting("num.network.threads", _ONE_LOOP),
    KafkaSetting("num.io.threads", _ONE_LOOP),
    KafkaSetting("background.threads", _ONE_LOOP),
    KafkaSetting("num.recovery.threads.per.data.dir", "recovery replays the WAL tail once"),
    KafkaSetting("socket.send.buffer.bytes", "the operating system's socket buffers are used"),
    KafkaSetting(
        "socket.receive.buffer.bytes",
        "the operating system's socket buffers are used",
    ),
    KafkaSetting(
        "log.flush.*",
        "every batch is durable in the WAL before it is acknowledged (fdatasynced, wal.fsync;"
        " with wal.url, in the object store)",
    ),
    # Kafka 4.4's other log.cleaner.* settings (CleanerConfig) are in the settings table;
    # any other log.cleaner.* name is unknown, so a misspelt one is refused.
    KafkaSetting("log.cleaner.threads", "one cleaner task"),
    KafkaSetting(
        "log.cleaner.io.buffer.size",
        "the cleaner reads each stored range whole from the object store, not through "
        "fixed I/O buffers",
    ),
    KafkaSetting(
        "log.cleaner.io.buffer.load.factor",
        "the cleaner's key map is sized by log.cleaner.dedupe.buffer.size alone",
    ),
    KafkaSetting("log.index.*", "no per-partition segment files; each object has its own index"),
    KafkaSetting("log.preallocate", "no per-partition segment files"),
    KafkaSetting("log.roll.jitter.*", "segments follow uploaded objects"),
    KafkaSetting("offsets.topic.replication.factor", _NO_REPLICAS),
    KafkaSetting(
        "offsets.topic.segment.bytes", "`__consumer_offsets` is created with Kafka's 100 MiB"
    ),
    KafkaSetting(
        "offsets.topic.compression.codec", "`__consumer_offsets` batches are uncompressed"
    ),
    KafkaSetting(
        "transaction.state.log.*",
        "`__transaction_state` has Kafka's 50 partitions, whose leaders are the transaction "
        "coordinators, and holds no records: transaction state is in the metadata store",
    ),
    KafkaSetting("share.coordinator.state.topic.*", _NO_INTERNAL_TOPICS),
    KafkaSetting(
        "offsets.retention.minutes",
        "committed offsets are kept until their group or topic is deleted",
    ),
    KafkaSetting("replica.*", _NO_REPLICAS, unless=frozenset({"replica.selector.class"})),
    KafkaSetting("num.replica.fetchers", _NO_REPLICAS),
    KafkaSetting("min.insync.replicas", _NO_REPLICAS),
    KafkaSetting("unclean.leader.election.enable", _NO_REPLICAS),
    KafkaSetting(
        "controlled.shutdown.*",
        "a controlled shutdown's handover is bounded by shutdown.timeout.ms, not retried",
        unless=frozenset({"controlled.shutdown.enable"}),
    ),
    KafkaSetting("sasl.mechanism.controller.protocol", _NO_QUORUM),
    KafkaSetting("delete.topic.enable", "topics can always be deleted", accepts=("true",)),
    KafkaSetting(
        "ssl.endpoint.identification.algorithm",
        "a broker's one TLS client (the internal consumer of `_schemas` and the masking "
        "policies) takes it from `contextplane.internal.client.config`",
    ),
)

_NO_SASL_MECHANISM = (
    "the SASL mechanisms are PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 and OAUTHBEARER, with the "
    "broker's own handlers (no GSSAPI, no custom callback handlers)"
)

# Kafka's SASL settings this broker refuses (part of settings_table.UNSUPPORTED): the
# JAAS entry is per listener and mechanism, there is no Kerberos, and an OAUTHBEARER
# broker validates tokens (the client-side sasl.oauthbearer.* settings do nothing here).
SASL_REFUSED: tuple[KafkaSetting, ...] = (
    KafkaSetting(
        "sasl.jaas.config",
        "a broker's JAAS entry is set per listener and mechanism: "
        "listener.name.<listener>.<mechanism>.sasl.jaas.config",
    ),
    KafkaSetting("sasl.kerberos.*", _NO_SASL_MECHANISM),
    KafkaSetting(
        "sasl.oauthbearer.*",
        "of the sasl.oauthbearer.* settings, those that validate tokens on a broker are "
        "supported (see above); this one configures a client's (or an inter-broker) login",
        unless=frozenset(row["name"] for row in OAUTHBEARER_SETTINGS),
    ),
    KafkaSetting("sasl.login.*", _NO_SASL_MECHANISM),
    KafkaSetting("sasl.server.callback.handler.class", _NO_SASL_MECHANISM),
    KafkaSetting("sasl.client.callback.handler.class", _NO_SASL_MECHANISM),
)
