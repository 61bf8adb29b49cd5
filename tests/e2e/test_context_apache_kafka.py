"""The context service is an ordinary Kafka client: the same merge, read fence, kill -9
restart and point-in-time reads (by offset vector and by timestamp) against Apache Kafka
(KRaft, the harness's reference broker) as against contextplane."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from contextplane.services.context.client import ContextClient, ContextClientError
from harness import kafka_reference
from tests.e2e.test_context_as_of_time import check_as_of_a_time
from tests.e2e.test_context_partitioned import create_sources, share_hand_over_take_back
from tests.e2e.test_context_service import Events, fence
from tests.support.context import TIMEOUT_S, TOPICS, VIEWS, ContextProcess


@pytest.fixture
def kafka(tmp_path: Path) -> Iterator[kafka_reference.KafkaHandle]:
    handle = kafka_reference.start(data_dir=tmp_path / "kafka", timeout=120)
    admin = AdminClient({"bootstrap.servers": handle.bootstrap})
    futures = admin.create_topics([NewTopic(t, n, 1) for t, n in TOPICS.items()])
    for future in futures.values():
        future.result(TIMEOUT_S)
    yield handle
    handle.stop()


def test_merge_fence_and_kill9_restart_against_apache_kafka(
    kafka: kafka_reference.KafkaHandle, tmp_path: Path
) -> None:
    views = tmp_path / "views.toml"
    views.write_text(VIEWS)
    service = ContextProcess(
        kafka.bootstrap, views, tmp_path / "context", tmp_path / "context.log"
    ).start(timeout_s=120)
    try:
        events = Events(kafka.bootstrap)
        client = ContextClient(service.url)
        profile = events.send("crm.accounts", "a1", {"tier": "gold"})
        # Applied before the next is sent: the apply loop folds two partitions' records in
        # the order they arrive, `as_of` in timestamp order, so two arriving together could
        # name different `changed_by` (a known gap: no canonical fold order in the loop).
        client.get("account", "a1", min_offsets=fence(profile), timeout_ms=20_000)
        entitlement = events.send("billing.entitlements", "e1", {"account_id": "a1", "plan": "pro"})
        first = client.get(
            "account", "a1", min_offsets=fence(profile, entitlement), timeout_ms=20_000
        )
        assert first.state == {
            "profile": {"tier": "gold"},
            "entitlement": {"account_id": "a1", "plan": "pro"},
        }
        v1 = {(p.topic, p.partition): p.position for p in first.freshness.partitions}
        past = client.get("account", "a1", as_of=v1)
        assert (past.state, past.changed_by) == (first.state, first.changed_by)

        producer = Producer({"bootstrap.servers": kafka.bootstrap, "linger.ms": 1})
        landed: list[tuple[str, int, int]] = []
        for n in range(200):
            value = json.dumps({"account": {"id": "a1"}, "n": n}).encode()
            producer.produce(
                "support.tickets",
                key=str(n).encode(),
                value=value,
                on_delivery=lambda e, m: landed.append((m.topic(), m.partition(), m.offset())),
            )
            if n == 100:
                producer.flush(TIMEOUT_S)
                service.kill9()
        producer.flush(TIMEOUT_S)
        service.start(timeout_s=120)
        after = ContextClient(service.url).get(
            "account", "a1", min_offsets=fence(*landed), timeout_ms=25_000
        )
        assert after.state is not None
        tickets = [t["n"] for t in after.state["tickets"]]
        assert sorted(tickets) == list(range(200))
        # The past after a kill -9 and 200 more records: the same answer.
        again = ContextClient(service.url).get("account", "a1", as_of=v1)
        assert (again.state, again.changed_by) == (first.state, first.changed_by)
        ends = {(p.topic, p.partition): p.position for p in after.freshness.partitions}
        try:
            ContextClient(service.url).get("account", "a1", as_of={**ends, ("crm.accounts", 0): 9})
        except ContextClientError as exc:
            assert (exc.status, exc.kind) == (409, "as-of-ahead")
        else:
            raise AssertionError("a vector past the log's end was answered")
        service.stop()

        fresh = ContextProcess(
            kafka.bootstrap, views, tmp_path / "fresh", tmp_path / "fresh.log"
        ).start(timeout_s=120)
        try:
            assert ContextClient(fresh.url).get("account", "a1").state == after.state
        finally:
            fresh.stop()
    finally:
        service.stop()


def test_as_of_a_time_against_apache_kafka(
    kafka: kafka_reference.KafkaHandle, tmp_path: Path
) -> None:
    """Kafka's ListOffsets by timestamp (which stops at the last stable offset for a
    read_committed consumer) resolves a time to the same vectors and states."""
    views = tmp_path / "views.toml"
    views.write_text(VIEWS)
    service = ContextProcess(
        kafka.bootstrap, views, tmp_path / "context", tmp_path / "context.log"
    ).start(timeout_s=120)
    try:
        check_as_of_a_time(kafka.bootstrap, service.url)
    finally:
        service.stop()


def test_partitioned_instances_against_apache_kafka(tmp_path: Path) -> None:
    """Two partitioned instances share, hand over on SIGKILL and take back through
    Apache Kafka's group coordinator (range assignment, the generation checked by each
    transaction's offset commit)."""
    kafka = kafka_reference.start(data_dir=tmp_path / "kafka", timeout=120)
    try:
        create_sources(kafka.bootstrap)
        share_hand_over_take_back(kafka.bootstrap, tmp_path, start_s=120)
    finally:
        kafka.stop()
