"""Topic lifecycle: the one place topic names, partition counts and configs are checked."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from contextplane.broker.configs import invalid_topic_config
from contextplane.errors import KafkaError
from contextplane.metadata.store import TopicRecord
from contextplane.protocol.error_codes import ErrorCode

if TYPE_CHECKING:
    from contextplane.broker.app import Broker

_LEGAL_NAME = re.compile(r"^[a-zA-Z0-9._-]+$")
_NAME_LENGTH_MAX = 249  # Kafka's Topic.MAX_NAME_LENGTH


def validate_topic_name(name: str) -> None:
    if not name or name in (".", ".."):
        raise KafkaError(ErrorCode.invalid_topic_exception, f"Topic name {name!r} is illegal")
    if len(name) > _NAME_LENGTH_MAX:
        raise KafkaError(
            ErrorCode.invalid_topic_exception,
            f"Topic name is longer than {_NAME_LENGTH_MAX} characters",
        )
    if not _LEGAL_NAME.match(name):
        raise KafkaError(
            ErrorCode.invalid_topic_exception,
            f"Topic name {name!r} contains characters other than ASCII alphanumerics, '.', "
            "'_' and '-'",
        )


class TopicManager:
    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._cache: dict[str, TopicRecord] | None = None
        # Bumped on every change to the topic table (create, delete, partitions, configs),
        # for caches derived from it (Metadata responses).
        self.generation = 0

    def _changed(self) -> None:
        self._cache = None
        self.generation += 1

    def topics(self) -> dict[str, TopicRecord]:
        if self._cache is None:
            self._cache = {t.name: t for t in self._broker.metadata.topics()}
        return self._cache

    def by_id(self, topic_id: bytes) -> TopicRecord | None:
        return next((t for t in self.topics().values() if t.topic_id == topic_id), None)

    def check_create(
        self, name: str, partitions: int, replication_factor: int, configs: dict[str, str | None]
    ) -> tuple[int, dict[str, str]]:
        validate_topic_name(name)
        if name in self.topics():
            raise KafkaError(ErrorCode.topic_already_exists, f"Topic '{name}' already exists.")
        settings = self._broker.settings
        if partitions == -1:
            partitions = settings.num_partitions
        if partitions <= 0:
            raise KafkaError(
                ErrorCode.invalid_partitions, "Number of partitions must be larger than 0."
            )
        if replication_factor == -1:
            replication_factor = settings.default_replication_factor
        if replication_factor <= 0:
            raise KafkaError(
                ErrorCode.invalid_replication_factor, "Replication factor must be larger than 0."
            )
        if replication_factor > 1:
            raise KafkaError(
                ErrorCode.invalid_replication_factor,
                f"Unable to replicate the partition {replication_factor} time(s): The target "
                "replication factor of 1 is the most this broker offers (durability comes from "
                "the WAL and object storage).",
            )
        for key, value in configs.items():
            problem = invalid_topic_config(key, value)
            if problem:
                raise KafkaError(ErrorCode.invalid_config, problem)
        return partitions, {k: v for k, v in configs.items() if v is not None}

    def create(self, name: str, partitions: int, configs: dict[str, str]) -> TopicRecord:
        record = self._broker.metadata.create_topic(name, partitions, configs)
        self._changed()
        self._broker.storage.open_new_partitions(name)
        return record

    def auto_create(self, name: str) -> TopicRecord | None:
        settings = self._broker.settings
        if not settings.auto_create_topics_enable:
            return None
        try:
            validate_topic_name(name)
        except KafkaError:
            return None
        existing = self.topics().get(name)
        return existing or self.create(name, settings.num_partitions, {})

    async def delete(self, name: str) -> None:
        if name not in self.topics():
            raise KafkaError(
                ErrorCode.unknown_topic_or_partition,
                "This server does not host this topic-partition.",
            )
        self._broker.storage.drop_topic(name)
        orphans = self._broker.metadata.delete_topic(name)
        self._changed()
        if self._broker.groups is not None:
            self._broker.groups.on_topic_deleted(name)  # Kafka's onPartitionsDeleted
        await self._broker.storage.delete_orphans(orphans)

    def add_partitions(self, name: str, count: int) -> None:
        self._broker.metadata.add_partitions(name, count)
        self._changed()
        self._broker.storage.open_new_partitions(name)

    def set_configs(self, name: str, configs: dict[str, str]) -> None:
        self._broker.metadata.set_topic_configs(name, configs)
        self._changed()
