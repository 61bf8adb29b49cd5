"""KIP-1191's dead-letter meters of Kafka 4.4's `kafka.server:type=ShareGroupMetrics`,
per share group, under the names the Prometheus JMX exporter gives them (lower case, a
meter's `PerSec` dropped and `_total` added, as `kafka_server_brokertopicmetrics_*`):
`DeadLetterQueueRecordCount`, `DeadLetterQueueTotalProduceRequestsPerSec` and
`DeadLetterQueueFailedProduceRequestsPerSec`, each with its `group` tag. A produce
request here is one append of a batch of copies to the dead-letter partition; a failed
one wrote nothing (a storage failure, or a partition this broker does not lead)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client.core import CounterMetricFamily, Metric

# (name after the prefix, help, kind counted by BrokerStats.share_dlq_counted)
_METERS = (
    (
        "deadletterqueuerecordcount",
        "Records a share group copied to its dead-letter topic",
        "records",
    ),
    (
        "deadletterqueuetotalproducerequests",
        "Appends of dead-letter copies a share group's records caused",
        "produce",
    ),
    (
        "deadletterqueuefailedproducerequests",
        "Appends of dead-letter copies that wrote nothing",
        "failed",
    ),
)


def share_group_families(counts: Mapping[tuple[str, str], int]) -> Iterable[Metric]:
    """`counts`: (group, kind) -> count, a copy of `BrokerStats.share_dlq_groups`."""
    for short, text, kind in _METERS:
        family = CounterMetricFamily(
            f"kafka_server_sharegroupmetrics_{short}", text, labels=["group"]
        )
        for (group_id, counted), count in sorted(counts.items()):
            if counted == kind:
                family.add_metric([group_id], count)
        yield family
