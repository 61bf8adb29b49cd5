"""The repository's Prometheus material run by Prometheus itself (Debian's package): the
alert rules pass `promtool check rules` and their own unit tests
(deploy/prometheus/alerts_test.yml), and a real Prometheus scraping a broker under
confluent-kafka traffic evaluates every dashboard query and every alert rule without an
error, the queries that traffic must feed returning what the clients did."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import confluent_kafka as ck
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from tests.support.broker import BrokerProcess, free_port
from tests.support.prometheus_queries import ALERTS, alert_groups, dashboard_queries
from tests.support.prometheus_server import PrometheusServer, tool
from tests.support.wait import wait_until

pytestmark = pytest.mark.slow

TOPIC = "orders"
SMALL = "small-records"  # max.message.bytes=1000: a larger record is refused
GROUP = "copilot-readers"


def test_promtool_checks_the_rules_and_runs_their_unit_tests() -> None:
    checked = subprocess.run(
        [tool("promtool"), "check", "rules", str(ALERTS)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    rules = sum(len(rules) for rules in alert_groups().values())
    assert f"SUCCESS: {rules} rules found" in checked.stdout

    tested = subprocess.run(
        [tool("promtool"), "test", "rules", str(ALERTS.with_name("alerts_test.yml"))],
        capture_output=True,
        text=True,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


@pytest.fixture
def scraped(tmp_path: Path) -> Iterator[tuple[BrokerProcess, PrometheusServer]]:
    http_port = free_port()
    broker = BrokerProcess(tmp_path / "broker", settings={"http.port": str(http_port)}).start()
    prometheus = PrometheusServer(
        tmp_path / "prometheus", targets=[f"127.0.0.1:{http_port}"], rule_files=[ALERTS]
    )
    try:
        prometheus.start()
        yield broker, prometheus
    finally:
        prometheus.stop()
        broker.stop()


def _traffic(broker: BrokerProcess, seconds: float) -> tuple[int, int]:
    """Produce for `seconds` (so that rates span several scrapes), one record refused as
    too large, and a group that reads part of it and commits; the records produced and
    the group's lag as kafka_exporter counts it (over the partitions it committed)."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    created = admin.create_topics(
        [NewTopic(TOPIC, 3, 1), NewTopic(SMALL, 1, 1, config={"max.message.bytes": "1000"})]
    )
    for future in created.values():
        future.result(30)
    producer = ck.Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    refused: list[ck.KafkaError] = []
    producer.produce(SMALL, value=b"fits")
    produced = 0
    start = time.monotonic()
    while time.monotonic() < start + seconds:
        # Refused mid-way, after an accepted record made the topic's series (at 0, as
        # Kafka's, a topic's counters start at its first produce): a rate needs a
        # scrape of the counter before its increase.
        if not refused and time.monotonic() > start + seconds / 2:
            producer.produce(SMALL, value=b"x" * 5000, on_delivery=lambda e, _m: refused.append(e))
        for _ in range(50):
            producer.produce(TOPIC, value=b"v" * 200, partition=produced % 3)
            produced += 1
        producer.flush(30)
        time.sleep(0.1)
    assert producer.flush(30) == 0
    assert [e.code() for e in refused] == [ck.KafkaError.MSG_SIZE_TOO_LARGE]

    consumer = ck.Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": GROUP,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.assign([ck.TopicPartition(TOPIC, p) for p in range(3)])
        read = 0
        while read < produced // 2:
            message = consumer.poll(1.0)
            if message is not None and message.error() is None:
                read += 1
        consumer.commit(asynchronous=False)
        partitions = [ck.TopicPartition(TOPIC, p) for p in range(3)]
        lag = 0
        for tp in consumer.committed(partitions, timeout=30):
            if tp.offset >= 0:
                lag += consumer.get_watermark_offsets(tp, timeout=30)[1] - tp.offset
    finally:
        consumer.close()
    assert lag > 0
    return produced, lag


def _labels_of(result: list[dict], label: str) -> set[str]:  # type: ignore[type-arg]
    return {sample["metric"].get(label, "") for sample in result}


def test_prometheus_evaluates_every_dashboard_query_and_alert_rule(
    scraped: tuple[BrokerProcess, PrometheusServer],
) -> None:
    broker, prometheus = scraped
    wait_until(
        lambda: [s["value"][1] for s in prometheus.query('up{job="contextplane"}')] == ["1"],
        30,
        "Prometheus scrapes the broker",
    )
    _, group_lag = _traffic(broker, seconds=4)
    # Rates need two samples after the traffic, and the lag a scrape after the commit.
    scrapes = 'count_over_time(up{job="contextplane"}[1m])'
    before = float(prometheus.query(scrapes)[0]["value"][1])
    wait_until(
        lambda: float(prometheus.query(scrapes)[0]["value"][1]) >= before + 3,
        30,
        "three more scrapes",
    )

    # Every query of the dashboard is PromQL Prometheus accepts and evaluates.
    answers = {expr: prometheus.query(expr) for expr in dashboard_queries()}
    # The ones this traffic feeds answer what the clients did.
    rate_in = answers[
        'sum by (topic) (rate(kafka_server_brokertopicmetrics_messagesin_total{topic!=""}[1m]))'
    ]
    assert TOPIC in _labels_of(rate_in, "topic")
    assert all(float(s["value"][1]) > 0 for s in rate_in if s["metric"]["topic"] == TOPIC)
    requests = answers["sum by (request) (rate(kafka_network_requestmetrics_requests_total[1m]))"]
    assert {"Produce", "Fetch", "Metadata", "OffsetCommit"} <= _labels_of(requests, "request")
    lag = answers["sum by (consumergroup, topic) (kafka_consumergroup_lag_sum)"]
    assert [(s["metric"]["consumergroup"], s["metric"]["topic"]) for s in lag] == [(GROUP, TOPIC)]
    assert float(lag[0]["value"][1]) == group_lag
    failed = answers[
        "sum by (topic) (rate(kafka_server_brokertopicmetrics_failedproducerequests_total"
        '{topic!=""}[1m]))'
    ]
    assert {s["metric"]["topic"] for s in failed if float(s["value"][1]) > 0} == {SMALL}
    errors = answers[
        "sum by (request, error) (rate(kafka_network_requestmetrics_errors_total"
        '{error!="NONE"}[5m]))'
    ]
    assert ("Produce", "MESSAGE_TOO_LARGE") in {
        (s["metric"]["request"], s["metric"]["error"]) for s in errors
    }
    leaders = answers["count by (instance) (kafka_topic_partition_leader)"]
    listed = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=30)
    partitions = sum(len(t.partitions) for t in listed.topics.values())
    assert [s["value"][1] for s in leaders] == [str(partitions)]  # internal topics' too
    budget = answers['sum by (kind) (contextplane_memory_budget_bytes{kind=~"limit|used"})']
    assert _labels_of(budget, "kind") == {"limit", "used"}
    assert answers["process_resident_memory_bytes"]
    # The produce traffic's WAL group commits: a p99 sync latency, in seconds.
    wal_p99 = answers[
        "histogram_quantile(0.99, sum by (instance, le) "
        "(rate(contextplane_wal_sync_seconds_bucket[5m])))"
    ]
    assert len(wal_p99) == 1 and float(wal_p99[0]["value"][1]) > 0

    # Every alert rule loaded and evaluated without an error against the real series.
    def evaluated() -> list[dict] | None:  # type: ignore[type-arg]
        rules = [r for g in prometheus.api("rules")["groups"] for r in g["rules"]]
        return rules if all(r["health"] != "unknown" for r in rules) else None

    rules = wait_until(evaluated, 30, "every rule evaluated once")
    expected = {rule["alert"] for group in alert_groups().values() for rule in group}
    assert {r["name"] for r in rules} == expected
    assert [(r["name"], r["lastError"]) for r in rules if r["health"] != "ok"] == []
    # A healthy broker under this traffic fires nothing.
    alerts = prometheus.api("alerts")["alerts"]
    assert [a for a in alerts if a["state"] == "firing"] == [], alerts
