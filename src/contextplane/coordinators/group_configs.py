"""Per-group configs (GROUP config resources) as the group coordinator keeps them: the
stored strings, loaded at start and replaced whole by each alteration (stored first), and
their checked values handed to the consumer group machine, which applies them from each
group's next heartbeat."""

from __future__ import annotations

from contextplane.coordinators.consumer_group.group_configs import checked
from contextplane.coordinators.consumer_group.machine import ConsumerGroupMachine
from contextplane.metadata.store import MetadataStore


class GroupConfigs:
    def __init__(self, store: MetadataStore, machine: ConsumerGroupMachine) -> None:
        self._store = store
        self._machine = machine
        self._configs: dict[str, dict[str, str]] = {}

    async def load(self) -> None:
        self._configs = await self._store.group_configs()
        for group_id, configs in self._configs.items():
            # As stored: bounds lowered or raised since hold for the next alteration.
            self._machine.group_configs[group_id] = checked(configs, None)

    def get(self, group_id: str) -> dict[str, str]:
        """The group's overrides (a copy)."""
        return dict(self._configs.get(group_id, {}))

    async def set(self, group_id: str, configs: dict[str, str], validate_only: bool) -> None:
        """Replace the group's overrides; KafkaError(INVALID_CONFIG) for a bad one."""
        values = checked(configs, self._machine.config)
        if validate_only:
            return
        await self._store.set_group_configs(group_id, configs)
        if configs:
            self._configs[group_id] = dict(configs)
            self._machine.group_configs[group_id] = values
        else:
            self._configs.pop(group_id, None)
            self._machine.group_configs.pop(group_id, None)
