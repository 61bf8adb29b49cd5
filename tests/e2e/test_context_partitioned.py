"""Partitioned context instances against a broker process (RFC 0006 §1, "Partitioned
instances as built"): two instances of one name share a 4-partition source set through
their consumer group, each applying and serving its own partitions and redirecting the
rest (421 naming the owner); one killed with SIGKILL hands its partitions to the other,
which restores them from the changelog and serves the same state with no fold lost or
doubled; its restart rebalances them back."""

from __future__ import annotations

import json
import signal
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from contextplane.services.context.client import ContextClient
from contextplane.services.context.partitions import entity_partition
from tests.support.broker import BrokerProcess
from tests.support.context import TIMEOUT_S, ContextProcess
from tests.support.wait import wait_until

# Groups join at once rather than after the 3-s initial rebalance delay.
FAST_JOINS = {"group.initial.rebalance.delay.ms": "0"}

VIEWS = """
[views.account]

[[views.account.sources]]
topic = "crm.accounts"
field = "profile"

[[views.account.sources]]
topic = "support.tickets"
field = "tickets"
merge = "list"
max_items = 1000
"""
PARTITIONS = 4
ACCOUNTS = [f"acct-{n}" for n in range(24)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def create_sources(bootstrap: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topics = [NewTopic(t, PARTITIONS, 1) for t in ("crm.accounts", "support.tickets")]
    for future in admin.create_topics(topics).values():
        future.result(TIMEOUT_S)


@pytest.fixture(name="broker")
def broker_fixture(tmp_path: Path) -> Iterator[BrokerProcess]:
    running = BrokerProcess(tmp_path / "broker", settings=FAST_JOINS).start()
    create_sources(running.bootstrap)
    yield running
    running.stop()


def instance(bootstrap: str, tmp_path: Path, name: str) -> ContextProcess:
    views = tmp_path / "views.toml"
    views.write_text(VIEWS)
    port = free_port()
    return ContextProcess(
        bootstrap,
        views,
        tmp_path / f"data-{name}",
        tmp_path / f"{name}.log",
        name="ctxp",
        port=port,
        extra_args=[
            "--instance",
            name,
            "--advertised-url",
            f"http://127.0.0.1:{port}",
            "--session-timeout-ms",
            "6000",
        ],
    )


def owned(service: ContextProcess) -> list[int] | None:
    try:
        with urllib.request.urlopen(f"{service.url}/v1/views", timeout=TIMEOUT_S) as response:
            partitions: list[int] | None = json.loads(response.read())["partitions"]
            return partitions
    except OSError:
        return None


def shared(*services: ContextProcess) -> dict[str, list[int]]:
    """Wait until the instances own disjoint partition sets covering all; each's set."""

    def split() -> dict[str, list[int]] | None:
        sets = {s.url: owned(s) for s in services}
        parts = [p for got in sets.values() if got for p in got]
        if sorted(parts) != list(range(PARTITIONS)) or not all(sets.values()):
            return None
        return {url: got or [] for url, got in sets.items()}

    return wait_until(split, TIMEOUT_S * 2, "the instances share the partitions")


def produce(bootstrap: str, sends: list[tuple[str, str, Any]]) -> dict[tuple[str, int], int]:
    """Records keyed by account id (Kafka's default partitioner); the fence they need."""
    producer = Producer(
        {"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "linger.ms": 5}
    )
    fence: dict[tuple[str, int], int] = {}

    def delivered(error: Any, message: Any) -> None:
        assert error is None, error
        tp = (message.topic(), message.partition())
        fence[tp] = max(fence.get(tp, -1), message.offset())
        assert message.partition() == entity_partition(message.key().decode(), PARTITIONS)

    for topic, key, value in sends:
        producer.produce(
            topic, key=key.encode(), value=json.dumps(value).encode(), on_delivery=delivered
        )
    producer.flush(TIMEOUT_S)
    return fence


def raw_get(service: ContextProcess, account: str) -> tuple[int, dict[str, Any]]:
    try:
        url = f"{service.url}/v1/views/account/entities/{account}"
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def expected(tickets: int) -> dict[str, dict[str, Any]]:
    return {
        a: {
            "profile": {"name": a},
            "tickets": [{"n": n} for n in reversed(range(tickets))],
        }
        for a in ACCOUNTS
    }


def states(
    services: list[ContextProcess], split: dict[str, list[int]], fence: dict[tuple[str, int], int]
) -> dict[str, dict[str, Any]]:
    """Each account from its owner (behind the fence of its partition); every other
    instance answers 421 naming that owner."""
    found: dict[str, dict[str, Any]] = {}
    for account in ACCOUNTS:
        partition = entity_partition(account, PARTITIONS)
        owner = next(s for s in services if partition in split[s.url])
        mine = {tp: at for tp, at in fence.items() if tp[1] == partition}
        answer = ContextClient(owner.url).get(
            "account", account, min_offsets=mine, timeout_ms=20_000
        )
        assert answer.state is not None, account
        found[account] = answer.state
        for other in services:
            if other is owner:
                continue
            status, problem = raw_get(other, account)
            assert status == 421, problem
            assert problem["owner"]["url"] == owner.url
            assert problem["partition"] == partition
            # The SDK follows the redirect once.
            assert ContextClient(other.url).get("account", account).state == answer.state
    return found


def tickets(n: int) -> list[tuple[str, str, Any]]:
    return [("support.tickets", a, {"n": n}) for a in ACCOUNTS]


def skipped(service: ContextProcess) -> int:
    with urllib.request.urlopen(f"{service.url}/v1/views", timeout=TIMEOUT_S) as response:
        view = json.loads(response.read())["views"]["account"]
        count: int = view["skipped"].get("not-co-partitioned", 0)
        return count


def applied(service: ContextProcess) -> int:
    with urllib.request.urlopen(f"{service.url}/v1/views", timeout=TIMEOUT_S) as response:
        count: int = json.loads(response.read())["applied_records"]
        return count


def test_two_instances_share_hand_over_and_take_back(broker: BrokerProcess, tmp_path: Path) -> None:
    share_hand_over_take_back(broker.bootstrap, tmp_path)


def share_hand_over_take_back(bootstrap: str, tmp_path: Path, start_s: float = 60.0) -> None:
    """Two instances share the partitions and serve each entity from its owner; one
    killed, the other takes all from the changelog; restarted, it takes its share back."""
    a = instance(bootstrap, tmp_path, "a").start(start_s)
    b = instance(bootstrap, tmp_path, "b").start(start_s)
    try:
        split = shared(a, b)
        assert all(len(parts) == PARTITIONS // 2 for parts in split.values()), split
        sends = [("crm.accounts", x, {"name": x}) for x in ACCOUNTS] + tickets(0) + tickets(1)
        fence = produce(bootstrap, sends)
        assert states([a, b], split, fence) == expected(2)
        # Each applied its own partitions only: together, every record once.
        wait_until(
            lambda: applied(a) + applied(b) == len(sends) or None,
            TIMEOUT_S,
            "both count every record once",
        )
        assert applied(a) > 0 and applied(b) > 0

        # A record of an entity produced to another partition than its id hashes to is
        # skipped and counted where it landed, never folded into a second copy.
        stray = ACCOUNTS[0]
        elsewhere = (entity_partition(stray, PARTITIONS) + 1) % PARTITIONS
        producer = Producer({"bootstrap.servers": bootstrap})
        producer.produce(
            "support.tickets", key=stray.encode(), value=b'{"n": 99}', partition=elsewhere
        )
        producer.flush(TIMEOUT_S)
        wait_until(
            lambda: skipped(a) + skipped(b) == 1 or None, TIMEOUT_S, "the stray record skipped"
        )

        a.kill9()
        taken = wait_until(
            lambda: owned(b) == list(range(PARTITIONS)) or None, TIMEOUT_S * 2, "b owns all"
        )
        assert taken
        # Restored from the changelog: the same state, no fold lost or doubled.
        assert states([b], {b.url: list(range(PARTITIONS))}, fence) == expected(2)
        fence = produce(bootstrap, tickets(2))
        assert states([b], {b.url: list(range(PARTITIONS))}, fence) == expected(3)

        a.start(start_s)
        split = shared(a, b)
        assert all(len(parts) == PARTITIONS // 2 for parts in split.values()), split
        fence = produce(bootstrap, tickets(3))
        assert states([a, b], split, fence) == expected(4)
    finally:
        a.stop()
        b.stop()


def test_sources_not_co_partitioned_stop_the_start_naming_each(
    broker: BrokerProcess, tmp_path: Path
) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    for future in admin.create_topics([NewTopic("ops.incidents", 2, 1)]).values():
        future.result(TIMEOUT_S)
    service = instance(broker.bootstrap, tmp_path, "a")
    service.views.write_text(
        VIEWS + '\n[[views.account.sources]]\ntopic = "ops.incidents"\nfield = "incident"\n'
    )
    with pytest.raises(RuntimeError, match="exited early"):
        service.start()
    assert (
        "need co-partitioned sources (one partition count): crm.accounts has 4,"
        " ops.incidents has 2, support.tickets has 4"
    ) in service.log_tail()
    assert "ctxp.changelog" not in admin.list_topics(timeout=TIMEOUT_S).topics


def test_a_paused_instance_rejoins_without_writing_over_its_successor(
    broker: BrokerProcess, tmp_path: Path
) -> None:
    """SIGSTOP past the session: the other instance takes every partition and applies
    more; SIGCONT: the paused one finds itself out of the group, rejoins and takes its
    share back from the changelog, every fold still once."""
    a = instance(broker.bootstrap, tmp_path, "a").start()
    b = instance(broker.bootstrap, tmp_path, "b").start()
    try:
        split = shared(a, b)
        sends = [("crm.accounts", x, {"name": x}) for x in ACCOUNTS] + tickets(0)
        fence = produce(broker.bootstrap, sends)
        assert states([a, b], split, fence) == expected(1)
        assert a.process is not None
        a.process.send_signal(signal.SIGSTOP)
        try:
            wait_until(
                lambda: owned(b) == list(range(PARTITIONS)) or None, TIMEOUT_S * 2, "b owns all"
            )
            fence = produce(broker.bootstrap, tickets(1))
            assert states([b], {b.url: list(range(PARTITIONS))}, fence) == expected(2)
        finally:
            a.process.send_signal(signal.SIGCONT)
        split = shared(a, b)
        fence = produce(broker.bootstrap, tickets(2))
        assert states([a, b], split, fence) == expected(3)
        assert a.process.poll() is None and b.process is not None and b.process.poll() is None
    finally:
        a.stop()
        b.stop()
