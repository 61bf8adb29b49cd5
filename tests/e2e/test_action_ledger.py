"""The tool executor against a broker process, with confluent-kafka clients and a counting
tool endpoint on 127.0.0.1: each idempotency key acts once however often it is sent,
policy denials never reach the endpoint, a SIGKILL mid call is resolved on restart as
far as the endpoint allows (called again with the same key, or `unknown`), the broker's
kill -9 is ridden out, and a second executor of the same transactional id fences the
first before it calls anything (and stays unfenced when the broker restarts under both)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from contextplane.services.actions import ledger
from contextplane.services.actions.client import ActionsClient, ActionsClientError
from tests.support.actions import CountingEndpoint, ExecutorProcess
from tests.support.broker import BrokerProcess, free_port
from tests.support.context import TOPICS, VIEWS, ContextProcess
from tests.support.wait import wait_until

TIMEOUT_S = 60

TOOLS = """
[tools.refund]
endpoint = "{url}"
idempotent = {idempotent}
timeout_ms = 60000
policy = '''
permit(principal, action, resource == Tool::"refund")
when {{ context.arguments.amount <= 100 }};
permit(principal, action, resource == Tool::"refund")
when {{ context.approved && context.arguments.amount <= 1000 }};
'''
approval_policy = '''
permit(principal, action, resource == Tool::"refund")
when {{ context.arguments.amount <= 1000 }};
'''
"""


@pytest.fixture(name="broker")
def broker_fixture(tmp_path: Path) -> Iterator[BrokerProcess]:
    # Executors join their group at once rather than after Kafka's 3-s initial delay.
    running = BrokerProcess(
        tmp_path / "broker", settings={"group.initial.rebalance.delay.ms": "0"}
    ).start()
    yield running
    running.stop()


def endpoint_and_tools(tmp_path: Path, *, honours_key: bool) -> tuple[CountingEndpoint, Path]:
    endpoint = CountingEndpoint(honours_key=honours_key)
    tools = tmp_path / "tools.toml"
    tools.write_text(TOOLS.format(url=endpoint.url, idempotent=str(honours_key).lower()))
    return endpoint, tools


def executor(broker: BrokerProcess, tools: Path, tmp_path: Path, name: str) -> ExecutorProcess:
    return ExecutorProcess(
        broker.bootstrap, tools, tmp_path, tmp_path / f"{name}.log", transactional_id="executor-1"
    )


def ledger_entries(bootstrap: str) -> dict[tuple[str, ...], dict[str, Any]]:
    """The ledger topic read from the start (committed records), newest entry per key."""
    reader = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "test-ledger-reader",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "fetch.wait.max.ms": 10,  # the end reported at once, not after a 500-ms empty fetch
        }
    )
    try:
        _, end = reader.get_watermark_offsets(
            TopicPartition(ledger.LEDGER_TOPIC, 0), timeout=TIMEOUT_S, cached=False
        )
        reader.assign([TopicPartition(ledger.LEDGER_TOPIC, 0, 0)])
        found: dict[tuple[str, ...], dict[str, Any]] = {}
        at = 0
        while at < end:
            message = reader.poll(TIMEOUT_S)
            assert message is not None, f"the ledger stopped at {at} of {end}"
            if message.error() is not None:
                at = max(at, message.offset())
                continue
            at = message.offset() + 1
            found[tuple(json.loads(message.key()))] = json.loads(message.value())
        return found
    finally:
        reader.close()


def requests_consumed(bootstrap: str, group: str = "contextplane-executor") -> bool:
    """The executor group's committed offset of the requests topic is at its end."""
    tp = TopicPartition(ledger.REQUESTS_TOPIC, 0)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    asked = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group, [tp])])
    committed = asked[group].result(TIMEOUT_S).topic_partitions[0].offset
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": "test-watermarks"})
    try:
        _, end = reader.get_watermark_offsets(tp, timeout=TIMEOUT_S, cached=False)
    finally:
        reader.close()
    return bool(committed == end)


def evaluations(bootstrap: str) -> list[dict[str, Any]]:
    reader = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "test-evaluations-reader",
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
        }
    )
    try:
        _, end = reader.get_watermark_offsets(
            TopicPartition(ledger.EVALUATIONS_TOPIC, 0), timeout=TIMEOUT_S, cached=False
        )
        reader.assign([TopicPartition(ledger.EVALUATIONS_TOPIC, 0, 0)])
        found = []
        while len(found) < end:
            messages = reader.consume(1000, timeout=1)
            if not messages:
                break
            found += [json.loads(m.value()) for m in messages if m.error() is None]
        return found
    finally:
        reader.close()


def test_each_key_acts_once_and_denials_never_reach_the_endpoint(
    broker: BrokerProcess, tmp_path: Path
) -> None:
    endpoint, tools = endpoint_and_tools(tmp_path, honours_key=True)
    running = executor(broker, tools, tmp_path, "executor").start()
    client = ActionsClient(broker.bootstrap, running.url)
    try:
        keys = [f"refund-{n}" for n in range(12)]
        outcomes: dict[str, list[Any]] = {}
        # Every key sent twice, some three times, interleaved with other keys.
        for key in [*keys, *keys, *keys[:4]]:
            amount = 10 + int(key.split("-")[1])
            outcome = client.call("refund", {"account": "a1", "amount": amount}, key)
            outcomes.setdefault(key, []).append(outcome)
        denied = client.call("refund", {"account": "a1", "amount": 5000}, "refund-big")
        denied_again = client.call("refund", {"account": "a1", "amount": 5000}, "refund-big")
        waiting = client.call("refund", {"account": "a1", "amount": 500}, "refund-mid")
        conflict = client.call("refund", {"account": "a1", "amount": 99}, "refund-0")

        assert {k: [o.state for o in got] for k, got in outcomes.items()} == {
            k: ["done"] * (3 if k in keys[:4] else 2) for k in keys
        }
        for key, got in outcomes.items():
            assert all(o.result == got[0].result for o in got), key
            assert got[0].result is not None and got[0].result["body"]["effect_of"] == key
        assert (denied.state, denied_again.state) == ("denied", "denied")
        assert waiting.state == "awaiting-approval"
        assert conflict.state == "conflict"
        assert conflict.entry["held_request_hash"] != conflict.entry["request_hash"]
        # Each allowed key reached the endpoint once; nothing else reached it.
        assert dict(endpoint.requests) == dict.fromkeys(keys, 1)
        assert dict(endpoint.effects) == dict.fromkeys(keys, 1)
        assert endpoint.without_key == 0

        approved = client.call(
            "refund", {"account": "a1", "amount": 500}, "refund-mid", approved_by="alice"
        )
        assert approved.state == "done" and approved.entry["approved_by"] == "alice"
        assert endpoint.requests["refund-mid"] == 1

        recorded = ledger_entries(broker.bootstrap)
        for key in keys:
            entry = recorded[("call", key)]
            assert entry["state"] == "done" and entry["result"]["body"]["effect_of"] == key
        assert recorded[("call", "refund-big")]["state"] == "denied"
        assert recorded[("call", "refund-mid")]["state"] == "done"
        assert recorded[("call", "refund-0")]["state"] == "done"  # the conflict did not replace it
        assert any(k[:2] == ("conflict", "refund-0") for k in recorded)
        # One evaluation event per policy check: 12 keys, one denial (the repeat found it
        # final in the ledger), refund-mid waiting and then approved.
        events = evaluations(broker.bootstrap)
        decisions = sorted((e["key"], e["decision"]) for e in events)
        assert decisions == sorted(
            [(k, "allow") for k in keys]
            + [("refund-big", "deny")]
            + [("refund-mid", "awaiting-approval"), ("refund-mid", "allow")]
        )
        assert all(e["policy_version"].startswith("sha256:") for e in events)
    finally:
        client.close()
        running.stop()
        endpoint.close()


@pytest.mark.parametrize("honours_key", [True, False], ids=["idempotent", "not-idempotent"])
def test_sigkill_mid_call_is_resolved_on_restart(
    broker: BrokerProcess, tmp_path: Path, honours_key: bool
) -> None:
    """The endpoint performs the effect and holds its answer; the executor is killed with
    SIGKILL while it waits. After the restart the ledger never claims more than the
    endpoint did: an idempotent endpoint is called again with the same key (and performs
    the effect no second time), one that is not is never called again: `unknown`."""
    endpoint, tools = endpoint_and_tools(tmp_path, honours_key=honours_key)
    endpoint.hold.add("refund-held")
    running = executor(broker, tools, tmp_path, "executor").start()
    client = ActionsClient(broker.bootstrap, running.url)
    try:
        before = client.call("refund", {"account": "a1", "amount": 20}, "refund-before")
        assert before.state == "done"
        client._produce(
            "refund-held",
            {
                "decision_id": "d1",
                "tool": "refund",
                "arguments": {"account": "a1", "amount": 30},
            },
            TIMEOUT_S,
        )
        assert endpoint.arrived.wait(TIMEOUT_S), running.log_tail()
        assert client.entry("refund-held")["entry"]["state"] == "started"  # type: ignore[index]
        running.kill9()
        endpoint.release.set()  # the held answer finds its caller gone

        running.start()
        after = client.call("refund", {"account": "a1", "amount": 30}, "refund-held")
        assert endpoint.effects["refund-held"] == 1
        if honours_key:
            assert after.state == "done"
            assert after.result is not None and after.result["body"]["effect_of"] == "refund-held"
            assert endpoint.requests["refund-held"] == 2  # called again, with the same key
        else:
            assert after.state == "unknown"
            assert endpoint.requests["refund-held"] == 1  # never called twice
        # The key before the kill was not called again; a new key works as before.
        assert client.call("refund", {"account": "a1", "amount": 40}, "refund-after").state == (
            "done"
        )
        assert endpoint.requests["refund-before"] == 1
        assert endpoint.requests["refund-after"] == 1
        state = ledger_entries(broker.bootstrap)[("call", "refund-held")]["state"]
        assert state == ("done" if honours_key else "unknown")
        # The restart created nothing again: no refused CreateTopics in the audit trail.
        assert broker.log_path is not None
        assert "TOPIC_ALREADY_EXISTS" not in broker.log_path.read_text()
    finally:
        client.close()
        running.stop()
        endpoint.close()


def test_the_broker_killed_and_restarted_under_the_executor(
    broker: BrokerProcess, tmp_path: Path
) -> None:
    endpoint, tools = endpoint_and_tools(tmp_path, honours_key=True)
    running = executor(broker, tools, tmp_path, "executor").start()
    client = ActionsClient(broker.bootstrap, running.url)
    try:
        first = [f"k{n}" for n in range(5)]
        for key in first:
            assert client.call("refund", {"amount": 1}, key).state == "done"
        broker.kill9()
        broker.start()
        second = [f"k{n}" for n in range(5, 10)]
        for key in [*second, *first]:
            outcome = client.call("refund", {"amount": 1}, key, wait_s=TIMEOUT_S)
            assert outcome.state == "done", (key, outcome)
        assert dict(endpoint.effects) == dict.fromkeys(first + second, 1)
        assert dict(endpoint.requests) == dict.fromkeys(first + second, 1)
        assert running.process is not None and running.process.poll() is None
    finally:
        client.close()
        running.stop()
        endpoint.close()


def test_a_second_executor_of_the_same_transactional_id_fences_the_first(
    broker: BrokerProcess, tmp_path: Path
) -> None:
    """The older executor is mid call (transaction A committed, the endpoint holding its
    answer) when a newer one starts with the same transactional id. The newer fences it,
    takes the partition (the same static group member), finds the call `started` and
    calls the endpoint again with the same key; the older, released, cannot record its
    outcome (fenced), exits 1, and calls nothing more."""
    endpoint, tools = endpoint_and_tools(tmp_path, honours_key=True)
    endpoint.hold.add("k-held")
    older = executor(broker, tools, tmp_path, "older").start()
    client = ActionsClient(broker.bootstrap, older.url)
    try:
        assert client.call("refund", {"amount": 1}, "k-older").state == "done"
        request = {"decision_id": "d1", "tool": "refund", "arguments": {"amount": 2}}
        client._produce("k-held", request, TIMEOUT_S)
        assert endpoint.arrived.wait(TIMEOUT_S), older.log_tail()
        newer = executor(broker, tools, tmp_path, "newer").start()
        try:
            newer_client = ActionsClient(broker.bootstrap, newer.url)

            def call(key: str, amount: int) -> Any:
                try:
                    return newer_client.call("refund", {"amount": amount}, key, wait_s=TIMEOUT_S)
                except ActionsClientError as exc:
                    raise AssertionError(f"{exc}\nnewer:\n{newer.log_tail()}") from None

            held = call("k-held", 2)
            assert held.state == "done" and held.entry["executor"] == "executor-1"
            endpoint.release.set()  # the older's call returns; it cannot record it
            assert older.process is not None
            wait_until(lambda: older.process.poll() is not None, TIMEOUT_S, "the older exits")
            assert older.process.returncode == 1
            assert "fenced" in older.log_text()
            keys = [f"k{n}" for n in range(6)]
            for key in keys:
                assert call(key, 1).state == "done"
            newer_client.close()

            def calls(log: str) -> list[str]:
                return [line for line in log.splitlines() if "calling refund for key" in line]

            assert [c.split()[-1] for c in calls(older.log_text())] == ["'k-older'", "'k-held'"]
            assert len(calls(newer.log_text())) == 1 + len(keys)
            assert endpoint.requests["k-held"] == 2  # the newer's call, with the same key
            assert dict(endpoint.effects) == dict.fromkeys(["k-older", "k-held", *keys], 1)
            assert ledger_entries(broker.bootstrap)[("call", "k-held")]["state"] == "done"
            assert newer.process is not None and newer.process.poll() is None, newer.log_tail()
        finally:
            newer.stop()
    finally:
        client.close()
        older.stop()
        endpoint.close()


def test_a_fenced_executor_does_not_revive_itself_after_a_broker_restart(
    broker: BrokerProcess, tmp_path: Path
) -> None:
    """As above, but the broker is killed and restarted while the older is still held in
    its call, after the newer took its place, and the newer serves a call after the
    restart. The older's producer then sees the cluster lost; it must not replace it (a
    new producer's init_transactions would fence the newer): it learns from the old one
    that it is fenced and exits 1, its outcome unrecorded; the newer keeps serving."""
    endpoint, tools = endpoint_and_tools(tmp_path, honours_key=True)
    endpoint.hold.add("k-held")
    older = executor(broker, tools, tmp_path, "older").start()
    client = ActionsClient(broker.bootstrap, older.url)
    try:
        request = {"decision_id": "d1", "tool": "refund", "arguments": {"amount": 2}}
        client._produce("k-held", request, TIMEOUT_S)
        assert endpoint.arrived.wait(TIMEOUT_S), older.log_tail()
        newer = executor(broker, tools, tmp_path, "newer").start()
        try:
            newer_client = ActionsClient(broker.bootstrap, newer.url)

            def call(key: str) -> Any:
                try:
                    return newer_client.call("refund", {"amount": 2}, key, wait_s=TIMEOUT_S)
                except ActionsClientError as exc:
                    raise AssertionError(f"{exc}\nnewer:\n{newer.log_tail()}") from None

            assert call("k-held").state == "done"
            # The newer idle (both k-held requests consumed): the restart lands on the
            # older alone, not in the middle of the newer's transaction.
            wait_until(lambda: requests_consumed(broker.bootstrap), TIMEOUT_S, "k-held consumed")
            broker.kill9()
            broker.start()
            # The newer serves first: its producer, which lost the cluster too, is replaced.
            assert call("k0").state == "done"
            endpoint.release.set()  # the older's call returns into a restarted cluster
            assert older.process is not None
            wait_until(lambda: older.process.poll() is not None, TIMEOUT_S, "the older exits")
            assert older.process.returncode == 1
            keys = ["k0", "k1", "k2"]
            for key in keys[1:]:
                assert call(key).state == "done"  # the newer was not fenced in turn
            newer_client.close()
            assert newer.process is not None and newer.process.poll() is None, newer.log_tail()
            # The older learnt it was fenced from its old producer, and made no new one.
            assert "fenced by a newer instance" in older.log_text()
            assert "producer replaced" not in older.log_text()
            assert endpoint.requests["k-held"] == 2  # the older's call, then the newer's
            assert dict(endpoint.effects) == dict.fromkeys(["k-held", *keys], 1)
            assert ledger_entries(broker.bootstrap)[("call", "k-held")]["state"] == "done"
        finally:
            newer.stop()
    finally:
        client.close()
        older.stop()
        endpoint.close()


GOLD_TOOLS = """
[tools.refund]
endpoint = "{url}"
idempotent = true
policy = '''
permit(principal, action, resource == Tool::"refund")
when {{ context.entity has profile && context.entity.profile.tier == "gold"
        && context.arguments.amount <= 100 }};
'''
[tools.refund.context]
view = "account"
entity = "account_id"
"""


def test_the_policy_reads_the_entity_from_the_context_service(
    broker: BrokerProcess, tmp_path: Path
) -> None:
    """Refunds up to 100 for gold accounts: the account's tier comes from the context
    service, behind a read fence at the offset of the event that set it."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    for future in admin.create_topics([NewTopic(t, n, 1) for t, n in TOPICS.items()]).values():
        future.result(TIMEOUT_S)
    views = tmp_path / "views.toml"
    views.write_text(VIEWS)
    context = ContextProcess(
        broker.bootstrap, views, tmp_path / "context", tmp_path / "context.log"
    ).start()
    endpoint = CountingEndpoint(honours_key=True)
    tools = tmp_path / "tools.toml"
    tools.write_text(GOLD_TOOLS.format(url=endpoint.url))
    running = executor(broker, tools, tmp_path, "executor")
    running.extra_args = ["--context-url", context.url]
    running.start()
    client = ActionsClient(broker.bootstrap, running.url)
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    try:
        landed: dict[str, tuple[int, int]] = {}

        def account(account_id: str, tier: str) -> None:
            def delivered(error: Any, message: Any) -> None:
                assert error is None, error
                landed[account_id] = (message.partition(), message.offset())

            value = json.dumps({"name": account_id, "tier": tier}).encode()
            producer.produce(
                "crm.accounts", key=account_id.encode(), value=value, on_delivery=delivered
            )
            producer.flush(TIMEOUT_S)

        def fence(account_id: str) -> dict[tuple[str, int], int]:
            partition, offset = landed[account_id]
            return {("crm.accounts", partition): offset}

        account("a1", "gold")
        account("a2", "silver")
        gold = client.call(
            "refund", {"account_id": "a1", "amount": 50}, "r1", context_offsets=fence("a1")
        )
        silver = client.call(
            "refund", {"account_id": "a2", "amount": 50}, "r2", context_offsets=fence("a2")
        )
        too_much = client.call(
            "refund", {"account_id": "a1", "amount": 500}, "r3", context_offsets=fence("a1")
        )
        assert (gold.state, silver.state, too_much.state) == ("done", "denied", "denied")
        assert dict(endpoint.requests) == {"r1": 1}
        # The tier changes: the next call's fence makes the executor see it.
        account("a2", "gold")
        upgraded = client.call(
            "refund", {"account_id": "a2", "amount": 50}, "r4", context_offsets=fence("a2")
        )
        assert upgraded.state == "done"
        by_key = {e["key"]: e for e in evaluations(broker.bootstrap)}
        assert by_key["r2"]["context_read"]["entity"] == "a2"
        assert by_key["r2"]["inputs"]["context"]["entity"]["profile"]["tier"] == "silver"
        assert by_key["r4"]["inputs"]["context"]["entity"]["profile"]["tier"] == "gold"
        assert by_key["r4"]["decision"] == "allow"
    finally:
        client.close()
        running.stop()
        context.stop()
        endpoint.close()


def test_bad_requests_and_an_endpoint_down_answer_and_the_executor_goes_on(
    broker: BrokerProcess, tmp_path: Path
) -> None:
    """Requests that cannot be read are recorded `rejected` (or, without a key, only
    consumed); an endpoint that refuses connections gives `error` (nothing happened), and
    the same request once the endpoint is up is performed, once."""
    port = free_port()
    tools = tmp_path / "tools.toml"
    tools.write_text(TOOLS.format(url=f"http://127.0.0.1:{port}/act", idempotent="true"))
    running = executor(broker, tools, tmp_path, "executor").start()
    client = ActionsClient(broker.bootstrap, running.url)
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    endpoint: CountingEndpoint | None = None
    try:
        good = {"decision_id": "d", "tool": "refund", "arguments": {"amount": 1}}
        bad = [
            (None, json.dumps(good).encode()),
            (b"k-json", b"{not json"),
            (b"k-deep", b"[" * 5000),  # past the JSON decoder's depth
            (b"k-tool", json.dumps({**good, "tool": "wire-money"}).encode()),
            (b"k-hash", json.dumps({**good, "request_hash": "sha256:0"}).encode()),
        ]
        for key, value in bad:
            producer.produce(ledger.REQUESTS_TOPIC, key=key, value=value)
        producer.flush(TIMEOUT_S)
        down = client.call("refund", {"amount": 1}, "k-down")
        assert down.state == "error" and "connecting" in down.entry["reason"]
        endpoint = CountingEndpoint(honours_key=True, port=port)
        up = client.call("refund", {"amount": 1}, "k-down")
        assert up.state == "done"
        assert dict(endpoint.effects) == {"k-down": 1}
        recorded = ledger_entries(broker.bootstrap)
        rejected = sorted(
            (k[1], e["reason"].split(":")[0]) for k, e in recorded.items() if k[0] == "rejected"
        )
        assert rejected == [
            ("k-deep", "value not JSON (nested too deeply)"),
            ("k-hash", "request_hash does not match the tool and arguments"),
            ("k-json", "value not JSON"),
            ("k-tool", "unknown tool 'wire-money'"),
        ]
        # A request the executor refuses is answered as such, not left to time out.
        unknown = client.call("wire-money", {"amount": 1}, "k-unknown", wait_s=15)
        assert unknown.state == "rejected"
        assert unknown.entry["reason"] == "unknown tool 'wire-money'"
        assert client.entry("k-never") is None  # 404
        with pytest.raises(ActionsClientError, match="HTTP 400"):
            client.entry("x" * (ledger.KEY_BYTES_MAX + 1))
        assert running.process is not None and running.process.poll() is None
    finally:
        client.close()
        running.stop()
        if endpoint is not None:
            endpoint.close()


def test_rebalances_and_a_member_killed_mid_stream_act_once_per_key(
    broker: BrokerProcess, tmp_path: Path
) -> None:
    """Two executors of different ids share four partitions: the second joins while
    calls are under way (a rebalance), later it is killed with SIGKILL mid stream and the
    first takes its partitions after its session ends. Each key's effect happens once and
    the ledger has `done` for every key."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(ledger.REQUESTS_TOPIC, 4, 1)])[ledger.REQUESTS_TOPIC].result(
        TIMEOUT_S
    )
    endpoint, tools = endpoint_and_tools(tmp_path, honours_key=True)
    first = executor(broker, tools, tmp_path, "first").start()
    # The transaction the killed executor leaves open holds back the ledger's readers until
    # the broker aborts it: after 10 s rather than the default minute.
    second = ExecutorProcess(
        broker.bootstrap,
        tools,
        tmp_path,
        tmp_path / "second.log",
        transactional_id="executor-2",
        extra_args=["--transaction-timeout-ms", "10000"],
    )
    client = ActionsClient(broker.bootstrap, first.url)
    try:
        keys = [f"k{n}" for n in range(150)]

        def send(batch: list[str]) -> None:
            for key in batch:
                value = {"decision_id": key, "tool": "refund", "arguments": {"amount": 1}}
                client._produce(key, value, TIMEOUT_S)

        send(keys[:50])
        second.start()
        send(keys[50:100])
        # The first may have called all of those before the second was dealt partitions:
        # more once it has some, so that the second calls too.
        wait_until(lambda: "assigned [(" in second.log_text(), TIMEOUT_S, "the second's share")
        send(keys[100:125])
        wait_until(
            lambda: "calling refund for key" in second.log_text(), TIMEOUT_S, "the second calls"
        )
        second.kill9()
        send(keys[125:])

        def all_done() -> bool:
            found = client.entry  # the first executor's index: it reads the whole ledger
            return all(((found(k) or {}).get("entry") or {}).get("state") == "done" for k in keys)

        wait_until(all_done, 120, "every key done")
        assert dict(endpoint.effects) == dict.fromkeys(keys, 1)
        assert all(endpoint.requests[k] <= 2 for k in keys)  # a second one: same key
        recorded = ledger_entries(broker.bootstrap)
        assert all(recorded[("call", k)]["state"] == "done" for k in keys)
        assert {recorded[("call", k)]["executor"] for k in keys} == {"executor-1", "executor-2"}
    finally:
        client.close()
        second.stop()
        first.stop()
        endpoint.close()


def test_an_idle_executor_is_fenced_by_a_newer_one_of_the_same_id(
    broker: BrokerProcess, tmp_path: Path
) -> None:
    """Nothing under way: the newer's start fences the older's producer, and the group
    fences its static member (FENCED_INSTANCE_ID at its next heartbeat): the older exits 1
    without calling anything, the newer does every call."""
    endpoint, tools = endpoint_and_tools(tmp_path, honours_key=True)
    older = executor(broker, tools, tmp_path, "older").start()
    client = ActionsClient(broker.bootstrap, older.url)
    try:
        assert client.call("refund", {"amount": 1}, "k-older").state == "done"
        newer = executor(broker, tools, tmp_path, "newer").start()
        try:
            assert older.process is not None
            wait_until(lambda: older.process.poll() is not None, TIMEOUT_S, "the older exits")
            assert older.process.returncode == 1
            assert "Static consumer fenced" in older.log_text()
            newer_client = ActionsClient(broker.bootstrap, newer.url)
            keys = [f"k{n}" for n in range(5)]
            for key in keys:
                assert newer_client.call("refund", {"amount": 1}, key).state == "done"
            newer_client.close()
            older_calls = [x for x in older.log_text().splitlines() if "calling refund for" in x]
            assert len(older_calls) == 1 and "k-older" in older_calls[0]
            assert dict(endpoint.requests) == dict.fromkeys(["k-older", *keys], 1)
        finally:
            newer.stop()
    finally:
        client.close()
        older.stop()
        endpoint.close()
