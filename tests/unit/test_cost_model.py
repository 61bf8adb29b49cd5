"""`contextplane cost`'s model and inputs: the worked example of RFC 0007 "Slice 8 as
built" to the cent, the workload's bounds, the price files of deploy/prices/ and a
malformed one, and the request rates read from bench/RESULTS.md."""

from __future__ import annotations

import datetime
from dataclasses import replace
from pathlib import Path

import pytest

from contextplane.cli import cost_inputs
from contextplane.cli.cost_inputs import WORKLOAD_FIELDS, InputError
from contextplane.cli.cost_model import (
    CrossZone,
    Prices,
    RequestRate,
    Workload,
    contextplane_cost,
    kafka_cost,
    totals_by_retention,
    volumes,
)
from contextplane.cli.main import main

# The worked example: AWS us-east-1 list prices as of 2026-12-01.
PRICES = Prices(
    provider="aws",
    region="us-east-1",
    currency="USD",
    as_of=datetime.date(2026, 12, 1),
    object_storage_name="S3 Standard",
    object_storage_per_gb_month=0.023,
    put_per_1000=0.005,
    get_per_1000=0.0004,
    cross_zone_per_gb=0.02,
    instance_name="m6i.xlarge",
    instance_per_hour=0.192,
    block_storage_name="EBS gp3",
    block_storage_per_gb_month=0.08,
)
WORKLOAD = Workload(
    write_mibps=10,
    read_fanout=2,
    retention_days=7,
    partitions=8,
    zones=3,
    brokers=3,
    kafka_brokers=3,
    zone_local_clients=True,
)
PUTS = RequestRate(138, "--puts-per-gib")
GETS = RequestRate(150, "--gets-per-gib")
FLAGS = {name: None for name in [*WORKLOAD_FIELDS, cost_inputs.ZONE_LOCAL]}


def monthly(deployment_items: tuple, item: str) -> float:  # type: ignore[type-arg]
    return next(i.monthly for i in deployment_items if i.item == item)


def test_the_worked_example_to_the_cent() -> None:
    v = volumes(WORKLOAD)
    assert v.written_gib == pytest.approx(25_664.0625)  # 10 MiB/s × 2,628,000 s / 1024
    assert v.read_gib == pytest.approx(51_328.125)
    assert v.retained_gib == pytest.approx(5_906.25)  # 10 MiB/s × 7 × 86,400 s / 1024

    ours = contextplane_cost(WORKLOAD, PRICES, PUTS, GETS)
    assert monthly(ours.items, "object storage") == pytest.approx(135.84375)
    assert monthly(ours.items, "PUT requests") == pytest.approx(17.708203125)
    assert monthly(ours.items, "GET requests") == pytest.approx(3.0796875)
    assert monthly(ours.items, "cross-zone transfer") == 0
    assert monthly(ours.items, "compute") == pytest.approx(420.48)
    assert ours.total == pytest.approx(577.111640625)

    theirs = kafka_cost(WORKLOAD, PRICES)
    assert monthly(theirs.items, "block storage") == pytest.approx(1_417.5)
    assert monthly(theirs.items, "cross-zone replication") == pytest.approx(1_026.5625)
    assert monthly(theirs.items, "cross-zone produce") == pytest.approx(342.1875)
    assert monthly(theirs.items, "cross-zone consume") == pytest.approx(684.375)
    assert theirs.total == pytest.approx(3_891.105)


def test_zones_set_what_crosses() -> None:
    leaders = replace(WORKLOAD, zone_local_clients=False)
    across = monthly(contextplane_cost(leaders, PRICES, PUTS, GETS).items, "cross-zone transfer")
    assert across == pytest.approx((25_664.0625 + 51_328.125) * 2 / 3 * 0.02)
    one_zone = replace(WORKLOAD, zones=1, zone_local_clients=False)
    assert contextplane_cost(one_zone, PRICES, PUTS, GETS).items[3].monthly == 0
    kafka_one_zone = kafka_cost(one_zone, PRICES)
    assert all(i.monthly == 0 for i in kafka_one_zone.items if i.item.startswith("cross-zone"))
    two = kafka_cost(replace(WORKLOAD, zones=2), PRICES)  # one follower in the other zone
    assert monthly(two.items, "cross-zone replication") == pytest.approx(25_664.0625 * 0.02)


def test_measured_cross_zone_shares_replace_the_model() -> None:
    leaders = replace(WORKLOAD, zone_local_clients=False)
    measured = CrossZone(0.25, None, "a broker")  # produced measured, read modelled
    across = monthly(
        contextplane_cost(leaders, PRICES, PUTS, GETS, measured).items, "cross-zone transfer"
    )
    assert across == pytest.approx((25_664.0625 * 0.25 + 51_328.125 * 2 / 3) * 0.02)
    # Zone-local clients are the model's alone: no bytes cross, measured or not.
    assert contextplane_cost(WORKLOAD, PRICES, PUTS, GETS, measured).items[3].monthly == 0


def test_cost_against_retention_grows_faster_for_replicated_disks() -> None:
    ours, theirs = totals_by_retention(WORKLOAD, PRICES, PUTS, GETS, range(1, 366))
    assert len(ours) == len(theirs) == 365
    assert ours[6] == pytest.approx(577.111640625)  # day 7: the worked example
    assert ours == sorted(ours) and theirs == sorted(theirs)
    assert theirs[-1] - theirs[0] > ours[-1] - ours[0]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("write-mibps", 0, "--write-mibps 0: from 0.001 to 100,000"),
        ("write-mibps", 100_001, "--write-mibps 100001: from 0.001 to 100,000"),
        ("read-fanout", -1, "--read-fanout -1: from 0 to 1,000"),
        ("retention-days", 3651, "--retention-days 3651: from 0.01 to 3,650"),
        ("partitions", 0, "--partitions 0: from 1 to 1,000,000"),
        ("zones", 7, "--zones 7: from 1 to 6"),
        ("brokers", 0, "--brokers 0: from 1 to 10,000"),
        ("kafka-brokers", 2, "--kafka-brokers 2: from 3 to 10,000"),
        ("partitions", 1.5, "--partitions: a whole number is needed, got 1.5"),
        ("write-mibps", float("nan"), "--write-mibps: a number is needed, got nan"),
    ],
)
def test_workload_bounds(name: str, value: float, message: str) -> None:
    given = {**FLAGS, "write-mibps": 1, name: value}
    with pytest.raises(InputError, match="^" + message.replace("+", r"\+") + "$") as caught:
        cost_inputs.workload(given, None)
    assert caught.value.status == 2


def test_a_workload_file_under_the_flags(tmp_path: Path) -> None:
    file = tmp_path / "workload.toml"
    file.write_text("write-mibps = 10\nread_fanout = 2\nzones = 2\nzone-local-clients = false\n")
    load = cost_inputs.workload({**FLAGS, "zones": 3}, file)
    assert (load.write_mibps, load.read_fanout, load.zones) == (10, 2, 3)
    assert load.zone_local_clients is False and load.retention_days == 7  # the default
    file.write_text("write-mibps = 10\nzones = true\n")
    with pytest.raises(InputError, match=f"^{file}: zones: a whole number is needed, got True$"):
        cost_inputs.workload(FLAGS, file)
    file.write_text("write-mbps = 10\n")
    with pytest.raises(InputError, match=f"^{file}: unknown key 'write-mbps'"):
        cost_inputs.workload(FLAGS, file)
    with pytest.raises(InputError, match=r"^--write-mibps is required"):
        cost_inputs.workload(FLAGS, None)


def test_every_price_file_in_the_repository_parses_with_its_date() -> None:
    files = sorted(cost_inputs.PRICES_DIR.glob("*.toml"))
    assert {f.name.rsplit("-", 3)[0] for f in files} >= {"aws-us-east-1", "gcp-us-central1"}
    for file in files:
        prices = cost_inputs.prices(file)
        assert file.name == f"{prices.provider}-{prices.region}-{prices.as_of}.toml"
        text = file.read_text()
        assert "list prices as of" in text and text.count("Source: https://") == 4
    assert cost_inputs.prices(cost_inputs.price_file("aws-us-east-1")) == PRICES


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("provider = 'aws'\n[object_storage\n", "not a TOML file"),
        ("as_of = 2026-12-01\n", "provider: missing"),
        ("provider = 'aws'\nregion = 'x'\ncurrency = 'USD'\nas_of = '2026-12-01'\n",
         "as_of: a date"),
        ("provider = 'aws'\nregion = 'x'\ncurrency = 'USD'\nas_of = 2026-12-01\n",
         r"\[object_storage\]: missing"),
    ],
)  # fmt: skip
def test_a_malformed_price_file_is_named(tmp_path: Path, text: str, message: str) -> None:
    file = tmp_path / "prices.toml"
    file.write_text(text)
    with pytest.raises(InputError, match=f"^{file}: {message}"):
        cost_inputs.prices(file)


def test_a_price_out_of_bounds_or_missing_is_named(tmp_path: Path) -> None:
    good = (cost_inputs.PRICES_DIR / "aws-us-east-1-2026-12-01.toml").read_text()
    file = tmp_path / "prices.toml"
    file.write_text(good.replace("per_hour = 0.192", "per_hour = -0.192"))
    with pytest.raises(InputError, match=rf"^{file}: \[compute\] per_hour -0.192: from 0 to"):
        cost_inputs.prices(file)
    file.write_text(good.replace("get_per_1000 = 0.0004", ""))
    with pytest.raises(InputError, match=rf"^{file}: \[object_storage\] get_per_1000: missing$"):
        cost_inputs.prices(file)
    with pytest.raises(InputError, match=r"no such price table \(known: aws-us-east-1, gcp-"):
        cost_inputs.price_file("azure-eastus")


@pytest.mark.parametrize(("partitions", "nearest"), [(1, 8), (8, 8), (100, 1000), (5000, 10000)])
def test_request_rates_from_the_benchmark_at_the_nearest_partition_count(
    partitions: int, nearest: int
) -> None:
    puts, gets = cost_inputs.bench_rates(cost_inputs.BENCH_RESULTS, partitions)
    assert puts.per_gib > 0 and gets.per_gib > 0
    for rate in (puts, gets):
        assert rate.source.startswith("bench/RESULTS.md of 20")
        assert f"s3:// at {nearest:,} partitions" in rate.source


def test_request_rates_parsed_from_the_table_s_own_column(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text(
        "# results, 2026-01-02\n\n"
        "| Metric | contextplane file:// | contextplane s3:// (SeaweedFS) |\n|---|---|---|\n"
        "| Object PUTs per GiB ingested, 8 partitions | 1 | 1,138 ✗ |\n"
        "| Object GETs per GiB read (after restart), 8 partitions | 2 | 150.5 |\n"
    )
    puts, gets = cost_inputs.bench_rates(results, 8)
    assert (puts.per_gib, gets.per_gib) == (1138, 150.5)
    assert puts.source == f"{results} of 2026-01-02, contextplane s3:// at 8 partitions," + (
        " the nearest measured to 8"
    )
    results.write_text("| Metric | contextplane s3:// |\n|---|---|\n")
    with pytest.raises(InputError, match="no 'PUTs per GiB ingested' rows"):
        cost_inputs.bench_rates(results, 8)


def test_the_command_prints_the_example_and_its_assumptions(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["cost", "--write-mibps", "10", "--read-fanout", "2", "--retention-days", "7",
            "--partitions", "8", "--puts-per-gib", "138", "--gets-per-gib", "150",
            "--zone-local-clients"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "PUTs per GiB written: 138 from --puts-per-gib" in out
    assert "contextplane  total" in out and "577.11" in out and "3,891.11" in out
    assert "Kafka (RF=3) ÷ contextplane: 6.74" in out
    assert "designed, not yet built" in out  # the zone-aware path's assumption, said
    assert main([*argv[:-1]]) == 0  # by default today's path: clients reach each leader
    assert "1,603.67" in capsys.readouterr().out
    assert main([*argv[:-5], "--zones", "0"]) == 2
    assert "contextplane cost: --zones 0: from 1 to 6" in capsys.readouterr().err
