"""Who may approve a tool call, and how long the ledger keeps a key, against a broker
process: SASL/SCRAM users, Kafka's StandardAuthorizer and ACLs that let only `User:NAME`
write `copilot.approvals.NAME`; the executor as `contextplane executor`, real
confluent-kafka clients and a counting tool endpoint.

An approval by the tool's approver releases the call once; another principal cannot write
the approver's topic (the broker refuses it), its approval on its own topic approves
nothing, and a typed `approved_by` approves nothing for a tool that names approvers; the
executor will not start while the ACLs let anyone else write an approver's topic; an
approved call interrupted by SIGKILL is resumed from its approval, effect once. Entries
past `--key-retention-ms` are tombstoned: the key leaves the executor's index and the same
request is then a new call."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from contextplane.services.actions import ledger
from contextplane.services.actions.client import ActionsClient, ActionsClientError
from contextplane.services.kafka_delivery import produce_and_wait
from tests.support.actions import CountingEndpoint, ExecutorProcess
from tests.support.broker import BrokerProcess
from tests.support.wait import wait_until

# Groups join at once rather than after the 3-s initial rebalance delay.
FAST_JOINS = {"group.initial.rebalance.delay.ms": "0"}

TIMEOUT_S = 60
USERS = ("admin", "copilot", "alice", "mallory")
SETTINGS = {
    "listeners": "SASL_PLAINTEXT://127.0.0.1:0",
    "sasl.enabled.mechanisms": "SCRAM-SHA-512",
    "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "super.users": "User:admin",
    "auto.create.topics.enable": "false",
    **FAST_JOINS,
}
SCRAM = "org.apache.kafka.common.security.scram.ScramLoginModule"

# Refunds up to 100 allowed; up to 1,000 with a human approval; mallory approves escalations.
TOOLS = """
[tools.refund]
endpoint = "{url}"
idempotent = true
policy = '''
permit(principal, action, resource == Tool::"refund")
when {{ context.arguments.amount <= 100 }};
permit(principal, action, resource == Tool::"refund")
when {{ context.approved && context.approver == "User:alice"
        && context.arguments.amount <= 1000 }};
'''
approval_policy = '''
permit(principal, action, resource == Tool::"refund")
when {{ context.arguments.amount <= 1000 }};
'''
{approvers}

[tools.escalate]
endpoint = "{url}"
idempotent = true
policy = '''permit(principal, action, resource) when {{ context.approved }};'''
approval_policy = '''permit(principal, action, resource);'''
{escalate_approvers}
"""


def tools_file(tmp_path: Path, url: str, *, approvers: bool) -> Path:
    path = tmp_path / "tools.toml"
    path.write_text(
        TOOLS.format(
            url=url,
            approvers='approvers = ["User:alice"]' if approvers else "",
            escalate_approvers='approvers = ["User:mallory"]' if approvers else "",
        )
    )
    return path


def login(broker: BrokerProcess, user: str) -> dict[str, str]:
    return {
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": user,
        "sasl.password": f"{user}-secret",
    }


@pytest.fixture(name="secured")
def secured_fixture(tmp_path: Path) -> Iterator[BrokerProcess]:
    data = tmp_path / "broker"
    for user in USERS:
        subprocess.run(
            [sys.executable, "-m", "contextplane.cli.launch", "users", "add", user]
            + ["--data-dir", str(data), "--password-stdin"],
            input=f"{user}-secret\n",
            text=True,
            check=True,
            capture_output=True,
        )
    running = BrokerProcess(data, settings=SETTINGS).start()
    yield running
    running.stop()


def allow(principal: str, operation: AclOperation, kind: ResourceType, name: str) -> AclBinding:
    return AclBinding(
        kind,
        name,
        ResourcePatternType.LITERAL,
        principal,
        "*",
        operation,
        AclPermissionType.ALLOW,
    )


def grant(broker: BrokerProcess) -> None:
    """The copilot writes requests; each approver writes only its own approvals topic."""
    topic, write = ResourceType.TOPIC, AclOperation.WRITE
    bindings = [
        allow("User:copilot", write, topic, ledger.REQUESTS_TOPIC),
        allow("User:alice", write, topic, "copilot.approvals.alice"),
        allow("User:mallory", write, topic, "copilot.approvals.mallory"),
    ]
    admin = AdminClient({"bootstrap.servers": broker.bootstrap, **login(broker, "admin")})
    for future in admin.create_acls(bindings).values():
        future.result(TIMEOUT_S)


def command_config(tmp_path: Path, user: str) -> Path:
    path = tmp_path / f"{user}.properties"
    path.write_text(
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\n"
        f'sasl.jaas.config={SCRAM} required username="{user}" password="{user}-secret";\n'
    )
    return path


def secured_executor(broker: BrokerProcess, tools: Path, tmp_path: Path) -> ExecutorProcess:
    admin = command_config(tmp_path, "admin")
    return ExecutorProcess(
        broker.bootstrap,
        tools,
        tmp_path,
        tmp_path / "executor.log",
        extra_args=["--command-config", str(admin)],
    )


def test_the_executor_will_not_start_while_others_may_write_an_approvers_topic(
    secured: BrokerProcess, tmp_path: Path
) -> None:
    tools = tools_file(tmp_path, "http://127.0.0.1:9/act", approvers=True)
    # No ACLs yet: a cluster allowing everyone where none is found would let anyone approve.
    with pytest.raises(RuntimeError, match="no ACL lets User:alice write copilot.approvals.alice"):
        secured_executor(secured, tools, tmp_path).start()
    grant(secured)
    prefixed = AclBinding(
        ResourceType.TOPIC,
        "copilot.approvals.",
        ResourcePatternType.PREFIXED,
        "User:copilot",
        "*",
        AclOperation.ALL,
        AclPermissionType.ALLOW,
    )
    admin = AdminClient({"bootstrap.servers": secured.bootstrap, **login(secured, "admin")})
    for future in admin.create_acls([prefixed]).values():
        future.result(TIMEOUT_S)
    with pytest.raises(RuntimeError) as refused:
        secured_executor(secured, tools, tmp_path).start()
    assert (
        "User:copilot may write copilot.approvals.alice (ALL on prefixed 'copilot.approvals.'):"
        " only User:alice may"
    ) in str(refused.value)


def test_only_the_tools_approver_releases_the_call_and_only_once(
    secured: BrokerProcess, tmp_path: Path
) -> None:
    endpoint = CountingEndpoint(honours_key=True)
    tools = tools_file(tmp_path, endpoint.url, approvers=True)
    grant(secured)
    running = secured_executor(secured, tools, tmp_path).start()
    clients = {
        user: ActionsClient(secured.bootstrap, running.url, login(secured, user))
        for user in ("copilot", "alice", "mallory")
    }
    copilot, alice, mallory = clients["copilot"], clients["alice"], clients["mallory"]
    arguments = {"account": "a1", "amount": 500}
    try:
        waiting = copilot.call("refund", arguments, "refund-1")
        assert waiting.state == "awaiting-approval"
        hash_ = waiting.entry["request_hash"]

        # A typed approved_by approves nothing for a tool that names its approvers.
        typed = copilot.call("refund", arguments, "refund-1", approved_by="User:alice")
        assert typed.state == "awaiting-approval"
        assert "approves nothing" in typed.entry["approved_by_ignored"]
        assert "approved_by" not in typed.entry

        # Mallory cannot write alice's topic: the broker refuses the record.
        intruder = ActionsClient(secured.bootstrap, running.url, login(secured, "mallory"))
        with pytest.raises(ActionsClientError, match="Topic authorization failed"):
            intruder.approve("User:alice", "refund-1", hash_, wait_s=15)
        # On her own topic she is an approver, of escalations only.
        by_mallory = mallory.approve("User:mallory", "refund-1", hash_)
        assert by_mallory.state == "refused"
        assert by_mallory.entry["reason"] == "User:mallory is not an approver of tool 'refund'"
        # Alice's approval of another request, or of a key nothing awaits, approves nothing.
        other = alice.approve("User:alice", "refund-1", ledger.request_hash("refund", {}))
        assert other.state == "refused" and hash_ in other.entry["reason"]
        unknown = alice.approve("User:alice", "refund-unknown", hash_)
        assert unknown.state == "refused" and "awaits approval" in unknown.entry["reason"]
        assert endpoint.requests["refund-1"] == 0

        approved = alice.approve("User:alice", "refund-1", hash_)
        assert approved.state == "done", approved.entry
        assert approved.entry["approved_by"] == "User:alice"
        assert approved.entry["approval"]["topic"] == "copilot.approvals.alice"
        # Approved again: the recorded outcome stands, and the approval is refused.
        again = alice.approve("User:alice", "refund-1", hash_)
        assert again.state == "done" and again.result == approved.result

        def second_refused() -> bool:
            found = ledger_read(running.url, "refund-1", hash_, "User:alice") or {}
            return "is done" in ((found.get("approval") or {}).get("reason") or "")

        wait_until(second_refused, TIMEOUT_S, "the second approval is refused")
        repeated = copilot.call("refund", arguments, "refund-1")
        assert repeated.state == "done" and repeated.result == approved.result
        assert (endpoint.requests["refund-1"], endpoint.effects["refund-1"]) == (1, 1)

        # The ledger topic, read as the admin, records the approver; the evaluation that
        # allowed the call saw it as context.approver.
        entries = ledger_entries(secured.bootstrap, login(secured, "admin"))
        assert entries[("call", "refund-1")]["approved_by"] == "User:alice"
        refusal = entries[("approval", "refund-1", "User:mallory", hash_)]
        assert refusal["state"] == "refused"
        allowed = [e for e in evaluations(secured, "refund-1") if e["decision"] == "allow"]
        assert [e["inputs"]["context"]["approver"] for e in allowed] == ["User:alice"]
    finally:
        for client in clients.values():
            client.close()
        running.stop()
        endpoint.close()


def test_an_acl_changed_after_the_start_is_read_at_the_next_approval(
    secured: BrokerProcess, tmp_path: Path
) -> None:
    endpoint = CountingEndpoint(honours_key=True)
    tools = tools_file(tmp_path, endpoint.url, approvers=True)
    grant(secured)
    running = secured_executor(secured, tools, tmp_path).start()
    clients = {
        user: ActionsClient(secured.bootstrap, running.url, login(secured, user))
        for user in ("copilot", "alice", "mallory")
    }
    copilot, alice, mallory = clients["copilot"], clients["alice"], clients["mallory"]
    admin = AdminClient({"bootstrap.servers": secured.bootstrap, **login(secured, "admin")})
    alices_topic = "copilot.approvals.alice"
    widened = allow("User:mallory", AclOperation.WRITE, ResourceType.TOPIC, alices_topic)
    try:
        waiting = copilot.call("refund", {"account": "a2", "amount": 500}, "refund-2")
        assert waiting.state == "awaiting-approval"
        hash_ = waiting.entry["request_hash"]

        # Granted after the executor started: mallory may now write alice's topic, and the
        # broker takes her approval; the executor, reading the ACLs again, does not.
        for future in admin.create_acls([widened]).values():
            future.result(TIMEOUT_S)
        forged = approve_once_writable(mallory, "refund-2", hash_)
        assert forged.state == "refused"
        assert "User:mallory may write copilot.approvals.alice" in forged.entry["reason"]
        assert endpoint.requests["refund-2"] == 0

        # The grant removed, alice's own approval releases the call.
        mallorys = AclBindingFilter(
            ResourceType.TOPIC,
            alices_topic,
            ResourcePatternType.LITERAL,
            "User:mallory",
            "*",
            AclOperation.WRITE,
            AclPermissionType.ALLOW,
        )
        for future in admin.delete_acls([mallorys]).values():
            future.result(TIMEOUT_S)
        approved = alice.approve("User:alice", "refund-2", hash_)
        assert approved.state == "done", approved.entry
        assert approved.entry["approved_by"] == "User:alice"
        assert (endpoint.requests["refund-2"], endpoint.effects["refund-2"]) == (1, 1)
    finally:
        for client in clients.values():
            client.close()
        running.stop()
        endpoint.close()


def approve_once_writable(client: ActionsClient, key: str, hash_: str) -> Any:
    """Alice's approval, by `client`, produced as soon as the broker's authorizer lets it."""

    def attempt() -> Any:
        try:
            return client.approve("User:alice", key, hash_, wait_s=15)
        except ActionsClientError as exc:
            if "authorization failed" not in str(exc).lower():
                raise
            return None

    return wait_until(attempt, TIMEOUT_S, "the broker lets the new grant write")


def test_an_approved_call_killed_mid_call_is_resumed_once_on_restart(
    secured: BrokerProcess, tmp_path: Path
) -> None:
    """The endpoint holds its answer to the approved call; the executor is killed with
    SIGKILL meanwhile. The approval is read again after the restart and the call resumed
    with the same key: the effect once, `done`, approved by alice."""
    endpoint = CountingEndpoint(honours_key=True)
    endpoint.hold.add("refund-held")
    tools = tools_file(tmp_path, endpoint.url, approvers=True)
    grant(secured)
    running = secured_executor(secured, tools, tmp_path).start()
    copilot = ActionsClient(secured.bootstrap, running.url, login(secured, "copilot"))
    alice = ActionsClient(secured.bootstrap, running.url, login(secured, "alice"))
    arguments = {"account": "a1", "amount": 700}
    try:
        waiting = copilot.call("refund", arguments, "refund-held")
        assert waiting.state == "awaiting-approval"
        # Produced without waiting for its outcome: the executor is killed mid call.
        produce_and_wait(
            alice._producer,
            "copilot.approvals.alice",
            b"refund-held",
            json.dumps({"request_hash": waiting.entry["request_hash"]}).encode(),
            TIMEOUT_S,
            ActionsClientError,
            "the approval",
        )
        assert endpoint.arrived.wait(TIMEOUT_S), running.log_tail()
        running.kill9()
        endpoint.release.set()  # the held answer finds its caller gone

        running.start()

        def done() -> dict[str, Any] | None:
            entry = (ledger_read(running.url, "refund-held") or {}).get("entry") or {}
            return entry if entry.get("state") == "done" else None

        entry = wait_until(done, TIMEOUT_S, "the approved call is done after the restart")
        assert entry["approved_by"] == "User:alice"
        assert (endpoint.requests["refund-held"], endpoint.effects["refund-held"]) == (2, 1)
    finally:
        copilot.close()
        alice.close()
        running.stop()
        endpoint.close()


def test_keys_past_the_retention_are_tombstoned_and_then_new_calls(tmp_path: Path) -> None:
    broker = BrokerProcess(tmp_path / "broker", settings=FAST_JOINS).start()
    endpoint = CountingEndpoint(honours_key=True)
    tools = tools_file(tmp_path, endpoint.url, approvers=False)
    running = ExecutorProcess(
        broker.bootstrap,
        tools,
        tmp_path,
        tmp_path / "executor.log",
        extra_args=["--key-retention-ms", "1500"],
    ).start()
    client = ActionsClient(broker.bootstrap, running.url)
    keys = [f"refund-{n}" for n in range(3)]
    try:
        first = {key: client.call("refund", {"amount": 10}, key) for key in keys}
        assert {key: outcome.state for key, outcome in first.items()} == dict.fromkeys(keys, "done")
        # Legacy approval (no approvers named): the request's approved_by still approves.
        legacy = client.call("escalate", {"ticket": "t1"}, "escalate-legacy", approved_by="bob")
        assert legacy.state == "done" and legacy.entry["approved_by"] == "bob"

        def index_holds_none() -> bool:
            held = [k for k in [*keys, "escalate-legacy"] if ledger_read(running.url, k)]
            return not held

        wait_until(index_holds_none, TIMEOUT_S, "the expired keys leave the executor's index")
        entries = ledger_entries(broker.bootstrap, {})
        assert all(entries[("call", key)] is None for key in keys)  # tombstones

        # Past the horizon the same request is a new call: the endpoint is asked again.
        second = client.call("refund", {"amount": 10}, keys[0])
        assert second.state == "done"
        assert endpoint.requests[keys[0]] == 2
        assert endpoint.requests[keys[1]] == 1
    finally:
        client.close()
        running.stop()
        endpoint.close()
        broker.stop()


def ledger_read(
    url: str, key: str, request_hash: str | None = None, approver: str | None = None
) -> dict[str, Any] | None:
    """The executor's ledger read (its index), None for a 404."""
    query = urllib.parse.urlencode(
        {"key": key, "request_hash": request_hash or "", "approver": approver or ""}
    )
    try:
        with urllib.request.urlopen(f"{url}/v1/ledger?{query}", timeout=10) as response:
            found: dict[str, Any] = json.loads(response.read())
            return found
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def ledger_entries(bootstrap: str, security: dict[str, str]) -> dict[tuple[str, ...], Any]:
    """The ledger topic from its start (committed records): the newest value per key, None
    for a tombstone."""
    return {
        tuple(json.loads(key)): None if value is None else json.loads(value)
        for key, value in read_all(bootstrap, security, ledger.LEDGER_TOPIC)
    }


def evaluations(broker: BrokerProcess, key: str) -> list[dict[str, Any]]:
    records = read_all(broker.bootstrap, login(broker, "admin"), ledger.EVALUATIONS_TOPIC)
    return [json.loads(value) for k, value in records if k == key.encode() and value]


def read_all(
    bootstrap: str, security: dict[str, str], topic: str
) -> list[tuple[bytes, bytes | None]]:
    reader = Consumer(
        {
            "bootstrap.servers": bootstrap,
            **security,
            "group.id": "test-reader",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "fetch.wait.max.ms": 10,  # the end reported at once, not after a 500-ms empty fetch
        }
    )
    try:
        partition = TopicPartition(topic, 0)
        _, end = reader.get_watermark_offsets(partition, timeout=TIMEOUT_S, cached=False)
        reader.assign([TopicPartition(topic, 0, 0)])
        found: list[tuple[bytes, bytes | None]] = []
        at = 0
        while at < end:
            message = reader.poll(TIMEOUT_S)
            assert message is not None, f"{topic} stopped at {at} of {end}"
            offset = message.offset()
            assert offset is not None
            if message.error() is not None:
                at = max(at, offset)
                continue
            at = offset + 1
            found.append((message.key() or b"", message.value()))
        return found
    finally:
        reader.close()
