"""What each console page shows, copied from the broker's state on the event loop (plain
values only: the page is rendered from them in a worker thread)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any

from contextplane.broker.configs import TOPIC_CONFIGS, retention_configs
from contextplane.broker.probes import object_store_counts
from contextplane.console.lag_history import LagSeries
from contextplane.console.sampler import ConsoleSampler, TopicRates, lag
from contextplane.console.storage_metrics import storage_counts
from contextplane.protocol.error_codes import ErrorCode

if TYPE_CHECKING:
    from contextplane.broker.context import Services

PAGE_SIZE = 500  # rows of a list page (topics, groups, a topic's partitions)
RETENTION_KEYS = ("cleanup.policy", "retention.ms", "retention.bytes")
NO_RATES = TopicRates(0.0, 0.0, 0.0)


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a list: its rows and where it is."""

    rows: list[Any]
    number: int  # from 1
    count: int  # pages in all (at least 1)
    total: int  # rows in all


def paginate(rows: list[Any], number: int, size: int = PAGE_SIZE) -> Page:
    count = max(1, -(-len(rows) // size))
    number = min(max(1, number), count)
    return Page(rows[(number - 1) * size : number * size], number, count, len(rows))


@dataclass(frozen=True, slots=True)
class TopicRow:
    name: str
    partitions: int
    led_here: int
    records: int  # high watermark less log start, over the partitions led here
    retention: dict[str, str]  # RETENTION_KEYS: the topic's own value or the default
    rates: TopicRates


@dataclass(frozen=True, slots=True)
class PartitionRow:
    partition: int
    leader: int | None  # None: not led here
    log_start_offset: int | None
    high_watermark: int | None


@dataclass(frozen=True, slots=True)
class GroupRow:
    group_id: str
    state: str
    protocol_type: str
    total_lag: int | None  # at the latest sample; None: not sampled


@dataclass(frozen=True, slots=True)
class CommittedRow:
    topic: str
    partition: int
    committed: int
    high_watermark: int | None  # None: the partition is not led here
    lag: int | None


@dataclass(slots=True)
class GroupView:
    group_id: str
    state: str
    protocol_type: str
    protocol: str
    members: list[dict[str, str]]
    committed: Page  # of CommittedRow
    history: LagSeries | None  # None before the group's first sample here
    error: str | None = None


def retention(services: Services, name: str) -> dict[str, str]:
    settings = services.settings
    configs = retention_configs(services.topics.configs(name), settings.log_cleanup_policy)
    return {key: configs.get(key, TOPIC_CONFIGS[key][1](settings)) for key in RETENTION_KEYS}


def overview(services: Services, sampler: ConsoleSampler) -> dict[str, Any]:
    partitions = [p for p in services.log.partitions.values() if not p.deleted]
    _, groups = services.groups.list_groups()
    storage = storage_counts(services.log)
    objects = object_store_counts(services.log)
    return {
        "node_id": services.settings.node_id,
        "cluster_id": services.cluster.cluster_id,
        "brokers": sorted(services.cluster.registry.live_ids) or [services.settings.node_id],
        "topics": len(services.topics.topics()),
        "partitions": sum(t.partitions for t in services.topics.topics().values()),
        "partitions_led": len(partitions),
        "groups": len(groups),
        "records": sum(p.high_watermark - p.log_start_offset for p in partitions),
        "objects": objects,
        "uploads": int(storage["uploads"]),
        "upload_bytes": int(storage["upload_bytes"]),
        "budget_used": services.log.budget.used_bytes,
        "budget_limit": services.log.budget.total_bytes,
        "all_topics": services.stats.all_topics,
        "rates": _sum_rates(sampler.rates.values()),
    }


def _sum_rates(rates: Any) -> TopicRates:
    rows = list(rates)
    return TopicRates(
        sum(r.records_in for r in rows),
        sum(r.bytes_in for r in rows),
        sum(r.bytes_out for r in rows),
    )


def topic_page(
    services: Services, sampler: ConsoleSampler, number: int, size: int = PAGE_SIZE
) -> Page:
    """A page of topics by name; only its rows are built (retention, rates, records)."""
    topics = services.topics.topics()
    names = paginate(sorted(topics), number, size)
    wanted = set(names.rows)
    led: dict[str, list[Any]] = {}
    for p in services.log.partitions.values():
        if p.topic in wanted and not p.deleted:
            led.setdefault(p.topic, []).append(p)
    rows = [
        TopicRow(
            name,
            topics[name].partitions,
            len(led.get(name, [])),
            sum(p.high_watermark - p.log_start_offset for p in led.get(name, [])),
            retention(services, name),
            sampler.rates.get(name, NO_RATES),
        )
        for name in names.rows
    ]
    return Page(rows, names.number, names.count, names.total)


def topic_view(services: Services, sampler: ConsoleSampler, name: str) -> dict[str, Any] | None:
    record = services.topics.topics().get(name)
    if record is None:
        return None
    node_id = services.settings.node_id
    led = {
        p.partition: p
        for p in services.log.partitions.values()
        if p.topic == name and not p.deleted
    }
    partitions = [
        PartitionRow(i, node_id, led[i].log_start_offset, led[i].high_watermark)
        if i in led
        else PartitionRow(i, None, None, None)
        for i in range(record.partitions)
    ]
    return {
        "name": name,
        # Kafka's form of a Uuid (URL-safe base64, unpadded), as its tools and clients show it.
        "topic_id": base64.urlsafe_b64encode(record.topic_id).rstrip(b"=").decode(),
        "retention": retention(services, name),
        "configs": dict(sorted(record.configs.items())),
        "rates": sampler.rates.get(name, NO_RATES),
        "partitions": partitions,
    }


def group_rows(services: Services, sampler: ConsoleSampler) -> list[GroupRow]:
    _, listed = services.groups.list_groups()
    return sorted(
        (
            GroupRow(
                g["group_id"],
                g["group_state"],
                g["protocol_type"],
                sampler.total_lag.get(g["group_id"]),
            )
            for g in listed
        ),
        key=lambda row: row.group_id,
    )


async def group_view(
    services: Services, sampler: ConsoleSampler, group_id: str, number: int
) -> GroupView | None:
    """The group's state, members and page `number` of its committed offsets now; None
    when the coordinator knows no such group and it has no offsets (a 404). Only the
    page's rows are built (a group of 100,000 partitions: 350 ms of the loop to build
    them all, 8 ms for its last page: a scratch script, medians of 7, interleaved)."""
    [described] = services.groups.describe_groups([group_id])
    error, topics = await services.groups.fetch_offsets(group_id, None)
    total = sum(len(topic["partitions"]) for topic in topics)
    if described["group_state"] == "Dead" and not total and error == ErrorCode.none:
        return None
    count = max(1, -(-total // PAGE_SIZE))
    number = min(max(1, number), count)
    entries = ((topic["name"], entry) for topic in topics for entry in topic["partitions"])
    start = (number - 1) * PAGE_SIZE
    rows = []
    for name, entry in islice(entries, start, start + PAGE_SIZE):
        offset = entry["committed_offset"]
        led = services.log.partitions.get((name, entry["partition_index"]))
        watermark = None if led is None or led.deleted else led.high_watermark
        behind = None if watermark is None else lag(watermark, offset)
        rows.append(CommittedRow(name, entry["partition_index"], offset, watermark, behind))
    series = sampler.history.series(group_id)
    view = GroupView(
        group_id=group_id,
        state=described["group_state"],
        protocol_type=described["protocol_type"],
        protocol=described["protocol_data"],
        members=[
            {
                "member_id": m["member_id"],
                "instance_id": m["group_instance_id"] or "",
                "client_id": m["client_id"],
                "client_host": m["client_host"],
            }
            for m in described["members"]
        ],
        committed=Page(rows, number, count, total),
        history=series if series is not None and series.times_ms else None,
        error=None if error == ErrorCode.none else error.name,
    )
    return view
