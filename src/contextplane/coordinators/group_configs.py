"""Per-group configs (GROUP config resources) as the group coordinator keeps them: the
stored strings, replaced whole by each alteration (stored first) and loaded at start and
again when `generation.topics` moved (each write moves it, so an alteration through any
broker reaches every broker at its next cluster heartbeat), and their checked values
handed to the consumer group machine, which applies them from each group's next
heartbeat; a share group's values are read from them on each use
(`share_values`), an INT override outside the broker's current `group.share.min/max.*`
capped to them (Kafka's GroupConfig.evaluate; its warning is logged at load)."""

from __future__ import annotations

import logging

from contextplane.coordinators import share_group_configs as share
from contextplane.coordinators.consumer_group.group_configs import (
    SPECS,
    bounds_of,
    broker_value,
    checked,
)
from contextplane.coordinators.consumer_group.machine import ConsumerGroupMachine
from contextplane.coordinators.share_group_configs import ShareGroupValues
from contextplane.errors import KafkaError
from contextplane.metadata.store import MetadataStore
from contextplane.settings import Settings

log = logging.getLogger(__name__)


class GroupConfigs:
    def __init__(
        self, store: MetadataStore, machine: ConsumerGroupMachine, settings: Settings | None = None
    ) -> None:
        self._store = store
        self._machine = machine
        self.settings = settings or Settings()
        self._configs: dict[str, dict[str, str]] = {}

    async def load(self) -> None:
        """The stored configs, at start and again whenever `generation.topics` moved
        (another broker may have altered a group's): a group whose configs changed is
        checked (and its capped values warned about) again, one no longer stored dropped."""
        stored = await self._store.group_configs()
        previous, self._configs = self._configs, stored
        for group_id in previous.keys() - stored.keys():
            self._machine.group_configs.pop(group_id, None)
        for group_id, configs in stored.items():
            if previous.get(group_id) != configs:
                self._apply(group_id, configs)

    def _apply(self, group_id: str, configs: dict[str, str]) -> None:
        # As stored: bounds changed since hold for the next alteration (a share group's
        # values are capped to them when used, `share_values`).
        try:
            self._machine.group_configs[group_id] = checked(configs, None)
        except KafkaError as exc:  # a config this version no longer knows
            self._machine.group_configs.pop(group_id, None)
            log.warning("group %r: stored configs not loaded: %s", group_id, exc.message)
            return
        for name, value, bound, effective in share.capped(configs, self._share_bounds()):
            below = "is below" if bound == "minimum" else "exceeds"
            log.warning(
                "The group config '%s' for group '%s' has value %d which %s the broker's "
                "allowed %s %d. The effective value will be capped to %d.",
                name,
                group_id,
                value,
                below,
                bound,
                effective,
                effective,
            )

    def group_ids(self) -> list[str]:
        """The groups with overrides (ListConfigResources lists them)."""
        return [group_id for group_id, configs in self._configs.items() if configs]

    def get(self, group_id: str) -> dict[str, str]:
        """The group's overrides (a copy)."""
        return dict(self._configs.get(group_id, {}))

    def share_values(self, group_id: str) -> ShareGroupValues:
        """What the share group runs with: its overrides capped to the broker's current
        `group.share.min/max.*`, else the broker's `group.share.*` settings."""
        defaults = {name: int(broker_value(name, self.settings)) for name in share.INT_CONFIGS}
        return share.share_group_values(
            self._configs.get(group_id, {}), defaults, self._share_bounds()
        )

    def _share_bounds(self) -> dict[str, tuple[int, int]]:
        return {name: bounds_of(SPECS[name], self.settings) for name in share.INT_CONFIGS}

    async def set(self, group_id: str, configs: dict[str, str], validate_only: bool) -> None:
        """Replace the group's overrides; KafkaError(INVALID_CONFIG) for a bad one."""
        values = checked(configs, self.settings)
        if validate_only:
            return
        await self._store.set_group_configs(group_id, configs)
        if configs:
            self._configs[group_id] = dict(configs)
            self._machine.group_configs[group_id] = values
        else:
            self._configs.pop(group_id, None)
            self._machine.group_configs.pop(group_id, None)
