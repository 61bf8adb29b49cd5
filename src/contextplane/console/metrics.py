"""The broker's Prometheus metrics, with the names Kafka users already chart.

* Apache Kafka's MBeans as the Prometheus JMX exporter's example configuration names them
  (`lowercaseOutputName`): `kafka_server_brokertopicmetrics_*_total` per topic and for all
  topics, `kafka_network_requestmetrics_requests_total`, `_errors_total` (by request and
  error) and the `totaltimems` (and its parts', `throttletimems`) quantiles per request
  type.
* kafka_exporter's names for offsets and lag: `kafka_brokers`, `kafka_topic_partitions`,
  `kafka_topic_partition_{current,oldest}_offset`, `kafka_topic_partition_leader`,
  `kafka_consumergroup_{current_offset,lag,lag_sum,members}`.
* contextplane's own under `contextplane_`: the memory budget, object-store requests, and
  the storage engine's uploads, cache hits, object compaction and log cleaning
  (console/storage_metrics.py);
  and prometheus_client's process metrics (`process_resident_memory_bytes`, ...).

Each broker exports what it leads (as each Kafka broker's JMX does): partition offsets of
the partitions it leads, and the lag of the groups it coordinates on those partitions.

A scrape reads the numbers on the event loop (plain copies, no encoding) and builds the
exposition text in a worker thread, since that text grows with the number of partitions;
scrapes run one at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.samples import Sample

from contextplane.broker.probes import object_store_counts, percentile
from contextplane.broker.stats import REQUEST_TIMES_KEPT, RequestTimes, TopicCounters
from contextplane.console.partition_health import OfflineCounts, read_offline_counts
from contextplane.console.share_group_metrics import share_group_families
from contextplane.console.storage_metrics import storage_counts, storage_families
from contextplane.console.zone_metrics import ZoneRow, zone_families
from contextplane.prometheus_text import exposition
from contextplane.protocol.codec import api_name
from contextplane.protocol.error_codes import ErrorCode
from contextplane.storage.file_wal import FileWal

if TYPE_CHECKING:
    from contextplane.broker.context import Services

# The percentiles Kafka's request histograms publish (the JMX exporter's `quantile` label).
QUANTILES = (0.50, 0.75, 0.95, 0.98, 0.99, 0.999)

# Kafka's RequestMetrics histograms this broker can time truthfully, from the ring's fields
# (RequestTimes.add: size, received, handled, local, dequeued, ready, written; ns; then
# the response's throttle ms). MessageConversionsTimeMs is not kept (nothing is
# converted); no followers, so no FetchFollower. Kafka's remote time precedes its
# response queue time; here a response waits its turn first (earlier responses of the
# connection written), then for its delayed part (WAL sync, long poll, join), so a delayed
# part that finished while earlier responses were written is counted as response queue
# time.
REQUEST_COMPONENTS: tuple[tuple[str, str, Callable[[Sequence[int]], float]], ...] = (
    (
        "requestqueuetimems",
        "Time from a request's frame arriving whole to its handler called (ms; decoding "
        "and the connection's earlier requests included)",
        lambda r: (r[2] - r[1]) / 1e6,
    ),
    ("localtimems", "Time in the request's handler (ms)", lambda r: (r[3] - r[2]) / 1e6),
    (
        "responsequeuetimems",
        "Time from the handler's return to the response's turn (ms: the connection's "
        "earlier responses written)",
        lambda r: (r[4] - r[3]) / 1e6,
    ),
    (
        "remotetimems",
        "Time waiting for the handler's delayed part (ms: WAL sync, long poll, group join)",
        lambda r: (r[5] - r[4]) / 1e6,
    ),
    (
        "responsesendtimems",
        "Time writing the response to the socket (ms; large responses' encoding included)",
        lambda r: (r[6] - r[5]) / 1e6,
    ),
    (
        "totaltimems",
        "Time from a request's frame arriving whole to its response written (ms)",
        lambda r: (r[6] - r[1]) / 1e6,
    ),
    ("requestbytes", "Size of the request (bytes, header included)", lambda r: float(r[0])),
    (
        "throttletimems",
        "Throttle time the response reported (ms: the quota's, or storage back-pressure's "
        "for Produce; 0 when none)",
        lambda r: float(r[7]),
    ),
)

_TOPIC_COUNTERS = (
    ("messagesin", "messages_in", "Records appended"),
    ("bytesin", "bytes_in", "Record bytes appended"),
    ("bytesout", "bytes_out", "Record bytes sent to consumers"),
    ("totalproducerequests", "produce_requests", "Partition produce requests"),
    ("failedproducerequests", "failed_produce_requests", "Partition produce requests refused"),
    ("totalfetchrequests", "fetch_requests", "Partition fetch requests"),
)


@dataclass(frozen=True, slots=True)
class PartitionRow:
    topic: str
    partition: int
    leader: int
    log_start_offset: int
    high_watermark: int


@dataclass(slots=True)
class Snapshot:
    """Everything one scrape reports, copied on the event loop."""

    brokers: int
    partitions: list[PartitionRow]
    all_topics: TopicCounters
    topics: dict[str, TopicCounters]
    requests: dict[str, RequestTimes]
    # (request, error) -> occurrences in responses: Kafka's ErrorsPerSec.
    errors: dict[tuple[str, str], int] = field(default_factory=dict)
    # group -> (members, committed offset by (topic, partition))
    groups: dict[str, tuple[int, dict[tuple[str, int], int]]] = field(default_factory=dict)
    budget: dict[str, int] = field(default_factory=dict)
    objects: dict[str, int] = field(default_factory=dict)
    controller: bool = False
    denials: dict[tuple[str, str], int] = field(default_factory=dict)
    schema_rejections: dict[tuple[str, str], int] = field(default_factory=dict)
    schema_dead_letters: dict[tuple[str, str], int] = field(default_factory=dict)
    share_dead_letters: dict[str, int] = field(default_factory=dict)
    share_dlq_groups: dict[tuple[str, str], int] = field(default_factory=dict)
    masked_records: dict[tuple[str, str], int] = field(default_factory=dict)
    balancer_rounds: dict[str, int] = field(default_factory=dict)  # by outcome
    balancer_moves: int = 0
    # The WAL's group commits: (cumulative buckets, sum in seconds); None without a file WAL.
    wal_sync: tuple[list[tuple[str, int]], float] | None = None
    storage: dict[str, float] = field(default_factory=dict)  # console/storage_metrics.py
    offline: OfflineCounts | None = None  # None: the metadata store did not answer
    zones: list[ZoneRow] = field(default_factory=list)  # console/zone_metrics.py


class BrokerMetrics:
    """What `GET /metrics` answers for one broker."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._one_at_a_time = asyncio.Lock()

    async def exposition(self) -> bytes:
        async with self._one_at_a_time:
            snapshot = await self.snapshot()
            return await asyncio.to_thread(render, snapshot)

    async def snapshot(self) -> Snapshot:
        services = self._services
        storage = services.log
        stats = services.stats
        node_id = services.settings.node_id
        partitions = [
            PartitionRow(p.topic, p.partition, node_id, p.log_start_offset, p.high_watermark)
            for p in storage.partitions.values()
            if not p.deleted
        ]
        stats.forget_topics_except({row.topic for row in partitions})
        snapshot = Snapshot(
            brokers=max(1, len(services.cluster.registry.live_ids)),
            partitions=partitions,
            all_topics=dataclasses.replace(stats.all_topics),
            topics={name: dataclasses.replace(c) for name, c in stats.topics.items()},
            requests={api_name(key): t.copy() for key, t in stats.requests.items()},
            errors={(api_name(k), error_name(e)): n for (k, e), n in stats.errors.items()},
            budget=_budget(services),
            objects=object_store_counts(storage),
            controller=services.cluster.registry.is_controller,
            denials=dict(stats.denials),
            schema_rejections=dict(stats.schema_rejections),
            schema_dead_letters=dict(stats.schema_dead_letters),
            share_dead_letters=dict(stats.share_dead_letters),
            share_dlq_groups=dict(stats.share_dlq_groups),
            masked_records=dict(stats.masked_records),
            balancer_rounds=dict(stats.balancer_rounds),
            balancer_moves=stats.balancer_moves,
            wal_sync=_wal_sync(storage.wal),
            storage=storage_counts(storage),
            zones=stats.zones.rows(services.settings.broker_rack),
        )
        # The metadata store down: the gauges are left out, the rest is still worth a scrape.
        with contextlib.suppress(Exception):
            snapshot.offline = await read_offline_counts(services)
        led = {(row.topic, row.partition) for row in partitions}
        members = {g: len(group.members) for g, group in services.groups.state.groups.items()}
        # KIP-848 groups (and classic ones converted to them) are the consumer machine's,
        # as DescribeGroups answers them.
        members.update(
            (g, len(group.members)) for g, group in services.groups.consumer.groups.items()
        )
        async for group_id, committed in services.groups.offsets.snapshot():
            offsets = {tp: c.offset for tp, c in committed.items() if tp in led}
            if offsets:
                snapshot.groups[group_id] = (members.get(group_id, 0), offsets)
        return snapshot


def error_name(code: int) -> str:
    """Kafka's name of an error code (its `Errors` enum constant), as the `error` label."""
    try:
        return ErrorCode(code).name.upper()
    except ValueError:
        return str(code)


def _wal_sync(wal: object) -> tuple[list[tuple[str, int]], float] | None:
    if not isinstance(wal, FileWal):
        return None
    latency = wal.sync_latency
    return latency.cumulative(), latency.sum_s


def _budget(services: Services) -> dict[str, int]:
    budget = services.log.budget
    return {
        "limit": budget.total_bytes,
        "used": budget.used_bytes,
        "log_cache": budget.log_cache_bytes,
        "block_cache": budget.block_cache_bytes,
        "in_flight": budget.in_flight_bytes,
        "responses": budget.response_bytes,
        "range_records": budget.range_record_bytes,
        "aborted_transactions": budget.aborted_txn_bytes,
    }


def render(snapshot: Snapshot) -> bytes:
    """The Prometheus text exposition of a snapshot, with the process's own metrics."""
    return exposition(families(snapshot), with_process=True)


def families(snapshot: Snapshot) -> Iterable[Metric]:
    yield from _topic_families(snapshot)
    yield from _request_families(snapshot)
    yield from _offset_families(snapshot)
    yield from _group_families(snapshot)
    yield from _own_families(snapshot)
    yield from storage_families(snapshot.storage)
    yield from share_group_families(snapshot.share_dlq_groups)
    yield from zone_families(snapshot.zones)


def _topic_families(snapshot: Snapshot) -> Iterable[Metric]:
    for short, attribute, text in _TOPIC_COUNTERS:
        # prometheus_client appends `_total` to a counter's name.
        family = CounterMetricFamily(
            f"kafka_server_brokertopicmetrics_{short}", text, labels=["topic"]
        )
        # The all-topics series is the same name without the label, as the JMX exporter
        # writes Kafka's topic-less MBean: one family, so the exposition stays valid.
        family.samples.append(
            Sample(f"{family.name}_total", {}, getattr(snapshot.all_topics, attribute))
        )
        for topic, counters in sorted(snapshot.topics.items()):
            family.add_metric([topic], getattr(counters, attribute))
        yield family


def _request_families(snapshot: Snapshot) -> Iterable[Metric]:
    requests = CounterMetricFamily(
        "kafka_network_requestmetrics_requests",
        "Requests answered, by request type",
        labels=["request"],
    )
    window = f": quantiles of each type's latest {REQUEST_TIMES_KEPT} requests"
    histograms = [
        GaugeMetricFamily(
            f"kafka_network_requestmetrics_{name}", text + window, labels=["request", "quantile"]
        )
        for name, text, _ in REQUEST_COMPONENTS
    ]
    errors = CounterMetricFamily(
        "kafka_network_requestmetrics_errors",
        "Error codes in responses, by request type and error (NONE included), as Kafka "
        "counts each response's errorCounts()",
        labels=["request", "error"],
    )
    for labels, count in sorted(snapshot.errors.items()):
        errors.add_metric(list(labels), count)
    yield errors
    for name, times in sorted(snapshot.requests.items()):
        requests.add_metric([name], times.count)
        rows = times.rows()
        if not rows:
            continue
        for family, (_, _, value) in zip(histograms, REQUEST_COMPONENTS, strict=True):
            ordered = sorted(map(value, rows))
            for quantile in QUANTILES:
                family.add_metric([name, str(quantile)], percentile(ordered, quantile))
    yield requests
    yield from histograms


def _offset_families(snapshot: Snapshot) -> Iterable[Metric]:
    yield GaugeMetricFamily("kafka_brokers", "Live brokers in the cluster", value=snapshot.brokers)
    counts: dict[str, int] = {}
    current = GaugeMetricFamily(
        "kafka_topic_partition_current_offset",
        "High watermark of a partition led here",
        labels=["topic", "partition"],
    )
    oldest = GaugeMetricFamily(
        "kafka_topic_partition_oldest_offset",
        "Log start offset of a partition led here",
        labels=["topic", "partition"],
    )
    leader = GaugeMetricFamily(
        "kafka_topic_partition_leader",
        "Leader node of a partition led here",
        labels=["topic", "partition"],
    )
    for row in sorted(snapshot.partitions, key=lambda r: (r.topic, r.partition)):
        labels = [row.topic, str(row.partition)]
        current.add_metric(labels, row.high_watermark)
        oldest.add_metric(labels, row.log_start_offset)
        leader.add_metric(labels, row.leader)
        counts[row.topic] = counts.get(row.topic, 0) + 1
    partitions = GaugeMetricFamily(
        "kafka_topic_partitions", "Partitions of a topic led here", labels=["topic"]
    )
    for topic, count in sorted(counts.items()):
        partitions.add_metric([topic], count)
    yield from (partitions, current, oldest, leader)


# A scrape's per group-partition series (~300 bytes each, as kafka_exporter's): past this
# many (~9 MB), later groups in name order keep only their per-topic lag sums, so a
# broker with very many groups still answers within Prometheus's 10 s scrape timeout.
GROUP_PARTITION_SERIES_MAX = 30_000


def _group_families(snapshot: Snapshot) -> Iterable[Metric]:
    watermarks = {(r.topic, r.partition): r.high_watermark for r in snapshot.partitions}
    labels = ["consumergroup", "topic", "partition"]
    current = GaugeMetricFamily(
        "kafka_consumergroup_current_offset", "Committed offset of a group", labels=labels
    )
    lag = GaugeMetricFamily(
        "kafka_consumergroup_lag", "High watermark minus committed offset", labels=labels
    )
    lag_sum = GaugeMetricFamily(
        "kafka_consumergroup_lag_sum",
        "A group's lag over a topic's partitions led here",
        labels=["consumergroup", "topic"],
    )
    members = GaugeMetricFamily(
        "kafka_consumergroup_members", "Members of a group", labels=["consumergroup"]
    )
    omitted = GaugeMetricFamily(
        "contextplane_metrics_group_partition_series_omitted",
        "Group-partitions left out of kafka_consumergroup_current_offset and _lag"
        f" (at most {GROUP_PARTITION_SERIES_MAX} per scrape; _lag_sum still covers them)",
    )
    room = GROUP_PARTITION_SERIES_MAX
    left_out = 0
    for group_id, (count, offsets) in sorted(snapshot.groups.items()):
        members.add_metric([group_id], count)
        sums: dict[str, int] = {}
        for (topic, partition), offset in sorted(offsets.items()):
            behind = max(0, watermarks[(topic, partition)] - offset)
            sums[topic] = sums.get(topic, 0) + behind
            if room == 0:
                left_out += 1
                continue
            room -= 1
            current.add_metric([group_id, topic, str(partition)], offset)
            lag.add_metric([group_id, topic, str(partition)], behind)
        for topic, total in sorted(sums.items()):
            lag_sum.add_metric([group_id, topic], total)
    omitted.add_metric([], left_out)
    yield from (current, lag, lag_sum, members, omitted)


def _own_families(snapshot: Snapshot) -> Iterable[Metric]:
    yield GaugeMetricFamily(
        "kafka_controller_kafkacontroller_activecontrollercount",
        "1 on the broker that holds the controller lease",
        value=int(snapshot.controller),
    )
    if snapshot.offline is not None:
        yield GaugeMetricFamily(
            "kafka_server_replicamanager_offlinepartitionscount",
            "Partitions targeted at this broker that it does not serve",
            value=snapshot.offline.here,
        )
        yield GaugeMetricFamily(
            "kafka_controller_kafkacontroller_offlinepartitionscount",
            "Partitions without a live leader (on the controller; 0 on the other brokers)",
            value=snapshot.offline.cluster,
        )
    denials = CounterMetricFamily(
        "contextplane_authorization_denied",
        "Authorizations refused (each also an audit record)",
        labels=["operation", "resource_type"],
    )
    for (operation, resource_type), count in sorted(snapshot.denials.items()):
        denials.add_metric([operation, resource_type], count)
    yield denials
    rejected = CounterMetricFamily(
        "contextplane_schema_validation_rejected",
        "Records refused by broker-side schema validation",
        labels=["topic", "reason"],
    )
    for (topic, reason), count in sorted(snapshot.schema_rejections.items()):
        rejected.add_metric([topic, reason], count)
    yield rejected
    dead_letters = CounterMetricFamily(
        "contextplane_schema_validation_dead_lettered",
        "Refused batches sent to the topic's dead-letter topic, by outcome (routed: the "
        "producer was answered success; copied: an idempotent batch, still refused; failed)",
        labels=["topic", "outcome"],
    )
    for (topic, outcome), count in sorted(snapshot.schema_dead_letters.items()):
        dead_letters.add_metric([topic, outcome], count)
    yield dead_letters
    share_dead = CounterMetricFamily(
        "contextplane_share_group_dead_lettered_records",
        "Records share groups gave up on (rejected, or past the delivery count limit), by "
        "outcome (written: copied to the group's dead-letter topic; no_topic, refused, "
        "not_here: archived without a copy)",
        labels=["outcome"],
    )
    for outcome, count in sorted(snapshot.share_dead_letters.items()):
        share_dead.add_metric([outcome], count)
    yield share_dead
    masked = CounterMetricFamily(
        "contextplane_masked_records",
        "Records whose value was masked for a consumer by a masking policy, by action "
        "(fail_closed: a value that could not be masked, sent null)",
        labels=["topic", "action"],
    )
    for (topic, action), count in sorted(snapshot.masked_records.items()):
        masked.add_metric([topic, action], count)
    yield masked
    if snapshot.balancer_rounds:  # autobalancer.controller.enable, on the controller
        rounds = CounterMetricFamily(
            "contextplane_balancer_rounds",
            "The continuous balancer's rounds, by outcome (moved; skipped: unsettled, moves "
            "in flight or balanced enough)",
            labels=["outcome"],
        )
        for outcome, count in sorted(snapshot.balancer_rounds.items()):
            rounds.add_metric([outcome], count)
        yield rounds
        yield CounterMetricFamily(
            "contextplane_balancer_moved_partitions",
            "Partitions the continuous balancer moved",
            value=snapshot.balancer_moves,
        )
    if snapshot.wal_sync is not None:
        buckets, sum_s = snapshot.wal_sync
        yield HistogramMetricFamily(
            "contextplane_wal_sync_seconds",
            "Each write-ahead log group commit's write and fdatasync",
            buckets=buckets,
            sum_value=sum_s,
        )
    budget = GaugeMetricFamily(
        "contextplane_memory_budget_bytes",
        "The memory budget (memory.budget.bytes) and what holds it",
        labels=["kind"],
    )
    for kind, value in snapshot.budget.items():
        budget.add_metric([kind], value)
    yield budget
    if not snapshot.objects:
        return
    requests = CounterMetricFamily(
        "contextplane_object_store_requests",
        "Object store requests since start",
        labels=["operation"],
    )
    for operation, key in (("get", "gets"), ("put", "puts"), ("delete", "deletes")):
        requests.add_metric([operation], snapshot.objects[key])
    transferred = CounterMetricFamily(
        "contextplane_object_store_bytes",
        "Object bytes read and written since start",
        labels=["direction"],
    )
    transferred.add_metric(["read"], snapshot.objects["get_bytes"])
    transferred.add_metric(["written"], snapshot.objects["put_bytes"])
    yield from (requests, transferred)
