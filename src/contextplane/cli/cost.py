"""`contextplane cost`: what a workload costs a month on contextplane against the classic
Kafka deployment (replication factor 3 on block storage), at the list prices of a price
table in deploy/prices/, printed with every assumption the figures rest on.

    contextplane cost --write-mibps 10 --read-fanout 2 --retention-days 7
    contextplane cost --workload workload.toml --prices gcp-us-central1 --output json
    contextplane cost --write-mibps 10 --metrics-url http://127.0.0.1:8080/metrics
    contextplane cost --write-mibps 10 --plot cost.png      # needs contextplane[cost]

The object store's PUTs per GiB written and GETs per GiB read come from `--puts-per-gib`
and `--gets-per-gib`, else from a running broker's counters (`--metrics-url`), else from
bench/RESULTS.md at the nearest partition count; the output says which. The shares of
produced and read bytes that cross zones are the broker's measured ones with
`--metrics-url` where it saw clients of a known zone (broker/zones.py), else modelled. It needs no
cluster otherwise. Exit status 2 for an input it cannot use, 1 when the broker did not
answer or had nothing to measure, or the plot could not be written.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from contextplane.cli import cost_inputs
from contextplane.cli.cost_inputs import WORKLOAD_FIELDS, ZONE_LOCAL, InputError
from contextplane.cli.cost_model import (
    CrossZone,
    Deployment,
    Prices,
    RequestRate,
    Workload,
    assumptions,
    contextplane_cost,
    cross_zone_shares,
    kafka_cost,
    totals_by_retention,
)
from contextplane.cli.output import add_output_argument, fail, print_json, print_table

DEFAULT_PRICES = "aws-us-east-1"
PLOT_DAYS = range(1, 366)
INSTALL_HINT = "pip install contextplane[cost]"
TITLES = {"contextplane": "contextplane", "kafka": "Kafka (RF=3)"}


def add_parser(sub: Any) -> None:
    cost = sub.add_parser(
        "cost", help="a workload's monthly cost on contextplane against Kafka on replicated disks"
    )
    cost.add_argument(
        "--workload", type=Path, metavar="FILE", help="a TOML file of the flags below"
    )
    for name, spec in WORKLOAD_FIELDS.items():
        default = "required" if spec.default is None else f"default {spec.default:g}"
        cost.add_argument(
            f"--{name}",
            type=spec.kind,
            help=f"{spec.low:g} to {spec.high:g} ({default})",
        )
    cost.add_argument(
        f"--{ZONE_LOCAL}",
        action=argparse.BooleanOptionalAction,
        help="price the zone-aware path (RFC 0004 §7, designed, not built): clients produce and"
        " fetch within their zone (default: no, today's path)",
    )
    cost.add_argument(
        "--prices",
        default=DEFAULT_PRICES,
        metavar="NAME|FILE",
        help=f"a deploy/prices/ table by name (its newest) or a file (default {DEFAULT_PRICES})",
    )
    cost.add_argument(
        "--metrics-url",
        metavar="URL",
        help="a broker's /metrics: its request rates, and the cross-zone shares it measured",
    )
    cost.add_argument(
        "--bench-results",
        type=Path,
        default=cost_inputs.BENCH_RESULTS,
        metavar="FILE",
        help="the benchmark table the rates come from otherwise (default bench/RESULTS.md)",
    )
    cost.add_argument("--puts-per-gib", type=float, help="object PUTs per GiB written")
    cost.add_argument("--gets-per-gib", type=float, help="object GETs per GiB read")
    cost.add_argument(
        "--plot",
        type=Path,
        metavar="FILE.png",
        help="also draw cost against retention (1-365 days)",
    )
    add_output_argument(cost)


def run(args: argparse.Namespace) -> int:
    try:
        return _cost(args)
    except InputError as exc:
        fail("cost", str(exc))
        return exc.status


def _cost(args: argparse.Namespace) -> int:
    if args.plot is not None:
        _check_plot(args.plot)
    given = {name: getattr(args, name.replace("-", "_")) for name in WORKLOAD_FIELDS}
    given[ZONE_LOCAL] = getattr(args, ZONE_LOCAL.replace("-", "_"))
    load = cost_inputs.workload(given, args.workload)
    price_path = cost_inputs.price_file(args.prices)
    prices = cost_inputs.prices(price_path)
    puts, gets, crossing = _request_rates(args, load)
    ours = contextplane_cost(load, prices, puts, gets, crossing)
    theirs = kafka_cost(load, prices)
    said = assumptions(load, prices, puts, gets, crossing)
    if args.plot is not None:
        _plot(args.plot, load, prices, puts, gets, crossing)
    rates = (puts, gets, crossing)
    if args.output == "json":
        print_json(_document(load, prices, price_path, rates, (ours, theirs), said, args.plot))
        return 0
    _print(load, prices, price_path, rates, (ours, theirs), said, args.plot)
    return 0


Rates = tuple[RequestRate, RequestRate, CrossZone | None]


def _request_rates(args: argparse.Namespace, load: Workload) -> Rates:
    """Flags first, then the broker's counters, then the benchmark's table; the measured
    cross-zone shares only from the broker's counters."""
    puts = (
        cost_inputs.flag_rate("--puts-per-gib", args.puts_per_gib)
        if args.puts_per_gib is not None
        else None
    )
    gets = (
        cost_inputs.flag_rate("--gets-per-gib", args.gets_per_gib)
        if args.gets_per_gib is not None
        else None
    )
    if puts is not None and gets is not None and not args.metrics_url:
        return puts, gets, None
    if args.metrics_url:
        measured_puts, measured_gets, crossing = cost_inputs.metrics_rates(
            args.metrics_url, rates_needed=puts is None or gets is None
        )
        puts = puts or measured_puts
        gets = gets or measured_gets
        for rate, what, flag in (
            (puts, "produced", "--puts-per-gib"),
            (gets, "read", "--gets-per-gib"),
        ):
            if rate is None:
                raise InputError(
                    f"{args.metrics_url}: no record bytes {what} since the broker started,"
                    f" nothing to divide its requests by (give {flag})",
                    from_broker=True,
                )
        assert puts is not None and gets is not None
        return puts, gets, crossing
    bench_puts, bench_gets = cost_inputs.bench_rates(args.bench_results, load.partitions)
    return puts or bench_puts, gets or bench_gets, None


def _check_plot(path: Path) -> None:
    """Before anything is computed: a plot that cannot be drawn is said at once."""
    if path.suffix.lower() != ".png":
        raise InputError(f"--plot {path}: a .png file name is needed")
    try:
        import matplotlib  # noqa: F401  # the optional extra `cost`
    except ImportError:
        raise InputError(
            f"--plot needs matplotlib, which is not installed: {INSTALL_HINT}"
        ) from None


def _plot(
    path: Path,
    load: Workload,
    prices: Prices,
    puts: RequestRate,
    gets: RequestRate,
    crossing: CrossZone | None,
) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display: a file only
    from matplotlib.figure import Figure
    from matplotlib.ticker import StrMethodFormatter

    ours, theirs = totals_by_retention(load, prices, puts, gets, PLOT_DAYS, crossing)
    figure = Figure(figsize=(8, 4.5), layout="tight")
    axes = figure.subplots()
    axes.plot(PLOT_DAYS, ours, label=TITLES["contextplane"])
    axes.plot(PLOT_DAYS, theirs, label=TITLES["kafka"])
    axes.axvline(
        load.retention_days, color="grey", linestyle=":", label="this workload's retention"
    )
    axes.set_xlabel("retention (days)")
    axes.set_ylabel(f"cost per month ({prices.currency})")
    axes.set_xlim(PLOT_DAYS[0], PLOT_DAYS[-1])
    axes.set_ylim(bottom=0)
    axes.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    axes.set_title(
        f"{load.write_mibps:g} MiB/s written, read {load.read_fanout:g}×, {load.zones} zones;"
        f" {prices.provider} {prices.region} list prices of {prices.as_of}",
        fontsize=10,
    )
    axes.grid(alpha=0.3)
    axes.legend()
    try:
        figure.savefig(path, format="png", dpi=100)
    except OSError as exc:
        raise InputError(f"--plot {path}: {exc.strerror or exc}", from_broker=True) from None


def _rate(per_gib: float) -> str:
    return f"{per_gib:,.0f}" if per_gib >= 1000 else f"{per_gib:.4g}"


def _crossing_line(load: Workload, crossing: CrossZone | None) -> str:
    """Which cross-zone shares are measured and which modelled."""
    produced, read = cross_zone_shares(load, crossing)

    def said(share: float, measured: float | None) -> str:
        return f"{share:.1%} ({'measured' if measured is not None else 'modelled'})"

    shares = (
        f"cross-zone share: {said(produced, crossing and crossing.produced)} of produced,"
        f" {said(read, crossing and crossing.read)} of read bytes"
    )
    if load.zone_local_clients:
        return "cross-zone share: none (modelled: --zone-local-clients)"
    return shares if crossing is None else f"{shares} from {crossing.source}"


def _shown(path: Path) -> str:
    """A path inside the repository as the repository names it."""
    try:
        return path.resolve().relative_to(cost_inputs.REPOSITORY).as_posix()
    except ValueError:
        return str(path)


def _print(
    load: Workload,
    prices: Prices,
    price_path: Path,
    rates: Rates,
    deployments: tuple[Deployment, Deployment],
    said: list[str],
    plot: Path | None,
) -> None:
    puts, gets, crossing = rates
    print(
        f"workload: {load.write_mibps:g} MiB/s written, read {load.read_fanout:g}×, retained"
        f" {load.retention_days:g} days, {load.partitions:,} partitions, {load.zones} zones"
    )
    print(f"prices: {_shown(price_path)} (list prices as of {prices.as_of}, to be checked)")
    print(f"PUTs per GiB written: {_rate(puts.per_gib)} from {puts.source}")
    print(f"GETs per GiB read: {_rate(gets.per_gib)} from {gets.source}")
    print(_crossing_line(load, crossing))
    print()
    rows: list[list[object]] = []
    for deployment in deployments:
        title = TITLES[deployment.name]
        for item in deployment.items:
            rows.append(
                [title, item.item, f"{item.quantity:,.2f}", item.unit, f"{item.unit_price:g}",
                 f"{item.monthly:,.2f}"]
            )  # fmt: skip
        rows.append([title, "total", "", "", "", f"{deployment.total:,.2f}"])
    columns = (
        "deployment",
        "item",
        "quantity",
        "unit",
        "unit price",
        f"per month ({prices.currency})",
    )
    print_table(columns, rows)
    ours, theirs = deployments
    if ours.total > 0:
        print(f"\nKafka (RF=3) ÷ contextplane: {theirs.total / ours.total:.2f}")
    if plot is not None:
        print(f"plot: {plot}")
    print("\nassumptions:")
    for line in said:
        print(f"- {line}")


def _document(
    load: Workload,
    prices: Prices,
    price_path: Path,
    rates: Rates,
    deployments: tuple[Deployment, Deployment],
    said: list[str],
    plot: Path | None,
) -> dict[str, Any]:
    puts, gets, crossing = rates
    produced, read = cross_zone_shares(load, crossing)
    document: dict[str, Any] = {
        "workload": dataclasses.asdict(load),
        "prices": {**dataclasses.asdict(prices), "as_of": prices.as_of.isoformat(),
                   "file": _shown(price_path)},
        "request_rates": {
            "puts_per_gib": dataclasses.asdict(puts),
            "gets_per_gib": dataclasses.asdict(gets),
        },
        "cross_zone": {
            "produced_share": produced,
            "read_share": read,
            "produced_measured": crossing is not None and crossing.produced is not None,
            "read_measured": crossing is not None and crossing.read is not None,
            "source": None if crossing is None else crossing.source,
        },
        "deployments": {
            d.name: {"items": [dataclasses.asdict(i) for i in d.items], "monthly_total": d.total}
            for d in deployments
        },
        "assumptions": said,
    }  # fmt: skip
    if plot is not None:
        document["plot"] = str(plot)
    return document
