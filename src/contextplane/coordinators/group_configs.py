"""Per-group configs (GROUP config resources) as the group coordinator keeps them: the
stored strings, loaded at start and replaced whole by each alteration (stored first), and
their checked values handed to the consumer group machine, which applies them from each
group's next heartbeat; a share group's values are read from them on each use
(`share_values`)."""

from __future__ import annotations

import logging

from contextplane.coordinators.consumer_group.group_configs import checked
from contextplane.coordinators.consumer_group.machine import ConsumerGroupMachine
from contextplane.coordinators.share_group_configs import ShareGroupValues, share_group_values
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
        self._configs = await self._store.group_configs()
        for group_id, configs in self._configs.items():
            # As stored: bounds changed since hold for the next alteration (a share
            # group's values are kept within them when used, `share_values`).
            try:
                self._machine.group_configs[group_id] = checked(configs, None)
            except KafkaError as exc:  # a config this version no longer knows
                log.warning("group %r: stored configs not loaded: %s", group_id, exc.message)

    def get(self, group_id: str) -> dict[str, str]:
        """The group's overrides (a copy)."""
        return dict(self._configs.get(group_id, {}))

    def share_values(self, group_id: str) -> ShareGroupValues:
        """What the share group runs with: its overrides within the broker's
        `group.share.min/max.*`, else the broker's `group.share.*` settings."""
        s = self.settings
        values = share_group_values(
            self._configs.get(group_id, {}),
            s.group_share_session_timeout_ms,
            s.group_share_heartbeat_interval_ms,
            s.group_share_record_lock_duration_ms,
        )
        return ShareGroupValues(
            _within(
                values.session_timeout_ms,
                s.group_share_min_session_timeout_ms,
                s.group_share_max_session_timeout_ms,
                s.group_share_session_timeout_ms,
            ),
            _within(
                values.heartbeat_interval_ms,
                s.group_share_min_heartbeat_interval_ms,
                s.group_share_max_heartbeat_interval_ms,
                s.group_share_heartbeat_interval_ms,
            ),
            _within(
                values.record_lock_duration_ms,
                s.group_share_min_record_lock_duration_ms,
                s.group_share_max_record_lock_duration_ms,
                s.group_share_record_lock_duration_ms,
            ),
            values.offset_reset,
            values.read_committed,
        )

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


def _within(value: int, low: int, high: int, broker: int) -> int:
    """An override kept within the bounds; the broker's value itself is never clamped
    (a broker setting outside its own bounds is allowed here)."""
    return value if value == broker else min(max(value, low), high)
