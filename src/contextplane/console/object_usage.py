"""The console's object store page: what the object index holds (objects and bytes, in all
and per topic, from the metadata store), what this broker asked of the object store since
it started (PUTs and GETs, their bytes), and a month's cost at those rates.

The cost is `contextplane cost`'s model (`cli/cost_model.py`) and inputs
(`cli/cost_inputs.py`): the price table `console.cost.prices`, a workload measured here
(bytes in per second since start, bytes out over bytes in, the broker's `log.retention.ms`,
its partitions and live brokers), PUTs and GETs per GiB from this broker's counters (the
benchmark's, bench/RESULTS.md, while too few bytes went through to give a rate), and
the model's own defaults for what a broker cannot see (3 zones, clients not zone-local, 3
Kafka brokers); the page lists every assumption the model prints. Beside it, the bytes
stored now at the table's storage price.

The index's two aggregate queries scan its tables: their answer is kept `USAGE_CACHE_S`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from contextplane.broker.probes import object_store_counts
from contextplane.cli import cost_inputs
from contextplane.cli.cost_model import (
    CrossZone,
    Deployment,
    Prices,
    RequestRate,
    Workload,
    assumptions,
    contextplane_cost,
    kafka_cost,
)
from contextplane.clock import SystemClock
from contextplane.console.storage_metrics import storage_counts
from contextplane.metadata.records import ObjectUsage

if TYPE_CHECKING:
    from contextplane.broker.context import Services

USAGE_CACHE_S = 10.0
MIB = 1024 * 1024
MS_PER_DAY = 86_400_000
RETENTION_DAYS_UNBOUNDED = 3650.0  # log.retention.ms -1 priced at the model's longest
ZONES = 3  # cost_inputs' defaults for what the broker does not know
KAFKA_BROKERS = 3
_CLOCK = SystemClock()


@dataclass(frozen=True, slots=True)
class TopicUsage:
    topic: str
    objects: int
    range_bytes: int
    monthly: float | None  # its bytes at the storage price; None without prices


@dataclass(frozen=True, slots=True)
class CostEstimate:
    prices: Prices
    price_file: str
    stored_monthly: float  # the bytes stored now at the storage price
    ours: Deployment | None  # None: nothing produced since start, no rates to go by
    theirs: Deployment | None
    workload: Workload | None
    assumptions: list[str]


class UsageReader:
    """The object index's usage, read at most every `USAGE_CACHE_S`."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._started_ms = _CLOCK.monotonic_ms()
        self._usage: ObjectUsage | None = None
        self._read_ms = 0
        self._prices: tuple[Prices, str] | None = None  # read once: a file of a few KiB

    @property
    def uptime_s(self) -> float:
        return max(1.0, (_CLOCK.monotonic_ms() - self._started_ms) / 1000)

    async def usage(self) -> ObjectUsage:
        now = _CLOCK.monotonic_ms()
        if self._usage is None or now - self._read_ms > USAGE_CACHE_S * 1000:
            self._usage = await self._services.log.metadata.object_usage()
            self._read_ms = now
        return self._usage

    async def page(self) -> dict[str, Any]:
        """What the page shows, as plain values (rendered in a worker thread)."""
        services = self._services
        usage = await self.usage()
        requests = object_store_counts(services.log)
        every = services.stats.all_topics
        estimate: CostEstimate | None = None
        problem: str | None = None
        try:
            estimate = self._estimate(usage, requests, every.bytes_in, every.bytes_out)
        except cost_inputs.InputError as exc:
            problem = str(exc)
        price = estimate.prices.object_storage_per_gb_month if estimate else None
        topics = sorted(
            (
                TopicUsage(
                    topic,
                    objects,
                    size,
                    None if price is None else size / cost_inputs.GIB * price,
                )
                for topic, (objects, size) in usage.by_topic.items()
            ),
            key=lambda row: (-row.range_bytes, row.topic),
        )
        return {
            "usage": usage,
            "topics": topics,
            "requests": requests,
            "uploads": storage_counts(services.log),
            "bytes_in": every.bytes_in,
            "bytes_out": every.bytes_out,
            "uptime_s": self.uptime_s,
            "estimate": estimate,
            "problem": problem,
            "store_url": services.settings.object_store_url,
        }

    def _estimate(
        self, usage: ObjectUsage, requests: dict[str, int], bytes_in: int, bytes_out: int
    ) -> CostEstimate:
        settings = self._services.settings
        prices, file_name = self._price_table(settings.console_cost_prices)
        stored = usage.object_bytes / cost_inputs.GIB * prices.object_storage_per_gb_month
        if not bytes_in or not requests:
            return CostEstimate(prices, file_name, stored, None, None, None, [])
        partitions = max(1, sum(t.partitions for t in self._services.topics.topics().values()))
        puts, gets = self._rates(requests, bytes_in, bytes_out, partitions)
        retention_ms = settings.retention_ms
        days = RETENTION_DAYS_UNBOUNDED if retention_ms < 0 else retention_ms / MS_PER_DAY
        workload = Workload(
            write_mibps=bytes_in / MIB / self.uptime_s,
            read_fanout=bytes_out / bytes_in,
            retention_days=days,
            partitions=partitions,
            zones=ZONES,
            brokers=max(1, len(self._services.cluster.registry.live_ids)),
            kafka_brokers=KAFKA_BROKERS,
            zone_local_clients=False,
        )
        crossing = self._crossing()
        return CostEstimate(
            prices,
            file_name,
            stored,
            contextplane_cost(workload, prices, puts, gets, crossing),
            kafka_cost(workload, prices),
            workload,
            assumptions(workload, prices, puts, gets, crossing),
        )

    def _crossing(self) -> CrossZone | None:
        """The measured cross-zone shares (broker/zones.py), as `cost --metrics-url`."""
        bytes_by: dict[tuple[str, str], float] = {}
        services = self._services
        for _, relation, bytes_in, bytes_out in services.stats.zones.rows(
            services.settings.broker_rack
        ):
            for key, count in ((("in", relation), bytes_in), (("out", relation), bytes_out)):
                bytes_by[key] = bytes_by.get(key, 0.0) + count
        return cost_inputs.zone_shares(bytes_by, "this broker's counters since it started")

    def _rates(
        self, requests: dict[str, int], bytes_in: int, bytes_out: int, partitions: int
    ) -> tuple[RequestRate, RequestRate]:
        """PUTs and GETs per GiB from this broker's counters; the benchmark's
        (bench/RESULTS.md, as `contextplane cost` without --metrics-url) when the counters
        give no rate a month could be priced at (too few bytes yet: a partly filled object
        a PUT)."""
        where = "this broker's counters since it started"
        try:
            puts, gets = cost_inputs.counter_rates(
                "this broker's counters",
                where,
                requests.get("puts", 0),
                requests.get("gets", 0),
                bytes_in,
                bytes_out,
            )
        except cost_inputs.InputError:
            bench_puts, bench_gets = cost_inputs.bench_rates(cost_inputs.BENCH_RESULTS, partitions)
            counted = f"{requests.get('puts', 0):,} PUTs, {requests.get('gets', 0):,} GETs"
            why = (
                f"{where} give no rate ({counted} for {bytes_in:,} bytes in and {bytes_out:,}"
                " out: too few bytes yet), so"
            )
            return (
                RequestRate(bench_puts.per_gib, f"{why} {bench_puts.source}"),
                RequestRate(bench_gets.per_gib, f"{why} {bench_gets.source}"),
            )
        assert puts is not None  # bytes in were counted
        return puts, gets or RequestRate(0.0, f"{where}: nothing read")

    def _price_table(self, name: str) -> tuple[Prices, str]:
        if self._prices is None:
            try:
                path = cost_inputs.price_file(name)
                self._prices = (cost_inputs.prices(path), path.name)
            except cost_inputs.InputError as exc:
                raise cost_inputs.InputError(f"console.cost.prices: {exc}") from None
        return self._prices
