"""Point-in-time reads (`as_of`) of the context service against a broker process: the
answer for a vector equals the view's state at those positions, stays the same after
more records arrive, after snapshots and after kill -9 and a restart; a vector past the
log's end, one that needs records retention deleted, and the bounds are problems."""

from __future__ import annotations

import dataclasses
import json
import random
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from contextplane.services.context.client import ContextClient, ContextClientError
from tests.support.audit_topics import RECEIPTS_TOPIC, read_json_topic
from tests.support.broker import BrokerProcess
from tests.support.context import (  # noqa: F401 - fixtures
    TIMEOUT_S,
    TOPICS,
    ContextProcess,
    broker_fixture,
    views_fixture,
)
from tests.support.wait import wait_until

Vector = dict[tuple[str, int], int]


class Source:
    """Produces source events to a chosen partition and remembers each partition's end."""

    def __init__(self, bootstrap: str) -> None:
        self._producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
        self.ends: Vector = {(t, p): 0 for t, n in TOPICS.items() for p in range(n)}

    def send(self, topic: str, partition: int, key: str, value: Any) -> None:
        landed: list[int] = []

        def delivered(error: Any, message: Any) -> None:
            assert error is None, error
            landed.append(message.offset())

        raw = None if value is None else json.dumps(value).encode()
        self._producer.produce(
            topic, key=key.encode(), value=raw, partition=partition, on_delivery=delivered
        )
        self._producer.flush(TIMEOUT_S)
        assert landed, f"{topic}: not delivered"
        self.ends[(topic, partition)] = landed[0] + 1


def raw_as_of(url: str, entity: str, vector: Vector) -> tuple[int, dict[str, Any]]:
    """The whole answer (or problem) of an as_of read, as JSON."""
    body: dict[str, Any] = {"entity": entity, "as_of": {}}
    for (topic, partition), offset in vector.items():
        body["as_of"].setdefault(topic, {})[str(partition)] = offset
    request = urllib.request.Request(
        f"{url}/v1/views/account/get",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def caught_up(client: ContextClient, ends: Vector) -> dict[str, Any]:
    """The view's current answer for a1 once it applied everything up to `ends`."""
    fence = {tp: end - 1 for tp, end in ends.items() if end > 0}
    answer = client.get("account", "a1", min_offsets=fence, timeout_ms=20_000)
    positions = {(p.topic, p.partition): p.position for p in answer.freshness.partitions}
    assert positions == ends
    return {"state": answer.state, "changed_by": answer.changed_by}


def started(broker: BrokerProcess, views: Path, tmp_path: Path, *flags: str) -> ContextProcess:
    return ContextProcess(
        broker.bootstrap,
        views,
        tmp_path / "context",
        tmp_path / "context.log",
        extra_args=list(flags),
    ).start()


def test_as_of_answers_the_same_past_state_every_time(
    broker: BrokerProcess, views: Path, tmp_path: Path
) -> None:
    # A snapshot every 4 offsets: v2's read starts from one, v1's from the log start.
    service = started(broker, views, tmp_path, "--snapshot-every-records", "4")
    try:
        source = Source(broker.bootstrap)
        client = ContextClient(service.url)
        source.send("crm.accounts", 0, "a1", {"name": "Acme", "tier": "gold"})
        source.send("billing.entitlements", 1, "e1", {"account_id": "a1", "plan": "pro"})
        source.send("support.tickets", 0, "t0", {"account": {"id": "a1"}, "n": 0})
        source.send("crm.accounts", 0, "a2", {"name": "Other"})
        v1 = dict(source.ends)
        at_v1 = caught_up(client, v1)

        status, first = raw_as_of(service.url, "a1", v1)
        assert status == 200, first
        assert first["state"] == at_v1["state"]
        assert first["changed_by"]["offset"] == at_v1["changed_by"].offset
        assert first["as_of"] == {
            t: {str(p): v1[(t, p)] for p in range(n)} for t, n in TOPICS.items()
        }
        assert first["freshness"]["age_ms"] is None  # a past state has no age

        # The entity changes; snapshots are taken past v1.
        source.send("crm.accounts", 0, "a1", {"name": "Acme", "tier": "platinum"})
        for n in range(1, 9):
            source.send("support.tickets", 0, f"t{n}", {"account": {"id": "a1"}, "n": n})
        source.send("billing.entitlements", 1, "e1", {"account_id": "a1", "plan": "enterprise"})
        v2 = dict(source.ends)
        at_v2 = caught_up(client, v2)
        snapshots = tmp_path / "context" / "snapshots"
        at_v2_snapshot = snapshots / f"snapshot-{sum(v2.values()):020d}.db"
        wait_until(at_v2_snapshot.exists, 30, "a snapshot at v2")

        assert raw_as_of(service.url, "a1", v1) == (200, first)
        status, second = raw_as_of(service.url, "a1", v2)
        assert status == 200, second
        assert second["state"] == at_v2["state"]
        assert second["state"]["profile"]["tier"] == "platinum"
        assert second["state"]["entitlement"]["plan"] == "enterprise"
        assert [t["n"] for t in second["state"]["tickets"]] == list(range(8, -1, -1))
        # Between the two: the vector a reader saw after the fourth new ticket.
        middle = {**v1, ("crm.accounts", 0): v1[("crm.accounts", 0)] + 1}
        middle[("support.tickets", 0)] = v1[("support.tickets", 0)] + 4
        status, between = raw_as_of(service.url, "a1", middle)
        assert status == 200, between
        assert [t["n"] for t in between["state"]["tickets"]] == [4, 3, 2, 1, 0]
        assert between["state"]["entitlement"] == {"account_id": "a1", "plan": "pro"}
        assert between["changed_by"]["topic"] == "support.tickets"
        # A partition left out counts as 0: none of its records.
        without = {tp: at for tp, at in v2.items() if tp[0] != "billing.entitlements"}
        status, partial = raw_as_of(service.url, "a1", without)
        assert status == 200 and "entitlement" not in partial["state"]
        assert partial["as_of"]["billing.entitlements"] == {"0": 0, "1": 0}

        # kill -9 and a restart: the same answers, from the snapshots kept on disk.
        service.kill9()
        service.start()
        assert raw_as_of(service.url, "a1", v1) == (200, first)
        assert raw_as_of(service.url, "a1", v2) == (200, second)
        assert raw_as_of(service.url, "a1", middle) == (200, between)

        # The SDK's typed answer.
        typed = ContextClient(service.url).get("account", "a1", as_of=v2)
        assert typed.state == second["state"] and typed.as_of == v2

        # Past the end of the log: a problem naming the partition, never a guess.
        ahead = {**v2, ("support.tickets", 1): 5}
        status, problem = raw_as_of(service.url, "a1", ahead)
        assert status == 409, problem
        assert problem["type"] == "/problems/as-of-ahead"
        assert problem["ahead"] == [
            {"topic": "support.tickets", "partition": 1, "as_of": 5, "end": 0}
        ]
        # A partition the view does not read, a negative offset, with a fence: 400.
        for bad in ({("crm.accounts", 7): 1}, {("other", 0): 1}, {("crm.accounts", 0): -1}):
            status, problem = raw_as_of(service.url, "a1", bad)
            assert (status, problem["type"]) == (400, "/problems/bad-as-of"), problem
        for body in ('"x"', '{"crm.accounts": {"x": 1}}', '{"crm.accounts": {"0": true}}'):
            request = urllib.request.Request(
                f"{service.url}/v1/views/account/get",
                data=f'{{"entity": "a1", "as_of": {body}}}'.encode(),
                method="POST",
            )
            try:
                urllib.request.urlopen(request, timeout=30)
            except urllib.error.HTTPError as exc:
                problem = json.loads(exc.read())
                assert (exc.code, problem["type"]) == (400, "/problems/bad-request"), problem
                assert "'as_of" in problem["detail"]
            else:
                raise AssertionError(f"as_of {body} was answered")
        try:
            client.get("account", "a1", min_offsets={("crm.accounts", 0): 0}, as_of=v1)
        except ContextClientError as exc:
            assert (exc.status, exc.kind) == (400, "bad-as-of")
        else:
            raise AssertionError("as_of with a fence was answered")
    finally:
        service.stop()


def test_as_of_refuses_what_retention_deleted(
    broker: BrokerProcess, views: Path, tmp_path: Path
) -> None:
    # No snapshot before the deletion: the read would need the deleted records.
    service = started(broker, views, tmp_path, "--snapshot-every-records", "1000000")
    try:
        source = Source(broker.bootstrap)
        for n in range(6):
            source.send("crm.accounts", 0, "a1", {"n": n})
        v = dict(source.ends)
        caught_up(ContextClient(service.url), v)
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        futures = admin.delete_records([TopicPartition("crm.accounts", 0, 3)])
        for future in futures.values():
            future.result(TIMEOUT_S)

        status, problem = raw_as_of(service.url, "a1", v)
        assert status == 410, problem
        assert problem["type"] == "/problems/as-of-deleted"
        assert problem["deleted"] == [
            {"topic": "crm.accounts", "partition": 0, "from": 0, "log_start": 3}
        ]
        # A vector that needs none of that partition's records is still answered.
        status, answer = raw_as_of(service.url, "a1", {("crm.accounts", 0): 0})
        assert (status, answer["found"]) == (200, False)
    finally:
        service.stop()


def test_as_of_bounds(broker: BrokerProcess, views: Path, tmp_path: Path) -> None:
    flags = ["--snapshot-every-records", "1000000", "--as-of-records-max", "10"]
    service = started(broker, views, tmp_path, *flags, "--as-of-concurrent-max", "1")
    try:
        source = Source(broker.bootstrap)
        for n in range(12):
            source.send("crm.accounts", 0, "a1", {"n": n})
        v = dict(source.ends)
        caught_up(ContextClient(service.url), v)

        status, problem = raw_as_of(service.url, "a1", v)  # 12 offsets > 10
        assert (status, problem["type"]) == (422, "/problems/as-of-too-far"), problem
        assert "12 offsets" in problem["detail"]

        # One read at a time: of many sent together, some are turned away at once.
        within = {("crm.accounts", 0): 10}
        results: list[int] = []

        def ask() -> None:
            results.append(raw_as_of(service.url, "a1", within)[0])

        threads = [threading.Thread(target=ask) for _ in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert set(results) <= {200, 503} and 200 in results and 503 in results, results
    finally:
        service.stop()

    # A time bound no read can meet.
    service = started(broker, views, tmp_path, "--as-of-timeout-ms", "1")
    try:
        status, problem = raw_as_of(service.url, "a1", {("crm.accounts", 0): 10})
        assert (status, problem["type"]) == (504, "/problems/as-of-timeout"), problem
    finally:
        service.stop()


def test_as_of_equals_the_view_at_each_vector_it_passed(
    broker: BrokerProcess, views: Path, tmp_path: Path
) -> None:
    """Random records in rounds; after each, the view's state of every account and the
    vector it reflects; at the end (more rounds and snapshots later) as_of each vector
    gives each recorded state. An account's tickets go to one partition, as a keyed
    producer would send them, so its list has one order."""
    rng = random.Random(15)
    accounts = [f"a{n}" for n in range(5)]
    service = started(broker, views, tmp_path, "--snapshot-every-records", "25")
    try:
        source = Source(broker.bootstrap)
        client = ContextClient(service.url)
        seen: list[tuple[Vector, dict[str, Any]]] = []
        for round_ in range(4):
            for n in range(30):
                account = rng.choice(accounts)
                home = accounts.index(account) % 2
                if rng.random() < 0.3:
                    source.send("crm.accounts", 0, account, {"tier": rng.randrange(3)})
                elif rng.random() < 0.2:
                    plan = {"account_id": account, "plan": rng.randrange(3)}
                    source.send("billing.entitlements", home, f"e{n}", plan)
                else:
                    ticket = {"account": {"id": account}, "n": f"{round_}.{n}"}
                    source.send("support.tickets", home, f"t{n}", ticket)
            vector = dict(source.ends)
            caught_up(client, vector)
            states = {a: client.get("account", a).state for a in accounts}
            seen.append((vector, states))
        snapshots = tmp_path / "context" / "snapshots"
        wait_until(lambda: any(snapshots.glob("snapshot-*.db")), 30, "a snapshot")

        for vector, states in seen:
            for account, state in states.items():
                status, answer = raw_as_of(service.url, account, vector)
                assert status == 200, answer
                assert answer["state"] == state, (vector, account)
    finally:
        service.stop()


def test_records_arriving_together_fold_in_the_order_as_of_folds(
    broker: BrokerProcess, views: Path, tmp_path: Path
) -> None:
    """Two partitions' entitlements for one account, the later-stamped one produced first,
    all in place before the service starts so one batch carries them: the view's state
    and changed_by equal as_of's at the same vector. Whichever partition the consumer
    hands over first, one of the two accounts arrives against timestamp order (folded in
    arrival order, its plan and changed_by differed from as_of's)."""
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
    ends: Vector = {(t, p): 0 for t, n in TOPICS.items() for p in range(n)}

    def send(partition: int, account: str, plan: str, timestamp_ms: int) -> None:
        value = json.dumps({"account_id": account, "plan": plan}).encode()
        producer.produce(
            "billing.entitlements", value=value, partition=partition, timestamp=timestamp_ms
        )
        producer.flush(TIMEOUT_S)
        ends[("billing.entitlements", partition)] += 1

    base = 1_767_225_600_000
    send(0, "a1", "later-on-0", base + 2_000)
    send(1, "a1", "earlier-on-1", base + 1_000)
    send(1, "a2", "later-on-1", base + 2_000)
    send(0, "a2", "earlier-on-0", base + 1_000)
    service = started(broker, views, tmp_path)
    try:
        client = ContextClient(service.url)
        fence = {tp: end - 1 for tp, end in ends.items() if end > 0}
        for account, plan in (("a1", "later-on-0"), ("a2", "later-on-1")):
            live = client.get("account", account, min_offsets=fence, timeout_ms=20_000)
            status, past = raw_as_of(service.url, account, ends)
            assert status == 200, past
            assert past["state"]["entitlement"]["plan"] == plan
            assert live.state == past["state"], account
            assert live.changed_by is not None
            assert dataclasses.asdict(live.changed_by) == past["changed_by"], account
    finally:
        service.stop()


def test_as_of_is_refused_past_an_open_transaction(
    broker: BrokerProcess, views: Path, tmp_path: Path
) -> None:
    """Records of a transaction still open are not decided: a vector past the last stable
    offset is ahead of the log, even though the high watermark is past it."""
    service = started(broker, views, tmp_path)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "as-of-open"})
    try:
        source = Source(broker.bootstrap)
        source.send("crm.accounts", 0, "a1", {"tier": "gold"})
        producer.init_transactions(TIMEOUT_S)
        producer.begin_transaction()
        producer.produce("crm.accounts", key=b"a1", value=b'{"tier": "open"}', partition=0)
        producer.flush(TIMEOUT_S)

        status, problem = raw_as_of(service.url, "a1", {("crm.accounts", 0): 2})
        assert status == 409, problem
        assert problem["ahead"] == [{"topic": "crm.accounts", "partition": 0, "as_of": 2, "end": 1}]
        status, answer = raw_as_of(service.url, "a1", {("crm.accounts", 0): 1})
        assert (status, answer["state"]) == (200, {"profile": {"tier": "gold"}})

        producer.abort_transaction(TIMEOUT_S)
        # Aborted: the offset past the marker is decided and holds nothing of it.
        status, answer = raw_as_of(service.url, "a1", {("crm.accounts", 0): 3})
        assert (status, answer["state"]) == (200, {"profile": {"tier": "gold"}})
    finally:
        service.stop()


def test_as_of_reads_are_not_credited_to_another_consumers_group(
    broker: BrokerProcess, views: Path, tmp_path: Path
) -> None:
    # A receipt's group is the last one its principal, client id and host joined: a
    # consumer with librdkafka's default client id joins "billing" from this host first.
    service = started(broker, views, tmp_path)
    other = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": "billing",
            "auto.offset.reset": "earliest",
        }
    )
    try:
        source = Source(broker.bootstrap)
        source.send("crm.accounts", 0, "a1", {"name": "Acme", "tier": "gold"})
        other.subscribe(["billing.entitlements"])
        wait_until(lambda: other.poll(0.2) is None and other.assignment(), 30, "billing joined")
        status, answer = raw_as_of(service.url, "a1", dict(source.ends))
        assert status == 200 and answer["state"]["profile"]["tier"] == "gold", answer

        def as_of_receipts() -> list[dict[str, Any]]:
            events = read_json_topic(broker.bootstrap, RECEIPTS_TOPIC)
            return [
                e["data"]
                for e in events
                if e["data"]["topic"] == "crm.accounts" and e["data"]["client_id"] == "ctx-as-of"
            ]

        receipts = wait_until(as_of_receipts, 30, "a receipt of the as_of read")
        assert [r["group"] for r in receipts] == [None] * len(receipts)
    finally:
        other.close()
        service.stop()
