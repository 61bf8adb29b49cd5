"""Producer ids for idempotent producers: a durable counter in the metadata store, so an
id is never handed out twice, across restarts too."""

from __future__ import annotations

from contextplane.metadata.store import MetadataStore


class ProducerIds:
    def __init__(self, metadata: MetadataStore) -> None:
        self._metadata = metadata

    async def allocate(self) -> int:
        return await self._metadata.next_counter("producer_id")
