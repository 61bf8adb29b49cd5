"""`contextplane cost` as a user runs it: on a running broker's /metrics after records were
produced, uploaded and read back from objects (the rates' source is named and both are
positive and match its counters), and the console's object store page pricing the same
counters (its view freshness page, without a context service set, saying how to set one);
the plot written as a PNG where matplotlib is installed,
and the extra to install named where it is not; a broker that does not answer."""

from __future__ import annotations

import html
import importlib.util
import json
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import confluent_kafka as ck
import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client.parser import text_string_to_metric_families

from contextplane.console.beside import HttpBeside, bind_http, start_beside
from tests.support.inprocess import InProcessBroker
from tests.support.wait import wait_until

TOPIC = "priced"
RECORDS = 400
VALUE = b"v" * 1000
GIB = 1 << 30
UNKNOWN = "unknown"
BYTES_IN = ("kafka_server_brokertopicmetrics_bytesin_total", ())
BYTES_OUT = ("kafka_server_brokertopicmetrics_bytesout_total", ())


def cost(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "contextplane.cli.main", "cost", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def metrics_url(tmp_path: Path) -> Iterator[tuple[InProcessBroker, str]]:
    """A broker whose log cache holds nothing (reads go to objects), uploading every 100
    ms, with its HTTP surface served as `contextplane up` serves it."""
    settings = {"http.port": "0", "upload.interval.ms": "100", "log.cache.bytes": "1"}
    yield from serving(tmp_path, settings)


@pytest.fixture
def zone_a_broker(tmp_path: Path) -> Iterator[tuple[InProcessBroker, str]]:
    """A broker in zone `a` (broker.rack), its HTTP surface served."""
    yield from serving(tmp_path, {"http.port": "0", "broker.rack": "a"})


def serving(tmp_path: Path, settings: dict[str, str]) -> Iterator[tuple[InProcessBroker, str]]:
    broker = InProcessBroker(tmp_path / "broker", settings=settings).start()
    assert broker.broker is not None
    sock = bind_http(broker.broker.settings)
    assert sock is not None
    port = sock.getsockname()[1]

    async def serve() -> HttpBeside:
        assert broker.broker is not None
        return start_beside(sock, broker.broker.pipeline.services, broker.broker.settings)

    http = broker.call(serve())
    try:
        yield broker, f"http://127.0.0.1:{port}/metrics"
    finally:
        broker.call(http.stop())
        broker.stop()


def read_all(
    broker: InProcessBroker, settings: dict[str, str], partitions: int, expected: int
) -> int:
    """How many records a consumer reads from the start of TOPIC's `partitions`: until
    `expected` or 30 s pass."""
    consumer = ck.Consumer(
        {"bootstrap.servers": broker.bootstrap, "enable.auto.commit": False, **settings}
    )
    consumer.assign([ck.TopicPartition(TOPIC, p, 0) for p in range(partitions)])
    read, deadline = 0, time.monotonic() + 30
    while read < expected and time.monotonic() < deadline:
        message = consumer.poll(1)
        if message is not None and message.error() is None:
            read += 1
    consumer.close()
    return read


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
    except OSError:
        return {}  # not serving yet
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_rates_from_a_running_broker_s_metrics(
    metrics_url: tuple[InProcessBroker, str],
) -> None:
    broker, url = metrics_url
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})  # kept until it answered
    admin.create_topics([NewTopic(TOPIC, 2, 1)])[TOPIC].result(30)
    producer = ck.Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    for i in range(RECORDS):
        producer.produce(TOPIC, value=VALUE, partition=i % 2)
    assert producer.flush(30) == 0
    # Every record in objects before the read, so that it reads them from there (GETs).
    wait_until(
        lambda: scrape(url).get(("contextplane_upload_bytes_total", ()), 0) >= RECORDS * len(VALUE),
        30,
        "every record uploaded",
    )
    assert read_all(broker, {"group.id": "cost"}, 2, RECORDS) == RECORDS

    # Uploads, compaction and the cleaner may still PUT or GET while the command runs; no
    # record is produced or read: its rates lie between the counters before and after.
    before = counters(url)
    done = cost("--write-mibps", "5", "--metrics-url", url, "--output", "json")
    assert done.returncode == 0, done.stderr
    rates = json.loads(done.stdout)["request_rates"]
    after = counters(url)
    assert before["bytes_in"] == after["bytes_in"] >= RECORDS * len(VALUE)
    assert before["bytes_out"] == after["bytes_out"] >= RECORDS * len(VALUE)
    assert before["puts"] >= 1 and before["gets"] >= 1  # an upload, reads from objects
    for key, requests, size in (
        ("puts_per_gib", "puts", "bytes_in"),
        ("gets_per_gib", "gets", "bytes_out"),
    ):
        per_gib = rates[key]["per_gib"]
        assert before[requests] / (before[size] / GIB) <= per_gib
        assert per_gib <= after[requests] / (after[size] / GIB)
        assert rates[key]["source"].startswith(f"the broker's /metrics at {url}: ")

    table = cost("--write-mibps", "5", "--metrics-url", url)
    assert table.returncode == 0, table.stderr
    for rate in ("PUTs per GiB written: ", "GETs per GiB read: "):
        line = next(line for line in table.stdout.splitlines() if line.startswith(rate))
        assert f" from the broker's /metrics at {url}: " in line


def test_the_console_prices_the_broker_s_own_counters(
    metrics_url: tuple[InProcessBroker, str],
) -> None:
    broker, url = metrics_url
    console = url.removesuffix("/metrics")
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(TOPIC, 1, 1)])[TOPIC].result(30)
    producer = ck.Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    for _ in range(RECORDS):
        producer.produce(TOPIC, value=VALUE)
    assert producer.flush(30) == 0
    wait_until(
        lambda: scrape(url).get(("contextplane_upload_bytes_total", ()), 0) >= RECORDS * len(VALUE),
        30,
        "every record uploaded",
    )
    with urllib.request.urlopen(console + "/storage", timeout=10) as response:
        page = html.unescape(response.read().decode())
    puts = int(re.search(r'id="puts" data-count="(\d+)"', page)[1])  # type: ignore[index]
    bytes_in = int(re.search(r'data-in="(\d+)"', page)[1])  # type: ignore[index]
    assert puts >= 1 and bytes_in >= RECORDS * len(VALUE)
    # The page's figures, from one moment, give the rate its model used.
    where = "this broker's counters since it started"
    line = f"contextplane: {puts / (bytes_in / GIB):g} PUTs per GiB written ({where}: {puts} PUTs"
    assert line in page
    assert re.search(r'data-deployment="contextplane"><td>contextplane</td><td><strong>total', page)

    with urllib.request.urlopen(console + "/views", timeout=10) as response:
        views = response.read().decode()
    assert 'id="no-context-url"' in views
    assert "--set console.context.url=http://HOST:PORT" in views


def counters(url: str) -> dict[str, float]:
    samples = scrape(url)
    return {
        "puts": samples[("contextplane_object_store_requests_total", (("operation", "put"),))],
        "gets": samples[("contextplane_object_store_requests_total", (("operation", "get"),))],
        "bytes_in": samples[("kafka_server_brokertopicmetrics_bytesin_total", ())],
        "bytes_out": samples[("kafka_server_brokertopicmetrics_bytesout_total", ())],
    }


def test_cross_zone_bytes_measured_by_the_client_s_zone(
    zone_a_broker: tuple[InProcessBroker, str],
) -> None:
    """Producers naming zones a and b in client.id and one naming none, consumers of zone
    a (client.id) and b (client.rack, sent in Fetch v11+): the broker in zone a counts
    each one's record bytes as same, cross or unknown, and `cost` prices the measured
    cross-zone shares."""
    broker, url = zone_a_broker
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(TOPIC, 1, 1)])[TOPIC].result(30)
    produced = {"a": 100, "b": 300, UNKNOWN: 50}  # records each producer sends
    for zone, count in produced.items():
        client_id = "plain" if zone == UNKNOWN else f"app,contextplane_az={zone}"
        producer = ck.Producer({"bootstrap.servers": broker.bootstrap, "client.id": client_id,
                                "linger.ms": 5, "compression.type": "none"})  # fmt: skip
        for _ in range(count):
            producer.produce(TOPIC, value=VALUE)
        assert producer.flush(30) == 0
    total = sum(produced.values())
    for zone, settings in (("a", {"client.id": "reader contextplane_az=a"}),
                           ("b", {"client.rack": "b"})):  # fmt: skip
        assert read_all(broker, {"group.id": zone, **settings}, 1, total) == total

    samples = scrape(url)

    def zone_bytes(direction: str, relation: str, zone: str) -> float:
        labels = {"direction": direction, "zone_relation": relation, "client_zone": zone}
        return samples.get(
            ("contextplane_zone_record_bytes_total", tuple(sorted(labels.items()))), 0
        )

    same_in, cross_in = zone_bytes("in", "same", "a"), zone_bytes("in", "cross", "b")
    unknown_in = zone_bytes("in", UNKNOWN, UNKNOWN)
    # Each producer's record bytes: its values plus batch and record headers (< 100 bytes
    # a record uncompressed), every byte of them counted under its own zone.
    for count, counted in ((100, same_in), (300, cross_in), (50, unknown_in)):
        assert count * len(VALUE) < counted < count * (len(VALUE) + 100)
    assert same_in + cross_in + unknown_in == samples[BYTES_IN]
    same_out, cross_out = zone_bytes("out", "same", "a"), zone_bytes("out", "cross", "b")
    assert same_out >= same_in + cross_in + unknown_in <= cross_out  # each read everything
    assert same_out + cross_out == samples[BYTES_OUT]  # nothing read unattributed
    assert zone_bytes("out", UNKNOWN, UNKNOWN) == 0

    done = cost("--write-mibps", "5", "--metrics-url", url, "--output", "json")
    assert done.returncode == 0, done.stderr
    crossing = json.loads(done.stdout)["cross_zone"]
    assert crossing["produced_measured"] and crossing["read_measured"]
    assert crossing["produced_share"] == pytest.approx(cross_in / (same_in + cross_in))
    assert crossing["read_share"] == pytest.approx(cross_out / (same_out + cross_out))
    table = cost("--write-mibps", "5", "--metrics-url", url)
    assert table.returncode == 0, table.stderr
    line = next(x for x in table.stdout.splitlines() if x.startswith("cross-zone share: "))
    assert f"{cross_in / (same_in + cross_in):.1%} (measured) of produced" in line
    assert f"from the broker's /metrics at {url}" in line
    # Rates from flags: the broker's counters still give the measured shares.
    flagged = cost("--write-mibps", "5", "--puts-per-gib", "1", "--gets-per-gib", "1",
                   "--metrics-url", url, "--output", "json")  # fmt: skip
    assert flagged.returncode == 0, flagged.stderr
    assert json.loads(flagged.stdout)["cross_zone"] == crossing
    # The console's object store page prices the same counters, read in-process.
    with urllib.request.urlopen(url.removesuffix("/metrics") + "/storage", timeout=10) as page:
        text = html.unescape(page.read().decode())
    assert f"{cross_in / (same_in + cross_in):.1%} of produced bytes cross zones (measured)" in text
    # Without the broker's counters the share is the model's, and said to be.
    modelled = cost("--write-mibps", "5", "--puts-per-gib", "1", "--gets-per-gib", "1")
    assert "cross-zone share: 66.7% (modelled) of produced" in modelled.stdout


def test_rates_need_a_broker_that_answers(tmp_path: Path) -> None:
    done = cost("--write-mibps", "5", "--metrics-url", "http://127.0.0.1:1/metrics")
    assert done.returncode == 1
    assert done.stderr.startswith("contextplane cost: http://127.0.0.1:1/metrics: no answer (")


def test_the_plot_of_cost_against_retention(tmp_path: Path) -> None:
    png = tmp_path / "cost.png"
    done = cost("--write-mibps", "10", "--puts-per-gib", "138", "--gets-per-gib", "150",
                "--plot", str(png))  # fmt: skip
    if importlib.util.find_spec("matplotlib") is None:  # the extra not installed: said so
        assert done.returncode == 2
        assert "pip install contextplane[cost]" in done.stderr
        assert not png.exists()
        return
    assert done.returncode == 0, done.stderr
    assert f"plot: {png}" in done.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 10_000  # two lines, axes and labels, not an empty canvas
