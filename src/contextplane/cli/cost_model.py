"""The arithmetic of `contextplane cost`: a month of one workload on contextplane (objects
in a regional object store, brokers that keep no replicas) against the classic Kafka
deployment (three replicas on block storage, spread over zones), at list prices.

Pure functions of their inputs, no I/O: `cli/cost_inputs.py` reads the prices, the
workload and the request rates; `cli/cost.py` prints what this computes. Every figure a
line item uses is named in `assumptions`, so the printed model can be checked by hand.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, replace

GIB_PER_MIB = 1 / 1024
HOURS_PER_MONTH = 730  # the month both providers' hourly prices are multiplied by
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600
SECONDS_PER_DAY = 86_400
KAFKA_REPLICATION_FACTOR = 3
CONTEXTPLANE = "contextplane"
KAFKA = "kafka"


@dataclass(frozen=True, slots=True)
class Workload:
    write_mibps: float  # record bytes produced, as stored (after client compression)
    read_fanout: float  # how many times each written byte is read
    retention_days: float
    partitions: int
    zones: int
    brokers: int  # contextplane brokers
    kafka_brokers: int
    zone_local_clients: bool  # contextplane clients produce and fetch within their zone


@dataclass(frozen=True, slots=True)
class Prices:
    """One price file (`deploy/prices/*.toml`): list prices in `currency`."""

    provider: str
    region: str
    currency: str
    as_of: datetime.date
    object_storage_name: str
    object_storage_per_gb_month: float
    put_per_1000: float
    get_per_1000: float
    cross_zone_per_gb: float
    instance_name: str
    instance_per_hour: float
    block_storage_name: str
    block_storage_per_gb_month: float


@dataclass(frozen=True, slots=True)
class RequestRate:
    """Object store requests per GiB (written for PUTs, read for GETs) and where from."""

    per_gib: float
    source: str


@dataclass(frozen=True, slots=True)
class CrossZone:
    """Shares of record bytes that crossed zones as a broker measured them (its
    `contextplane_zone_record_bytes_total`): produced and read, each None where it saw no
    bytes of a client in a known zone (the model's share stands), and where from."""

    produced: float | None
    read: float | None
    source: str


@dataclass(frozen=True, slots=True)
class LineItem:
    item: str
    quantity: float
    unit: str
    unit_price: float
    monthly: float


@dataclass(frozen=True, slots=True)
class Deployment:
    name: str
    items: tuple[LineItem, ...]

    @property
    def total(self) -> float:
        return sum(item.monthly for item in self.items)


@dataclass(frozen=True, slots=True)
class Volumes:
    """The workload's bytes in a month, in GiB."""

    written_gib: float
    read_gib: float
    retained_gib: float


def volumes(workload: Workload) -> Volumes:
    written = workload.write_mibps * GIB_PER_MIB * SECONDS_PER_MONTH
    return Volumes(
        written_gib=written,
        read_gib=written * workload.read_fanout,
        retained_gib=workload.write_mibps * GIB_PER_MIB * SECONDS_PER_DAY * workload.retention_days,
    )


def other_zone_share(zones: int) -> float:
    """The share of clients (and of partition leaders) outside a given zone when both are
    spread evenly: 2/3 with three zones, none with one."""
    return (zones - 1) / zones


def kafka_replicas_across_zones(zones: int) -> int:
    """Followers of a partition outside its leader's zone, replicas spread one per zone."""
    return min(KAFKA_REPLICATION_FACTOR - 1, zones - 1)


def cross_zone_shares(workload: Workload, crossing: CrossZone | None) -> tuple[float, float]:
    """The shares of produced and of read bytes that cross zones: none for zone-local
    clients, else measured where `crossing` has them, else modelled (`other_zone_share`)."""
    if workload.zone_local_clients:
        return 0.0, 0.0
    modelled = other_zone_share(workload.zones)
    if crossing is None:
        return modelled, modelled
    produced = modelled if crossing.produced is None else crossing.produced
    return produced, modelled if crossing.read is None else crossing.read


def contextplane_cost(
    workload: Workload,
    prices: Prices,
    puts: RequestRate,
    gets: RequestRate,
    crossing: CrossZone | None = None,
) -> Deployment:
    v = volumes(workload)
    put_count = v.written_gib * puts.per_gib
    get_count = v.read_gib * gets.per_gib
    produced_share, read_share = cross_zone_shares(workload, crossing)
    across = v.written_gib * produced_share + v.read_gib * read_share
    return Deployment(
        CONTEXTPLANE,
        (
            _item(
                "object storage", v.retained_gib, "GiB-month", prices.object_storage_per_gb_month
            ),
            _item("PUT requests", put_count / 1000, "1,000 PUTs", prices.put_per_1000),
            _item("GET requests", get_count / 1000, "1,000 GETs", prices.get_per_1000),
            _item("cross-zone transfer", across, "GiB", prices.cross_zone_per_gb),
            _item(
                "compute",
                workload.brokers * HOURS_PER_MONTH,
                "instance-hours",
                prices.instance_per_hour,
            ),
        ),  # fmt: skip
    )


def kafka_cost(workload: Workload, prices: Prices) -> Deployment:
    v = volumes(workload)
    share = other_zone_share(workload.zones)
    replication = v.written_gib * kafka_replicas_across_zones(workload.zones)
    return Deployment(
        KAFKA,
        (
            _item(
                "block storage",
                v.retained_gib * KAFKA_REPLICATION_FACTOR,
                "GiB-month",
                prices.block_storage_per_gb_month,
            ),
            _item("cross-zone replication", replication, "GiB", prices.cross_zone_per_gb),
            _item("cross-zone produce", v.written_gib * share, "GiB", prices.cross_zone_per_gb),
            _item("cross-zone consume", v.read_gib * share, "GiB", prices.cross_zone_per_gb),
            _item(
                "compute",
                workload.kafka_brokers * HOURS_PER_MONTH,
                "instance-hours",
                prices.instance_per_hour,
            ),
        ),  # fmt: skip
    )


def _item(item: str, quantity: float, unit: str, unit_price: float) -> LineItem:
    return LineItem(item, quantity, unit, unit_price, quantity * unit_price)


def _measured_zone_text(crossing: CrossZone, modelled: float, zones: int) -> str:
    def figure(share: float | None, what: str) -> str:
        if share is None:
            return f"{modelled:.0%} of {what} bytes cross zones (modelled: {zones} zones)"
        return f"{share:.1%} of {what} bytes cross zones (measured)"

    return (
        f"contextplane: {figure(crossing.produced, 'produced')};"
        f" {figure(crossing.read, 'read')}; measured from {crossing.source}"
    )


def totals_by_retention(
    workload: Workload,
    prices: Prices,
    puts: RequestRate,
    gets: RequestRate,
    days: range,
    crossing: CrossZone | None = None,
) -> tuple[list[float], list[float]]:
    """Monthly totals (contextplane, Kafka) of the same workload at each retention."""
    ours, theirs = [], []
    for day in days:
        at = replace(workload, retention_days=float(day))
        ours.append(contextplane_cost(at, prices, puts, gets, crossing).total)
        theirs.append(kafka_cost(at, prices).total)
    return ours, theirs


def assumptions(
    workload: Workload,
    prices: Prices,
    puts: RequestRate,
    gets: RequestRate,
    crossing: CrossZone | None = None,
) -> list[str]:
    """Every figure and simplification the line items rest on, in words."""
    share = other_zone_share(workload.zones)
    zones = workload.zones
    if workload.zone_local_clients:
        zone_text = (
            "contextplane: clients are zone-local (each produces to and fetches from a"
            " broker in its own zone: the zone-aware path of RFC 0004 §7), so no record"
            " bytes cross zones; only metadata does, and object store traffic within the"
            " region is not charged by zone. That path is designed, not yet built: today a"
            " client reaches each partition's leader (the default prices that)"
        )
    elif crossing is not None:
        zone_text = _measured_zone_text(crossing, share, zones)
    else:
        zone_text = (
            f"contextplane: clients reach each partition's leader, in another zone for"
            f" {share:.0%} of partitions ({zones} zones), so that share of produced and"
            " read bytes crosses zones (modelled)"
        )
    return [
        f"prices: {prices.provider} {prices.region}, list prices as of {prices.as_of}"
        f" in {prices.currency}, to be checked; a price per GB is applied per GiB",
        f"a month is {HOURS_PER_MONTH} hours; the workload runs at a constant rate all month",
        f"written: {workload.write_mibps:g} MiB/s of record bytes as stored (after client"
        f" compression); read: {workload.read_fanout:g} × the written bytes",
        f"retained: write rate × {workload.retention_days:g} days, the steady state",
        "contextplane: retained bytes stored once in the object store, whose own durability"
        f" replaces replication ({prices.object_storage_name})",
        f"contextplane: {puts.per_gib:g} PUTs per GiB written ({puts.source})",
        f"contextplane: {gets.per_gib:g} GETs per GiB read ({gets.source}); every byte"
        " read is priced at that rate (reads served from a broker's caches make fewer)",
        zone_text,
        "contextplane: the brokers' write-ahead log disks (seconds of data), the metadata"
        " store (SQLite, or one PostgreSQL for a cluster) and DELETE requests (free) are"
        " not priced",
        f"compute: {workload.brokers} contextplane and {workload.kafka_brokers} Kafka"
        f" brokers, each one {prices.instance_name}, as given (not derived from disk,"
        " throughput or partition limits)",
        f"Kafka: replication factor {KAFKA_REPLICATION_FACTOR} on {prices.block_storage_name},"
        " provisioned at exactly the retained bytes × 3 (no free-space headroom, which"
        " real deployments keep: more)",
        f"Kafka: replicas one per zone, so {kafka_replicas_across_zones(zones)} × the written"
        f" bytes cross zones for replication ({zones} zones)",
        f"Kafka: {share:.0%} of producers and consumers are in another zone than the"
        " partition leader they talk to (no follower fetching, KIP-392)",
        f"cross-zone transfer: {prices.cross_zone_per_gb:g} {prices.currency} per GiB that"
        " crosses zones, as the price file gives it (AWS charges both directions, Google"
        " Cloud the sending side)",
        f"partitions: {workload.partitions} (only the request rates taken from"
        " bench/RESULTS.md depend on them)",
    ]
