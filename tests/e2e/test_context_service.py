"""The context service against a broker process, with confluent-kafka producing the
source events: the merged state with its freshness, read fences that wait for a record
just produced or time out cleanly, and kill -9 of the service mid-stream with a restart
(same directory, and a fresh one from the changelog alone) that neither loses nor
re-applies a record."""

from __future__ import annotations

import json
import threading
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from contextplane.clock import SystemClock
from contextplane.services.context.client import ContextClient, ContextClientError
from tests.support.broker import BrokerProcess
from tests.support.context import (  # noqa: F401 - fixtures
    TIMEOUT_S,
    TOPICS,
    VIEWS,
    ContextProcess,
    broker_fixture,
    service_fixture,
    views_fixture,
)
from tests.support.prometheus_queries import (
    alert_queries,
    check_queries,
    dashboard_queries,
    exported,
)
from tests.support.wait import wait_until


class Events:
    """A producer of source events that remembers where each landed."""

    def __init__(self, bootstrap: str) -> None:
        self._producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})

    def send(
        self, topic: str, key: str | None, value: Any, timestamp_ms: int | None = None
    ) -> tuple[str, int, int]:
        landed: list[tuple[str, int, int]] = []

        def delivered(error: Any, message: Any) -> None:
            assert error is None, error
            landed.append((message.topic(), message.partition(), message.offset()))

        raw = None if value is None else json.dumps(value).encode()
        self._producer.produce(
            topic,
            key=None if key is None else key.encode(),
            value=raw,
            timestamp=timestamp_ms or 0,
            on_delivery=delivered,
        )
        self._producer.flush(TIMEOUT_S)
        assert landed, f"{topic}: not delivered"
        return landed[0]


def fence(*landed: tuple[str, int, int]) -> dict[tuple[str, int], int]:
    vector: dict[tuple[str, int], int] = {}
    for topic, partition, offset in landed:
        vector[(topic, partition)] = max(offset, vector.get((topic, partition), -1))
    return vector


def test_get_merges_the_sources_with_freshness(
    broker: BrokerProcess, service: ContextProcess
) -> None:
    events = Events(broker.bootstrap)
    client = ContextClient(service.url)
    an_hour_ago = SystemClock().wall_ms() - 3_600_000
    sends = [
        ("crm.accounts", "a1", {"name": "Acme", "tier": "gold"}, an_hour_ago),
        ("billing.entitlements", "e1", {"account_id": "a1", "plan": "pro"}, an_hour_ago),
        ("crm.accounts", "a1", {"name": "Acme", "tier": "platinum"}, an_hour_ago + 1),
        *(
            ("support.tickets", f"t{n}", {"account": {"id": "a1"}, "n": n}, an_hour_ago + 2)
            for n in range(3)
        ),
        ("crm.accounts", "a2", {"name": "Other"}, an_hour_ago + 3),
    ]
    landed = []
    for topic, key, value, timestamp_ms in sends:
        landed.append(events.send(topic, key, value, timestamp_ms))
        # Partitions are applied in no set order: each waits for the one before, so the
        # order applied (the list's, changed_by's) is the order sent.
        client.get("account", "a1", min_offsets=fence(landed[-1]), timeout_ms=20_000)

    account = client.get("account", "a1", min_offsets=fence(*landed), timeout_ms=20_000)

    assert account.found
    assert account.state == {
        "profile": {"name": "Acme", "tier": "platinum"},
        "entitlement": {"account_id": "a1", "plan": "pro"},
        "tickets": [{"account": {"id": "a1"}, "n": n} for n in (2, 1, 0)],
    }
    last_ticket = landed[5]
    assert account.changed_by is not None
    assert (account.changed_by.topic, account.changed_by.partition, account.changed_by.offset) == (
        last_ticket
    )
    assert account.changed_by.timestamp_ms == an_hour_ago + 2
    # The view's newest event is a2's, an hour old.
    assert account.freshness.newest_event_ms == an_hour_ago + 3
    assert account.freshness.age_ms is not None and account.freshness.age_ms >= 3_600_000 - 3
    # Every partition the view reads is listed; once the fetch reports each end, no lag.
    ends: dict[tuple[str, int], int] = {}
    for topic, partition, offset in landed:
        ends[(topic, partition)] = max(offset + 1, ends.get((topic, partition), 0))

    def caught_up() -> Any:
        fresh = client.get("account", "a1").freshness
        seen = {
            (p.topic, p.partition): (p.position, p.high_watermark, p.lag) for p in fresh.partitions
        }
        expected = {
            (t, p): (ends.get((t, p), 0), ends.get((t, p), 0), 0)
            for t, n in TOPICS.items()
            for p in range(n)
        }
        return fresh if seen == expected and fresh.lag == 0 else None

    fresh = wait_until(caught_up, TIMEOUT_S, "positions and high watermarks of every partition")
    # Caught up: not stale, though its newest event is an hour older than the target.
    assert (fresh.target_ms, fresh.stale) == (60_000, False)
    with urllib.request.urlopen(f"{service.url}/metrics", timeout=TIMEOUT_S) as response:
        text = response.read().decode()
    check_queries(alert_queries("contextplane-context"), exported(text), "the context rules")
    check_queries(dashboard_queries("context"), exported(text), "the dashboard's view panels")
    metrics = text.splitlines()
    assert 'contextplane_context_stale{view="account"} 0.0' in metrics
    assert 'contextplane_context_freshness_target_seconds{view="account"} 60.0' in metrics
    assert (
        'contextplane_context_lag_records{partition="1",topic="support.tickets",view="account"} 0.0'
        in metrics
    )
    assert any(
        line.startswith('contextplane_context_age_seconds{view="account"} 3') for line in metrics
    )

    missing = client.get("account", "nobody")
    assert not missing.found and missing.state is None and missing.changed_by is None


def test_a_tombstone_deletes_the_entity(broker: BrokerProcess, service: ContextProcess) -> None:
    events = Events(broker.bootstrap)
    client = ContextClient(service.url)
    created = events.send("crm.accounts", "gone", {"name": "Short-lived"})
    assert client.get("account", "gone", min_offsets=fence(created)).found
    deleted = events.send("crm.accounts", "gone", None)
    assert not client.get("account", "gone", min_offsets=fence(deleted)).found


def test_a_read_fence_waits_for_a_record_just_produced(
    broker: BrokerProcess, service: ContextProcess
) -> None:
    events = Events(broker.bootstrap)
    client = ContextClient(service.url)
    for version in range(20):
        landed = events.send("crm.accounts", "a1", {"version": version})
        # Read-your-writes: never the state before the record the caller produced.
        seen = client.get("account", "a1", min_offsets=fence(landed), timeout_ms=20_000)
        assert seen.state == {"profile": {"version": version}}


def test_a_read_fence_never_reached_times_out_cleanly(
    broker: BrokerProcess, service: ContextProcess
) -> None:
    client = ContextClient(service.url)
    with pytest.raises(ContextClientError) as timed_out:
        client.get("account", "a1", min_offsets={("crm.accounts", 0): 1_000_000}, timeout_ms=300)
    assert (timed_out.value.status, timed_out.value.kind) == (504, "fence-timeout")
    assert timed_out.value.problem["short"] == [
        {"topic": "crm.accounts", "partition": 0, "position": 0}
    ]
    assert "crm.accounts[0] at 0" in str(timed_out.value)
    # A fence on a partition the view does not read is refused at once.
    for bad in ({("ops.incidents", 0): 1}, {("crm.accounts", 7): 1}):
        with pytest.raises(ContextClientError) as refused:
            client.get("account", "a1", min_offsets=bad)
        assert (refused.value.status, refused.value.kind) == (400, "bad-fence")
    # The service still answers.
    assert client.get("account", "a1").view == "account"


def _all_tickets(client: ContextClient, accounts: list[str]) -> dict[str, Any]:
    return {a: client.get("account", a).state for a in accounts}


def test_kill9_mid_stream_neither_loses_nor_reapplies(
    broker: BrokerProcess, service: ContextProcess, views: Path, tmp_path: Path
) -> None:
    accounts = [f"a{n}" for n in range(4)]
    sent: dict[str, list[int]] = {a: [] for a in accounts}
    landed: list[tuple[str, int, int]] = []
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 1})
    total = 400

    def delivered(error: Any, message: Any) -> None:
        assert error is None, error
        landed.append((message.topic(), message.partition(), message.offset()))

    def produce(start: int, end: int) -> None:
        for n in range(start, end):
            account = accounts[n % len(accounts)]
            sent[account].append(n)
            value = json.dumps({"account": {"id": account}, "n": n}).encode()
            producer.produce(
                "support.tickets", key=str(n).encode(), value=value, on_delivery=delivered
            )
            producer.poll(0)
            if n % 20 == 0:
                producer.flush(TIMEOUT_S)
        producer.flush(TIMEOUT_S)

    client = ContextClient(service.url)
    # Killed while records are still arriving and being applied.
    writer = threading.Thread(target=produce, args=(0, total // 2))
    writer.start()
    wait_until(
        lambda: client.views()["applied_records"] > 0, TIMEOUT_S, "the service applies records"
    )
    service.kill9()
    writer.join()
    service.start()
    produce(total // 2, total)
    client = ContextClient(service.url)
    client.get("account", "a0", min_offsets=fence(*landed), timeout_ms=25_000)

    expected = {
        a: {"tickets": [{"account": {"id": a}, "n": n} for n in reversed(sent[a])]}
        for a in accounts
    }
    # Partitions interleave: compare each account's tickets as a set and without repeats,
    # and each partition's share in the order produced.
    states = _all_tickets(client, accounts)
    for a in accounts:
        got = [t["n"] for t in states[a]["tickets"]]
        assert len(got) == len(set(got)), f"{a}: a record applied twice"
        assert sorted(got) == sorted(sent[a]), f"{a}: records lost"

    # Each answer names the changelog record holding the state it gave.
    changelogs = {a: client.get("account", a).changelog for a in accounts}
    assert all(at is not None and at.topic == "ctx.changelog" for at in changelogs.values())

    # A fresh instance with an empty directory rebuilds the same state from the changelog,
    # and knows each state's changelog record from reading it.
    service.stop()
    fresh = ContextProcess(
        broker.bootstrap, views, tmp_path / "fresh", tmp_path / "fresh.log", port=service.port
    ).start()
    try:
        client = ContextClient(fresh.url)
        assert _all_tickets(client, accounts) == states
        assert {a: client.get("account", a).changelog for a in accounts} == changelogs
        assert {a: len(s["tickets"]) for a, s in states.items()} == {
            a: len(e["tickets"]) for a, e in expected.items()
        }
    finally:
        fresh.stop()


def test_a_second_instance_of_the_same_name_fences_the_first(
    broker: BrokerProcess, service: ContextProcess, views: Path, tmp_path: Path
) -> None:
    """Two appliers of one changelog would interleave their transactions: the newer one's
    init_transactions fences the older, whose next commit fails and which then exits 1."""
    events = Events(broker.bootstrap)
    newer = ContextProcess(
        broker.bootstrap, views, tmp_path / "newer", tmp_path / "newer.log"
    ).start()
    try:
        landed = events.send("crm.accounts", "a1", {"name": "Acme"})
        assert service.process is not None
        assert service.process.wait(TIMEOUT_S) == 1
        assert "the apply loop stopped" in service.log_tail(200)
        seen = ContextClient(newer.url).get("account", "a1", min_offsets=fence(landed))
        assert seen.state == {"profile": {"name": "Acme"}}
    finally:
        newer.stop()


def test_the_broker_killed_and_restarted_under_the_service(
    broker: BrokerProcess, service: ContextProcess
) -> None:
    """The broker dies (kill -9) while records are applied and comes back on the same
    port: the service rides it out in the same process, every record applied once."""
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 1})
    landed: list[tuple[str, int, int]] = []

    def delivered(error: Any, message: Any) -> None:
        assert error is None, error
        landed.append((message.topic(), message.partition(), message.offset()))

    def produce(numbers: range) -> None:
        for n in numbers:
            value = json.dumps({"account": {"id": "a1"}, "n": n}).encode()
            producer.produce(
                "support.tickets", key=str(n).encode(), value=value, on_delivery=delivered
            )
            producer.poll(0)
        producer.flush(TIMEOUT_S)

    produce(range(150))
    broker.kill9()
    broker.start()
    produce(range(150, 300))
    client = ContextClient(service.url)
    after = client.get("account", "a1", min_offsets=fence(*landed), timeout_ms=30_000)
    assert after.state is not None
    assert sorted(t["n"] for t in after.state["tickets"]) == list(range(300))
    assert service.process is not None and service.process.poll() is None


def test_a_missing_source_topic_stops_the_start_and_creates_nothing(
    broker: BrokerProcess, tmp_path: Path
) -> None:
    views = tmp_path / "missing.toml"
    views.write_text(VIEWS.replace('topic = "crm.accounts"', 'topic = "crm.nowhere"'))
    service = ContextProcess(broker.bootstrap, views, tmp_path / "ctx", tmp_path / "ctx.log")
    with pytest.raises(RuntimeError, match="exited early"):
        service.start()
    assert "source topic 'crm.nowhere' does not exist" in service.log_tail()
    topics = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=TIMEOUT_S)
    assert "ctx.changelog" not in topics.topics
    assert "crm.nowhere" not in topics.topics
