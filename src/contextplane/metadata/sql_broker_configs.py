"""The engine and store methods over the dynamic broker config table (migration 0017),
mixed into `SqlEngine` and `SqlMetadataStore`: a resource ('' for the cluster default,
else a node id) is replaced whole by each alteration, in one transaction that also moves
`generation.topics`, so every broker reads them again."""

from __future__ import annotations

from typing import Any

from contextplane.metadata.sql_assignment import TOPICS_GENERATION, bump_generation
from contextplane.metadata.sql_db import Db


class BrokerConfigRows:
    """`SqlEngine`'s dynamic broker config methods (over its connection and transactions)."""

    _db: Db

    def broker_configs(self) -> dict[str, dict[str, str]]:
        configs: dict[str, dict[str, str]] = {}
        for broker, name, value in self._db.execute(
            "SELECT broker, name, value FROM broker_configs"
        ):
            configs.setdefault(broker, {})[name] = value
        return configs

    def set_broker_configs(self, broker: str, configs: dict[str, str]) -> None:
        engine: Any = self  # a SqlEngine: its transactions and disk-full retry

        def run() -> None:
            with engine._transaction():
                # Other brokers reload topics and broker configs when it moves: a broker
                # config is a default of every topic's (cluster/reconciler.py).
                bump_generation(self._db, TOPICS_GENERATION)
                self._db.execute("DELETE FROM broker_configs WHERE broker=?", (broker,))
                if configs:
                    self._db.executemany(
                        "INSERT INTO broker_configs (broker, name, value) VALUES (?, ?, ?)",
                        [(broker, name, value) for name, value in sorted(configs.items())],
                    )

        engine._run_write(run)


class BrokerConfigCalls:
    """`SqlMetadataStore`'s dynamic broker config methods, run on its worker thread."""

    async def broker_configs(self) -> dict[str, dict[str, str]]:
        store: Any = self  # a SqlMetadataStore
        result: dict[str, dict[str, str]] = await store._call(store.engine.broker_configs)
        return result

    async def set_broker_configs(self, broker: str, configs: dict[str, str]) -> None:
        store: Any = self
        await store._call(store.engine.set_broker_configs, broker, configs)
