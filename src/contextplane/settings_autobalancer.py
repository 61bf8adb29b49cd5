"""The continuous balancer's fields of `Settings` and their rows of the settings table
(`settings_table.SETTINGS` ends with them): the controller's rounds that move partitions
by measured load (cluster/autobalancer.py, RFC 0004 §6). Kafka has no such settings; the
names are AutoMQ's `autobalancer.controller.*` family, so an AutoMQ operator finds them
where they expect them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from contextplane.limits import INT_MAX


@dataclass(frozen=True)
class AutoBalancerFields:
    """The continuous balancer's fields of `Settings` (its base: kept here with their rows)."""

    autobalancer_controller_enable: bool = False
    autobalancer_controller_anomaly_detect_interval_ms: int = 60_000
    autobalancer_controller_load_distribution_detect_avg_deviation: float = 0.2
    autobalancer_controller_load_distribution_detect_threshold: int = 1024 * 1024
    autobalancer_controller_execution_steps: int = 10
    autobalancer_controller_cooldown_ms: int = 300_000


AUTOBALANCER_SETTINGS: tuple[dict[str, Any], ...] = (
    dict(
        name="autobalancer.controller.enable",
        attr="autobalancer_controller_enable",
        unit="",
        meaning="the controller moves partitions by measured load on its own, a bounded round "
        "each interval (`contextplane cluster rebalance` run on a timer); off because every "
        "move is about a second of NOT_LEADER_OR_FOLLOWER for the partition's producers",
    ),
    dict(
        name="autobalancer.controller.anomaly.detect.interval.ms",
        attr="autobalancer_controller_anomaly_detect_interval_ms",
        unit="ms",
        meaning="how often the controller reads the brokers' loads and decides a round",
        low=100,
        high=INT_MAX,
    ),
    dict(
        name="autobalancer.controller.load.distribution.detect.avg.deviation",
        attr="autobalancer_controller_load_distribution_detect_avg_deviation",
        unit="",
        meaning="a round moves partitions only when the most loaded broker's load (bytes in "
        "plus out per second) is more than this fraction above the brokers' mean",
        low=0,
        high=100,
    ),
    dict(
        name="autobalancer.controller.load.distribution.detect.threshold",
        attr="autobalancer_controller_load_distribution_detect_threshold",
        unit="bytes/s",
        meaning="a round moves nothing while the most loaded broker's load is below this: "
        "a spread of small loads is not worth a move",
        low=0,
        high=2**40,
    ),
    dict(
        name="autobalancer.controller.execution.steps",
        attr="autobalancer_controller_execution_steps",
        unit="",
        meaning="at most this many partitions move in one round (one round an interval)",
        low=1,
        high=10_000,
    ),
    dict(
        name="autobalancer.controller.cooldown.ms",
        attr="autobalancer_controller_cooldown_ms",
        unit="ms",
        meaning="no round while a broker joined or left within this long (or the controller "
        "changed), and a partition moved within this long is not moved again (no ping-pong)",
        low=0,
        high=INT_MAX,
    ),
)
