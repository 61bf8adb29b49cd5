"""The end of each source partition as its leader has it (ListOffsets, latest,
read_committed), asked through one admin client.

The apply loop's consumer learns an end only from its fetch responses, and a fetch over
the client's consumer quota is answered with no partitions at all (as Kafka answers it).
A view held behind by a quota would keep the end its last answered fetch carried and look
caught up: exactly when its freshness matters. The freshness watch asks here instead."""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import IsolationLevel, KafkaException
from confluent_kafka import TopicPartition as KafkaPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from contextplane.services.context.freshness import TopicPartition

log = logging.getLogger("contextplane.context")


class EndOffsets:
    def __init__(self, common: dict[str, Any]) -> None:
        self._common = common
        self._admin: AdminClient | None = None

    def ask(self, partitions: list[TopicPartition], timeout_s: float) -> dict[TopicPartition, int]:
        """Each partition's last stable offset; a partition whose leader did not answer
        within `timeout_s` is left out (its end stays what the consumer last saw).
        Blocking: called on a thread."""
        if not partitions:
            return {}
        if self._admin is None:
            self._admin = AdminClient(self._common)
        asked = {
            KafkaPartition(topic, partition): OffsetSpec.latest() for topic, partition in partitions
        }
        futures = self._admin.list_offsets(
            asked, isolation_level=IsolationLevel.READ_COMMITTED, request_timeout=timeout_s
        )
        ends: dict[TopicPartition, int] = {}
        for tp, future in futures.items():
            try:
                ends[(tp.topic, tp.partition)] = future.result().offset
            except KafkaException as exc:
                log.debug("the end of %s[%d] not known: %s", tp.topic, tp.partition, exc)
        return ends


def merged(
    seen: dict[TopicPartition, int], asked: dict[TopicPartition, int]
) -> dict[TopicPartition, int]:
    """The later of the consumer's end and the asked one, per partition (either may be
    the newer: they are learnt at different times)."""
    ends = dict(seen)
    for tp, end in asked.items():
        ends[tp] = max(end, ends.get(tp, end))
    return ends
