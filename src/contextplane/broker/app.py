"""Assemble a broker from its settings: metadata store, storage engine, topics, router,
listener. `build_routes` is the whole list of Kafka APIs this broker answers."""

from __future__ import annotations

import logging
from typing import Any

from contextplane.broker.handlers import (
    admin,
    cluster,
    configs,
    fetch,
    offsets,
    produce,
    producer_ids,
)
from contextplane.broker.router import Route, Router
from contextplane.broker.server import Listener, serve
from contextplane.broker.topics import TopicManager
from contextplane.errors import KafkaError
from contextplane.metadata.reserve import SpaceReserve
from contextplane.metadata.store import MetadataStore
from contextplane.protocol.codec import request_schema
from contextplane.protocol.error_codes import ErrorCode
from contextplane.settings import Settings
from contextplane.storage.admission import free_bytes
from contextplane.storage.engine import StorageEngine
from contextplane.storage.partition import PartitionLog

log = logging.getLogger(__name__)

# (api key, lowest version, highest version, handler). The floors are those Kafka 4.x
# keeps (KIP-896); the ceilings are the versions whose semantics are implemented.
_ROUTES: list[tuple[int, int, int, Any]] = [
    (0, 3, 11, produce.produce),
    (1, 4, 16, fetch.fetch),
    (2, 1, 8, offsets.list_offsets),
    (3, 0, 12, cluster.metadata),
    (18, 0, 4, cluster.api_versions),
    (19, 2, 7, admin.create_topics),
    (20, 1, 6, admin.delete_topics),
    (21, 0, 2, offsets.delete_records),
    (22, 0, 5, producer_ids.init_producer_id),
    (32, 1, 4, configs.describe_configs),
    (33, 0, 2, configs.alter_configs),
    (37, 0, 3, admin.create_partitions),
    (44, 0, 1, configs.incremental_alter_configs),
    (60, 0, 1, cluster.describe_cluster),
]


def _schema_range(api_key: int, low: int, high: int) -> tuple[int, int]:
    """Clamp to the versions the codec has schemas for."""
    versions = []
    for version in range(low, high + 1):
        try:
            request_schema(api_key, version)
        except Exception:  # noqa: BLE001 - an absent version
            continue
        versions.append(version)
    assert versions, f"no schema for api key {api_key}"
    return versions[0], versions[-1]


def build_routes() -> list[Route]:
    table = list(_ROUTES)
    try:
        from contextplane.broker.handlers import groups
    except ImportError:
        groups = None  # type: ignore[assignment]
    if groups is not None:
        table.extend(groups.ROUTES)
    routes = []
    for api_key, low, high, handler in table:
        low, high = _schema_range(api_key, low, high)
        routes.append(Route(api_key, low, high, handler))
    return routes


class Broker:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        reserve = SpaceReserve(
            settings.data_dir / "metadata.reserve", settings.metadata_reserved_bytes
        )
        if free_bytes(settings.data_dir) < 2 * reserve.size_bytes:
            # A (nearly) full disk: the metadata store needs room to open and commit
            # leadership now, before anything else can free space.
            reserve.release()
        else:
            reserve.ensure()
        self.metadata = MetadataStore(settings.resolved_metadata_url, reserve)
        self.cluster_id = self.metadata.cluster_id()
        self.storage = StorageEngine(settings, self.metadata)
        self.topics = TopicManager(self)
        self.router = Router(self, build_routes())
        self.groups: Any = None
        self._listener: Listener | None = None
        self.bound_port = settings.port

    @property
    def advertised(self) -> tuple[str, int]:
        """What Metadata and FindCoordinator tell clients: the advertised listener, or
        the port actually bound when the listener asked for any free port (0)."""
        host, port = self.settings.advertised
        return host, port or self.bound_port

    def partition(self, topic: str, index: int) -> PartitionLog:
        partition = self.storage.partitions.get((topic, index))
        if partition is None:
            raise KafkaError(
                ErrorCode.unknown_topic_or_partition,
                "This server does not host this topic-partition.",
            )
        return partition

    async def start(self) -> None:
        await self.storage.open()
        try:
            from contextplane.coordinators.group import GroupCoordinator
        except ImportError:
            GroupCoordinator = None  # type: ignore[assignment,misc]  # noqa: N806
        if GroupCoordinator is not None:
            self.groups = GroupCoordinator(self)
            await self.groups.start()
        self._listener = await serve(self.router, self.settings)
        port = self._listener.port
        log.info("contextplane broker listening on %s:%d", self.settings.host, port)
        self.bound_port = port

    async def stop(self) -> None:
        """Stop listening, stop the coordinators, then close storage (which uploads for at
        most `shutdown.timeout.ms` and leaves the rest in the WAL)."""
        if self._listener is not None:
            self._listener.close()
        if self.groups is not None:
            await self.groups.stop()
        await self.storage.close()
        self.metadata.close()
