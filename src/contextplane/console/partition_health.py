"""Offline partitions, as Kafka's two gauges name them, read at scrape time from the
partition rows the reconciler follows (`MetadataStore.assignment_changes(0)`: one query
of every row, with its leader's lease checked on the database's clock).

* `kafka_server_replicamanager_offlinepartitionscount`: partitions targeted at this
  broker that it does not serve (not claimed yet, a claim refused: a dirty partition of a
  broker that has not returned, a recovery failing), where Kafka's counts the partitions
  of a failed log directory.
* `kafka_controller_kafkacontroller_offlinepartitionscount`: on the broker holding the
  controller's lease, partitions with no live leader (none, or one whose lease lapsed);
  0 on the others, as on Kafka's inactive controllers.

Rows of topics this broker no longer knows (deleted since) are left out.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from contextplane.metadata.records import AssignmentRow

if TYPE_CHECKING:
    from contextplane.broker.context import Services


@dataclass(frozen=True, slots=True)
class OfflineCounts:
    here: int  # targeted here, not served here
    cluster: int  # without a live leader (counted by the controller only)


def offline_counts(
    rows: Iterable[AssignmentRow],
    node_id: int,
    serves: Callable[[int], bool],
    topics: Container[str],
    controller: bool,
) -> OfflineCounts:
    here = cluster = 0
    for row in rows:
        if row.topic not in topics:
            continue
        if row.target_node == node_id and not serves(row.stream_id):
            here += 1
        if controller and (row.leader_node == -1 or not row.leader_live):
            cluster += 1
    return OfflineCounts(here, cluster)


async def read_offline_counts(services: Services) -> OfflineCounts:
    _, rows = await services.log.metadata.assignment_changes(0)
    return offline_counts(
        rows,
        services.settings.node_id,
        services.log.leadership.leads,
        services.topics.topics(),
        services.cluster.registry.is_controller,
    )
