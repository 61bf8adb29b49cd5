"""Assemble a broker from its settings, in order: metadata store → storage engine → topics
→ group coordinator → services → request pipeline → listener. The Kafka APIs it answers
are broker/routes.py's."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from contextplane import tracing
from contextplane.broker.audit_sink import AuditSink
from contextplane.broker.configs import retention_configs
from contextplane.broker.context import ClusterView, Services
from contextplane.broker.dynamic_configs import DynamicBrokerConfigs
from contextplane.broker.internal_topics import (
    AUDIT_TOPIC,
    SHARD_TOPICS,
    TXN_STATE,
    ensure,
    is_internal,
)
from contextplane.broker.leaders import Leaders
from contextplane.broker.listener import BrokerListeners, serve, tls_contexts
from contextplane.broker.metadata_cache import MetadataCache
from contextplane.broker.offsets_topic import OffsetsShards, OffsetsTopicWriter, unclean_election
from contextplane.broker.pipeline import Pipeline
from contextplane.broker.probes import Probes, log_object_store_counts
from contextplane.broker.read_receipts import ReadReceipts
from contextplane.broker.replica_selector import RACK_AWARE_SELECTOR
from contextplane.broker.routes import build_routes
from contextplane.broker.share_dead_letters import ShareDeadLetters
from contextplane.broker.topic_follower import follow_catalogs
from contextplane.broker.topic_lookup import TopicLookup
from contextplane.broker.topics import TopicManager
from contextplane.broker.txn_markers import routed_marker_writer
from contextplane.clock import Clock, SystemClock
from contextplane.cluster import controlled_shutdown
from contextplane.cluster.assignment_plan import Candidate, Placement
from contextplane.cluster.autobalancer import AutoBalancer
from contextplane.cluster.controller import Controller
from contextplane.cluster.forwarder import PartitionWriter
from contextplane.cluster.load import LoadMeter
from contextplane.cluster.peer_client import Peers, peer_security
from contextplane.cluster.reconciler import Reconciler
from contextplane.cluster.registry import Registry
from contextplane.cluster.zone_router import ZoneRouter
from contextplane.coordinators.consumer_group.messages import consumer_group_config
from contextplane.coordinators.group import GroupCoordinator
from contextplane.coordinators.group_state import CoordinatorConfig
from contextplane.coordinators.producer_ids import ProducerIds
from contextplane.coordinators.share_coordinator import ShareCoordinator, share_config
from contextplane.coordinators.transactions import TransactionConfig, TransactionCoordinator
from contextplane.coordinators.txn_shards import TXN_STATE_TOPIC
from contextplane.metadata.records import BrokerEndpoint
from contextplane.metadata.reserve import SpaceReserve
from contextplane.metadata.sql_assignment import TargetOf
from contextplane.metadata.store import MetadataStore, open_metadata_store
from contextplane.security import oauthbearer_settings, sasl_settings
from contextplane.security.acl_admin import AclAdmin
from contextplane.security.audit import AuditLog
from contextplane.security.authorizer import AllowEverything, Authorizer
from contextplane.security.client_quotas import ClientQuotas
from contextplane.security.quota_admin import QuotaAdmin
from contextplane.security.sasl_authenticator import SaslAuthenticator
from contextplane.security.sasl_settings import SaslListenerConfig
from contextplane.security.scram_credentials import ScramCredentials
from contextplane.settings import Settings
from contextplane.storage.admission import free_bytes
from contextplane.storage.data_dir_lock import DataDirLock
from contextplane.storage.engine import StorageEngine
from contextplane.storage.read_replica import ReadReplicas
from contextplane.storage.store_marker import check_store_marker

if TYPE_CHECKING:
    from contextplane.broker.request_spans import RequestSpans

log = logging.getLogger(__name__)


def sasl_listener_configs(settings: Settings) -> dict[str, SaslListenerConfig]:
    """Each SASL listener's mechanisms and PLAIN users; a listener that cannot use its
    settings (GSSAPI, PLAIN without its JAAS entry) stops the start."""
    return {
        spec.name: sasl_settings.for_listener(
            settings.sasl_enabled_mechanisms,
            settings.listener_sasl,
            spec.name,
            oauthbearer_settings.from_settings(settings),
        )
        for spec in settings.listeners
        if spec.sasl
    }


def _metadata_reserve(settings: Settings) -> SpaceReserve | None:
    """The disk space kept for an embedded (SQLite) store to commit on a full disk; a
    PostgreSQL store's disk is its server's."""
    if not settings.resolved_metadata_url.startswith("sqlite:"):
        return None
    reserve = SpaceReserve(settings.data_dir / "metadata.reserve", settings.metadata_reserved_bytes)
    if free_bytes(settings.data_dir) < 2 * reserve.size_bytes:
        # A (nearly) full disk: the metadata store needs room to open and commit
        # leadership now, before anything else can free space.
        reserve.release()
    else:
        reserve.ensure()
    return reserve


class Broker:
    """One broker process's components. `start` assembles and opens them in order;
    `stop` closes them in reverse."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock | None = None,
        metadata: MetadataStore | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        # First: bad TLS settings (TlsConfigError) stop the start before anything opens.
        self._tls = tls_contexts(settings)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        # Then the data directory's lock (DataDirInUse), before anything in it is touched.
        self._lock = DataDirLock(settings.data_dir)
        self._lock.acquire()
        try:
            self.metadata = metadata or open_metadata_store(
                settings.resolved_metadata_url, _metadata_reserve(settings), settings=settings
            )
        except BaseException:
            self._lock.release()
            raise
        self.storage: StorageEngine | None = None
        self.groups: GroupCoordinator | None = None
        self.shares: ShareCoordinator | None = None
        self.transactions: TransactionCoordinator | None = None
        self.offsets_topic: OffsetsTopicWriter | None = None
        self.topics: TopicManager | None = None
        self.pipeline: Pipeline | None = None
        self.audit_sink: AuditSink | None = None
        self.receipts: ReadReceipts | None = None
        self.listeners: BrokerListeners | None = None
        self._probes: Probes | None = None
        self.registry: Registry | None = None
        self.reconciler: Reconciler | None = None
        self.peers: Peers | None = None
        self.controller: Controller | None = None  # its writes count only while it leads
        self.autobalancer: AutoBalancer | None = None  # autobalancer.controller.enable
        # Set when another incarnation took this node.id: the process must stop.
        self.registration_lost = asyncio.Event()
        self.bound_port = settings.port  # the first listener's
        self.bound_ports: dict[str, int] = {}  # listener name -> port bound

    def _api_versions(self) -> list[dict[str, int]]:
        assert self.pipeline is not None, "ApiVersions is answered only once the pipeline runs"
        return self.pipeline.api_versions()

    def advertised(self, listener: str) -> tuple[str, int]:
        """What Metadata, FindCoordinator and DescribeCluster tell a client that came in
        on `listener`: its advertised endpoint, or the port actually bound when it asked
        for any free port (0)."""
        for spec in self.settings.listeners:
            if spec.name == listener:
                port = spec.advertised_port or self.bound_ports.get(spec.name, spec.port)
                return spec.advertised_host or spec.host, port
        raise KeyError(f"no listener {listener}")

    def endpoints(self) -> tuple[BrokerEndpoint, ...]:
        """What the registry publishes: each listener's advertised endpoint."""
        return tuple(
            BrokerEndpoint(spec.name, *self.advertised(spec.name), spec.security_protocol)
            for spec in self.settings.listeners
        )

    def _placement(self, topic: str) -> TargetOf:
        """Where a new topic's partitions go (RFC 0004 §2): over the live brokers, by
        `assignment_plan`, `__consumer_offsets` and `__transaction_state` too (their
        leaders are the group and transaction coordinators, §3); the other internal
        topics stay on this broker, which writes them."""
        node_id = self.settings.node_id
        if (is_internal(topic) and topic not in SHARD_TOPICS) or self.registry is None:
            return lambda stream_id: node_id
        brokers = self.registry.brokers
        # Nothing on a draining broker, this one included; it knows itself live before
        # its first heartbeat lists it, and with every broker draining it places here.
        candidates = [Candidate(b.node_id, b.rack) for b in brokers if b.state == "live"]
        if node_id not in {b.node_id for b in brokers} or not candidates:
            candidates.append(Candidate(node_id, self.settings.broker_rack))
        return Placement(candidates)

    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            if self.registry is not None:
                await self.registry.stop()  # a restart need not wait for the lease
            self._lock.release()  # a failed start leaves the directory to the next try
            raise

    async def _start(self) -> None:
        settings = self.settings
        await self.metadata.open()
        cluster_id = await self.metadata.cluster_id()
        # Before the components that read the settings: they start with dynamic values.
        broker_configs = DynamicBrokerConfigs(self.metadata, settings)
        await broker_configs.load()
        # Before any partition is claimed: a duplicate node.id stops the start here.
        self.registry = registry = Registry(self.metadata, settings, self.registration_lost.set)
        await registry.register(self.endpoints())
        topics: TopicManager | None = None
        self.storage = storage = StorageEngine(
            settings,
            self.metadata,
            clock=self.clock,
            wal_incarnation=registry.incarnation,
            topic_configs=lambda name: retention_configs(
                topics.configs(name) if topics is not None else {}, settings.log_cleanup_policy
            ),
        )
        broker_configs.on_change.append(storage.cleaner.wakeup.set)
        # Before the WAL is replayed and uploaded: never into another cluster's store.
        await check_store_marker(
            storage.objects, self.metadata, cluster_id, settings.resolved_object_store_url
        )
        self.topics = topics = TopicManager(
            self.metadata, storage, settings, lambda topic: self._placement(topic)
        )
        await topics.load()
        # In a cluster a topic another broker just created is read on its first miss
        # here rather than at the next heartbeat (broker/topic_lookup.py).
        topics.lookup = TopicLookup(
            self.metadata.topic,
            lambda name: name in topics.topics(),
            lambda: len(registry.live_ids) > 1,
            settings.broker_heartbeat_interval_ms,
            self.clock,
            read_id=self.metadata.topic_by_id,
            known_id=lambda topic_id: topics.by_id(topic_id) is not None,
        )
        topics.on_found = registry.changed.set
        topics.registered_brokers = lambda: max(1, len(registry.live_ids))
        storage.dirty.may_ack_unmarked = registry.may_ack_unmarked
        await storage.open()
        # Replayed and marked: the heartbeat may now write what storage owes and set
        # or clear the flag (RFC 0004 §5's outage path).
        registry.marks = storage.dirty
        registry.load = LoadMeter(storage.partitions.values).document

        async def refresh_catalog() -> None:
            # What a move of `generation.topics` asks this broker to read again: the
            # topics, the dynamic broker configs and the group configs.
            await topics.refresh()
            await broker_configs.load()
            if self.groups is not None:
                await self.groups.configs.load()

        self.reconciler = Reconciler(
            self.metadata,
            storage,
            registry,
            refresh_catalog,
            lambda name: name in topics.topics(),
            lambda name: unclean_election(topics, name),
            settings.node_id,
            settings.broker_heartbeat_interval_ms / 1000,
        )
        self.controller = Controller(
            self.metadata,
            registry,
            settings.broker_heartbeat_interval_ms / 1000,
            lambda: frozenset(name for name in topics.topics() if unclean_election(topics, name)),
        )
        if settings.debug_probe_file:
            self._probes = Probes(Path(settings.debug_probe_file), storage, self.clock)
            self._probes.start()
        self.offsets_topic = offsets_topic = OffsetsTopicWriter(
            storage, topics, settings, self.clock
        )
        await offsets_topic.ensure_topic()
        self.groups = groups = GroupCoordinator(
            self.metadata,
            CoordinatorConfig(initial_rebalance_delay_ms=settings.group_initial_rebalance_delay_ms),
            self.clock,
            consumer_config=consumer_group_config(settings),
            settings=settings,
            leases=OffsetsShards(storage, topics),
        )
        await groups.start()
        self.reconciler.coordinator = groups
        await offsets_topic.start(groups)
        topics.on_deleted.append(groups.offsets.on_topic_deleted)
        self.shares = shares = ShareCoordinator(
            self.metadata, share_config(settings), self.clock, groups.configs.share_values
        )
        shares.follow(groups)  # share groups follow their shards
        await shares.start(
            lambda name: getattr(topics.topics().get(name), "partitions", 0), topics.topics
        )
        topics.on_deleted.append(shares.on_topic_deleted)
        producer_ids = ProducerIds(self.metadata)
        rack_aware = settings.replica_selector_class == RACK_AWARE_SELECTOR
        leaders = Leaders(storage, registry, settings.node_id, settings.broker_rack, rack_aware)
        security = peer_security(settings)
        if security is None and self.metadata.shared:
            # Kafka would refuse to start; a cluster's brokers then cannot call each other.
            log.warning(
                "no inter-broker listener (no PLAINTEXT listener): set "
                "inter.broker.listener.name for transactions across brokers"
            )
        self.peers = peers = Peers(
            lambda: registry.brokers,
            security,
            settings.node_id,
            self.clock,
        )
        await ensure(topics, TXN_STATE)
        self.transactions = txns = TransactionCoordinator(
            self.metadata,
            producer_ids,
            self.clock,
            TransactionConfig(
                settings.transaction_max_timeout_ms,
                settings.transaction_abort_timed_out_transaction_cleanup_interval_ms,
                settings.transactional_id_expiration_ms,
                settings.transaction_remove_expired_transaction_cleanup_interval_ms,
            ),
            routed_marker_writer(storage, self.clock, leaders, peers, settings.node_id),
            lambda group_id, rows, ms: groups.offsets.journal.offsets_committed(group_id, rows, ms),
            leases=OffsetsShards(storage, topics, TXN_STATE_TOPIC),
        )
        await txns.start()
        self.reconciler.coordinators[TXN_STATE_TOPIC] = txns
        routes = build_routes()
        acl_admin: AclAdmin | None = None
        authorizer: Authorizer = AllowEverything()
        if settings.authorizer_class_name:
            acl_admin = await AclAdmin.load(self.metadata, settings)
            authorizer = acl_admin.authorizer
            log.info(
                "authorizer %s: %d ACLs loaded",
                settings.authorizer_class_name,
                len(authorizer.acls),
            )
        client_quotas = ClientQuotas(
            self.clock, settings.quota_window_num, settings.quota_window_size_seconds
        )
        quota_admin = await QuotaAdmin.load(self.metadata, client_quotas)
        scram_credentials = await ScramCredentials.load(self.metadata)

        async def refresh_security() -> None:
            """What another broker changed (`generation.security` moved), read again."""
            if acl_admin is not None:
                await acl_admin.reload()
            await quota_admin.reload()
            await scram_credentials.reload()

        self.reconciler.refresh_security = refresh_security
        sasl_listeners = sasl_listener_configs(settings)
        sasl = None
        if sasl_listeners:
            sasl = SaslAuthenticator(sasl_listeners, scram_credentials, self.clock)
            await sasl.load_keys()  # an OAUTHBEARER JWKS that cannot be read stops the start
        writer = PartitionWriter(storage, self.clock, leaders, peers, settings.node_id)
        self.audit_sink = sink = AuditSink(writer, topics, settings, self.clock)
        await sink.start()
        source = f"contextplane://{cluster_id}/broker/{settings.node_id}"
        if settings.audit_read_receipts_enable:
            self.receipts = ReadReceipts(
                sink.offer, source, settings.audit_read_receipts_window_ms, self.clock
            )
            await self.receipts.start()
        audit = AuditLog(
            lambda key, value: sink.offer(AUDIT_TOPIC, key, value),
            source,
            self.clock.wall_ms,
            authorizer,
            settings.audit_allowed_topics,
            settings.audit_denial_records_per_second,
        )
        sink.before_flush = audit.report_suppressed
        zone_router = _zone_router(settings, self.metadata.shared, storage, peers, registry)
        services = Services(
            settings=settings,
            clock=self.clock,
            log=storage,
            topics=topics,
            groups=groups,
            producer_ids=producer_ids,
            transactions=txns,
            cluster=ClusterView(
                cluster_id=cluster_id,
                node_id=settings.node_id,
                advertised=self.advertised,
                api_versions=lambda: self._api_versions(),
                registry=registry,
                leaders=leaders,
                rack=settings.broker_rack,
                peers=peers,
                controller=self.controller,
                replicas=ReadReplicas(
                    storage.metadata,
                    storage.blocks,
                    settings.upload_interval_ms,
                    storage.clock,
                    storage.budget,
                ),
            ),
            metadata_cache=MetadataCache(
                topics,
                storage,
                settings.node_id,
                registry,
                leaders,
                settings.broker_rack,
                None if zone_router is None else zone_router.unreachable,
            ),
            authorizer=authorizer,
            quotas=client_quotas,
            audit=audit,
            acls=acl_admin,
            quota_admin=quota_admin,
            scram=scram_credentials,
            sasl=sasl,
            audit_sink=sink,
            receipts=self.receipts,
            spans=_request_spans(settings),
            shares=shares,
            broker_configs=broker_configs,
            writer=writer,
            zone_router=zone_router,
        )
        if self._probes is not None:
            self._probes.watch_requests(services.stats)
        shares.dead_letters = ShareDeadLetters(
            topics, storage, settings, groups.configs.get, services.stats, self.clock, writer
        )
        self.reconciler.start()  # the internal topics exist: it follows the targets now
        self.controller.start()  # failover, while this broker holds the controller
        if settings.autobalancer_controller_enable:
            self.autobalancer = AutoBalancer(
                self.metadata, registry, self.controller, settings, self.clock, services.stats
            )
            self.autobalancer.start()
        self.pipeline = pipeline = Pipeline(services, routes)
        services.dispatch = pipeline.dispatch
        self.listeners = listeners = await serve(pipeline, settings, self._tls)
        self.bound_ports = {
            spec.name: listeners.bound_port(spec.name) for spec in settings.listeners
        }
        self.bound_port = self.bound_ports[settings.listeners[0].name]
        folds = (services.schemas, services.masking)
        follow_catalogs(self.settings, folds, self.advertised, self.clock)
        await registry.publish(self.endpoints())
        log.info("contextplane broker listening on %s:%d", settings.host, self.bound_port)

    async def stop(self) -> None:
        """In a cluster, first hand over what this broker leads (controlled shutdown,
        cluster/controlled_shutdown.py); then stop listening, stop the coordinators, close
        storage (which uploads for at most `shutdown.timeout.ms` and leaves the rest in
        the WAL), and the store."""
        await self._hand_over()
        if self.listeners is not None:
            self.listeners.close()
        if self.pipeline is not None:
            for follower in (
                self.pipeline.services.schemas.remote,
                self.pipeline.services.masking.remote,
            ):
                if follower is not None:
                    await follower.close()
        if self.autobalancer is not None:
            await self.autobalancer.stop()
        if self.controller is not None:
            await self.controller.stop()
        if self.reconciler is not None:
            await self.reconciler.stop()
        if self.offsets_topic is not None:
            await self.offsets_topic.stop()
        if self.receipts is not None:
            await self.receipts.stop()  # its open windows go to the sink
        if self.audit_sink is not None:
            await self.audit_sink.stop()  # what is buffered is appended before storage closes
        if self.transactions is not None:
            await self.transactions.stop()
        if self.peers is not None:
            await self.peers.close()
        if self.shares is not None:
            await self.shares.stop()
        if self.groups is not None:
            await self.groups.stop()
        try:
            if self.storage is not None:
                await self.storage.close()
                log_object_store_counts(self.storage)
            if self._probes is not None:
                await self._probes.stop()  # its last line counts the uploads at close
            if self.registry is not None:
                await self.registry.stop()  # unlisted, its node.id free, at once
            await self.metadata.close()
        finally:
            self._lock.release()

    async def _hand_over(self) -> None:
        registry, storage = self.registry, self.storage
        if registry is None or storage is None or self.reconciler is None:
            return  # not started this far: nothing led to hand over
        if self.registration_lost.is_set() or not controlled_shutdown.applies(
            self.metadata, registry, self.settings.node_id
        ):
            return
        if not self.settings.controlled_shutdown_enable:
            log.info(
                "controlled.shutdown.enable=false: stopping without handing over; the"
                " partitions this broker leads wait for its next start"
            )
            return
        try:
            await controlled_shutdown.hand_over(
                self.metadata,
                registry,
                storage.leadership,
                self.settings.node_id,
                self.settings.shutdown_timeout_ms,
            )
        except Exception as exc:  # noqa: BLE001 - the stop goes on as without it
            log.warning("controlled shutdown failed (%r); stopping without it", exc)


def _request_spans(settings: Settings) -> RequestSpans | None:
    """Spans of Produce and Fetch when traces are configured; else None, and nothing of
    OpenTelemetry imported."""
    url = tracing.traces_url(settings.otel_exporter_otlp_endpoint)
    tracer = tracing.tracer("contextplane.broker", url, "contextplane")
    if tracer is None:
        return None
    from contextplane.broker.request_spans import RequestSpans

    return RequestSpans(tracer)


def _zone_router(
    settings: Settings, shared: bool, storage: StorageEngine, peers: Peers, registry: Registry
) -> ZoneRouter | None:
    """The zone writes' proxy (RFC 0004 §7): in a cluster of racks, when enabled."""
    if not (settings.zone_produce_proxy_enable and shared and settings.broker_rack):
        return None
    return ZoneRouter(
        storage.objects, peers, settings.node_id, lambda: registry.incarnation, storage.clock
    )
