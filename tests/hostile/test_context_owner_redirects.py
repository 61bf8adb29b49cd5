"""A hostile member of a partitioned context group (RFC 0006, "Partitioned instances as
built"): anyone allowed to join `NAME-sources` writes its own client id, which is where
an instance's 421 `not-owner` takes the owner's URL from. Members that advertise another
host's server (plainly, or as `http://own-host@elsewhere`) take partitions, but the 421
names no URL for them and the SDK follows nowhere: readers are never sent to a third
party. And a flood of misdirected reads costs the broker one owner lookup, not one per
read (each used to open a Kafka admin client of its own)."""

from __future__ import annotations

import json
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from confluent_kafka import Consumer

from contextplane.services.context.client import ContextClient, ContextClientError
from contextplane.services.context.partitions import entity_partition
from tests.e2e.test_context_partitioned import (  # noqa: F401 - the broker fixture
    ACCOUNTS,
    PARTITIONS,
    broker_fixture,
    instance,
    owned,
    raw_get,
    shared,
)
from tests.support.broker import BrokerProcess
from tests.support.context import TIMEOUT_S, ContextProcess
from tests.support.wait import wait_until

ELSEWHERE = [
    "http://203.0.113.9:8090",  # TEST-NET-3: never this machine
    "http://127.0.0.1:8090@203.0.113.9:8090",  # userinfo hiding the real host
]


def hostile_member(bootstrap: str, n: int, url: str) -> Consumer:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "ctxp-sources",
            "client.id": f"ctxp-sources-evil{n}@{url}",
            "partition.assignment.strategy": "range",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
        }
    )
    consumer.subscribe(["crm.accounts", "support.tickets"])
    return consumer


def test_a_member_advertising_another_host_is_never_named_nor_followed(
    broker: BrokerProcess, tmp_path: Path
) -> None:
    service = instance(broker.bootstrap, tmp_path, "a").start()
    members = [hostile_member(broker.bootstrap, n, url) for n, url in enumerate(ELSEWHERE)]
    try:

        def taken() -> list[int] | None:
            for member in members:
                member.poll(0.2)
            mine = owned(service)
            theirs = [p for m in members for tp in m.assignment() for p in [tp.partition]]
            if mine is None or not all(m.assignment() for m in members):
                return None
            # Settled: the partitions are split between the instance and the members.
            if sorted(set(mine) | set(theirs)) != list(range(PARTITIONS)) or set(mine) & set(
                theirs
            ):
                return None
            return sorted(set(theirs))

        stolen = wait_until(taken, TIMEOUT_S * 2, "the hostile members take partitions")
        victims = [a for a in ACCOUNTS if entity_partition(a, PARTITIONS) in stolen]
        assert victims
        for account in victims:
            status, problem = raw_get(service, account)
            assert status == 421, problem
            assert problem["owner"]["url"] is None, problem
            assert problem["owner"]["client_id"].startswith("ctxp-sources-evil")
            with pytest.raises(ContextClientError) as refused:
                ContextClient(service.url).get("account", account)
            assert refused.value.status == 421
    finally:
        for member in members:
            member.close()
        service.stop()


def lookups(service: ContextProcess) -> int:
    with urllib.request.urlopen(f"{service.url}/v1/views", timeout=TIMEOUT_S) as response:
        count: int = json.loads(response.read())["owner_lookups"]
        return count


def test_a_flood_of_misdirected_reads_asks_the_group_once(
    broker: BrokerProcess, tmp_path: Path
) -> None:
    a = instance(broker.bootstrap, tmp_path, "a").start()
    b = instance(broker.bootstrap, tmp_path, "b").start()
    try:
        split = shared(a, b)
        elsewhere = [x for x in ACCOUNTS if entity_partition(x, PARTITIONS) in split[b.url]]
        # The first misdirected read asks the group; the flood after it asks no more.
        assert raw_get(a, elsewhere[0])[0] == 421
        before = lookups(a)
        with ThreadPoolExecutor(32) as pool:
            answers = list(
                pool.map(lambda n: raw_get(a, elsewhere[n % len(elsewhere)]), range(300))
            )
        assert {status for status, _ in answers} == {421}
        assert {problem["owner"]["url"] for _, problem in answers} == {b.url}
        assert lookups(a) == before
    finally:
        a.stop()
        b.stop()
