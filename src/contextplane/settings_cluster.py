"""The cluster membership fields of `Settings` (its base; their rows are in
settings_table.py): the broker registry's lease (RFC 0004 §1), a planned move's bound,
what a clean stop does first (§6) and the zone writes' proxy (§7). cluster/registry.py,
cluster/reconciler.py and broker/app.py read them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ClusterFields:
    """The cluster membership fields of `Settings`."""

    broker_heartbeat_interval_ms: int = 1_000
    broker_session_timeout_ms: int = 6_000
    # How long a move's source may take to release a partition.
    partition_move_timeout_ms: int = 30_000
    # Kafka's: a clean stop in a cluster first hands over what it leads; false stops
    # without, its partitions waiting for its next start (a restart in place).
    controlled_shutdown_enable: bool = True
    # RFC 0004 §7: a client of this broker's zone writes partitions led in other zones
    # through this broker (Metadata names it), record bytes through the shared store.
    zone_produce_proxy_enable: bool = False
