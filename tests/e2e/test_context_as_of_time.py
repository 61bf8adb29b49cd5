"""`as_of` by timestamp against a broker process: records stamped T1 < T2 < T3 (explicit
producer timestamps) over two partitions of a topic and two topics; as of a time between
them the merged state of that time, the same every time and equal to the read of the
vector it resolved to, which is what Kafka's offsets_for_times answers; a record stamped
in the past but appended after a later one stays out; times before the first record, in
the future, older than the retained log and malformed are answered as the vector path
answers them."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from contextplane.services.context.client import ContextClient
from tests.support.broker import BrokerProcess
from tests.support.context import (  # noqa: F401 - fixtures
    TIMEOUT_S,
    TOPICS,
    ContextProcess,
    broker_fixture,
    service_fixture,
    views_fixture,
)

PARTITIONS = [(t, p) for t, n in sorted(TOPICS.items()) for p in range(n)]


def post(url: str, body: str) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{url}/v1/views/account/get",
        data=body.encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def at_time(url: str, timestamp_ms: Any, entity: str = "a1") -> tuple[int, dict[str, Any]]:
    return post(url, json.dumps({"entity": entity, "as_of": {"timestamp_ms": timestamp_ms}}))


def at_vector(url: str, vector: dict[str, dict[str, int]]) -> tuple[int, dict[str, Any]]:
    return post(url, json.dumps({"entity": "a1", "as_of": vector}))


def kafka_bounds(bootstrap: str, timestamp_ms: int) -> dict[str, dict[str, int]]:
    """Kafka's own answer: offsets_for_times at T + 1 (the first offset stamped after
    T) from a read_committed consumer, the partition's end where there is none."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "check", "isolation.level": "read_committed"}
    )
    try:
        asked = [TopicPartition(t, p, timestamp_ms + 1) for t, p in PARTITIONS]
        bounds: dict[str, dict[str, int]] = {}
        for found in consumer.offsets_for_times(asked, timeout=TIMEOUT_S):
            offset = found.offset
            if offset < 0:
                _, offset = consumer.get_watermark_offsets(
                    TopicPartition(found.topic, found.partition), timeout=TIMEOUT_S
                )
            bounds.setdefault(found.topic, {})[str(found.partition)] = offset
        return bounds
    finally:
        consumer.close()


def test_as_of_a_time(broker: BrokerProcess, service: ContextProcess) -> None:
    check_as_of_a_time(broker.bootstrap, service.url)


def check_as_of_a_time(bootstrap: str, url: str) -> None:
    """The scenario against any cluster (`bootstrap`) and a service reading it (`url`)."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})

    def send(topic: str, partition: int, key: str, value: dict[str, Any], at: int) -> None:
        raw = json.dumps(value).encode()
        producer.produce(topic, key=key.encode(), value=raw, partition=partition, timestamp=at)
        assert producer.flush(TIMEOUT_S) == 0

    t1 = int(time.time() * 1000) - 3_600_000
    t2, t3 = t1 + 1_000, t1 + 2_000
    send("crm.accounts", 0, "a1", {"tier": "gold"}, t1)
    send("support.tickets", 0, "t1", {"account": {"id": "a1"}, "n": 1}, t1 + 10)
    send("support.tickets", 1, "t2", {"account": {"id": "a1"}, "n": 2}, t2)
    send("billing.entitlements", 1, "e1", {"account_id": "a1", "plan": "pro"}, t2)
    send("crm.accounts", 0, "a1", {"tier": "platinum"}, t3)
    send("billing.entitlements", 0, "e2", {"account_id": "a1", "plan": "enterprise"}, t3)
    send("support.tickets", 1, "t3", {"account": {"id": "a1"}, "n": 3}, t3)

    # Before the first record: nothing yet, as a vector of zeros answers.
    status, before = at_time(url, t1 - 1)
    assert (status, before["found"], before["state"]) == (200, False, None), before
    assert before["as_of"] == {t: {str(p): 0 for p in range(n)} for t, n in TOPICS.items()}

    expected = {
        t1 + 500: {"profile": {"tier": "gold"}, "tickets": [{"account": {"id": "a1"}, "n": 1}]},
        t2 + 500: {
            "profile": {"tier": "gold"},
            "entitlement": {"account_id": "a1", "plan": "pro"},
            "tickets": [{"account": {"id": "a1"}, "n": n} for n in (2, 1)],
        },
        t3 + 500: {
            "profile": {"tier": "platinum"},
            "entitlement": {"account_id": "a1", "plan": "enterprise"},
            "tickets": [{"account": {"id": "a1"}, "n": n} for n in (3, 2, 1)],
        },
    }
    answers: dict[int, dict[str, Any]] = {}
    for timestamp_ms, state in expected.items():
        status, answer = at_time(url, timestamp_ms)
        assert status == 200, answer
        assert answer["state"] == state, timestamp_ms
        assert answer["as_of_ms"] == timestamp_ms
        assert answer["freshness"]["newest_event_ms"] <= timestamp_ms
        # The resolved vector is Kafka's offsets_for_times bound, and asking it gives
        # the same state: the caller can repeat the read exactly.
        assert answer["as_of"] == kafka_bounds(bootstrap, timestamp_ms)
        status, by_vector = at_vector(url, answer["as_of"])
        assert status == 200, by_vector
        assert (by_vector["state"], by_vector["changed_by"]) == (state, answer["changed_by"])
        answers[timestamp_ms] = answer
    between = t2 + 500
    assert answers[between]["as_of"] == {
        "billing.entitlements": {"0": 0, "1": 1},
        "crm.accounts": {"0": 1},
        "support.tickets": {"0": 1, "1": 1},
    }

    # Asked again: the same answer. A record stamped before T2 but appended after the
    # T3 record (a producer's clock behind) lies past the bound: the answer stands.
    send("crm.accounts", 0, "a1", {"tier": "late"}, t1 + 1)
    assert at_time(url, between) == (200, answers[between])

    # The SDK: as_of_ms in, the resolved vector out.
    typed = ContextClient(url).get("account", "a1", as_of_ms=between)
    assert (typed.state, typed.as_of_ms) == (expected[between], between)
    assert typed.as_of == {
        (t, int(p)): at
        for t, offsets in answers[between]["as_of"].items()
        for p, at in offsets.items()
    }

    # Not yet past: no state as of it exists (records stamped up to it may still come).
    status, problem = at_time(url, int(time.time() * 1000) + 3_600_000)
    assert (status, problem["type"]) == (409, "/problems/as-of-ahead"), problem
    # Malformed: a problem, never a guess.
    for bad, kind in ((-1, "bad-as-of"), (2**63, "bad-as-of"), ("1", "bad-request")):
        status, problem = at_time(url, bad)
        assert (status, problem["type"]) == (400, f"/problems/{kind}"), (bad, problem)
    status, problem = post(
        url,
        '{"entity": "a1", "as_of": {"timestamp_ms": 1}, "min_offsets": {"crm.accounts": {"0": 0}}}',
    )
    assert (status, problem["type"]) == (400, "/problems/bad-as-of"), problem

    # Older than the retained log: crm.accounts[0] now starts at the record stamped T3,
    # so where T2 fell among the deleted records is unknown.
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.delete_records([TopicPartition("crm.accounts", 0, 1)]).values():
        future.result(TIMEOUT_S)
    status, problem = at_time(url, between)
    assert (status, problem["type"]) == (410, "/problems/as-of-deleted"), problem
    assert problem["deleted"] == [{"topic": "crm.accounts", "partition": 0, "log_start": 1}]


def test_a_time_past_an_open_transaction(broker: BrokerProcess, service: ContextProcess) -> None:
    """Records of a transaction still open are not decided: a lookup that names one (the
    broker's ListOffsets by timestamp does not stop at the last stable offset, as Kafka's
    does for read_committed) counts as none, and the partition is bounded by its last
    stable offset; once the transaction is decided the bound is its record after T."""
    t1 = int(time.time() * 1000) - 3_600_000
    plain = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
    plain.produce("crm.accounts", key=b"a1", value=b'{"tier": "gold"}', partition=0, timestamp=t1)
    assert plain.flush(TIMEOUT_S) == 0
    producer = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "at-time-open"})
    producer.init_transactions(TIMEOUT_S)
    producer.begin_transaction()
    for tier, at in (("open", t1 + 500), ("later", t1 + 2_000)):
        value = json.dumps({"tier": tier}).encode()
        producer.produce("crm.accounts", key=b"a1", value=value, partition=0, timestamp=at)
    producer.flush(TIMEOUT_S)

    status, answer = at_time(service.url, t1 + 1_000)
    assert status == 200, answer
    assert answer["state"] == {"profile": {"tier": "gold"}}
    assert answer["as_of"]["crm.accounts"] == {"0": 1}  # the last stable offset

    producer.abort_transaction(TIMEOUT_S)
    # Decided (aborted): the bound is the record stamped after T; nothing aborted is read.
    status, decided = at_time(service.url, t1 + 1_000)
    assert status == 200, decided
    assert decided["state"] == {"profile": {"tier": "gold"}}
    assert decided["as_of"]["crm.accounts"] == {"0": 2}
    status, later = at_time(service.url, t1 + 3_000)
    assert status == 200, later
    assert later["state"] == {"profile": {"tier": "gold"}}
    assert later["as_of"]["crm.accounts"] == {"0": 4}  # past the abort marker
