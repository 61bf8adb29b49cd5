"""Approvals and key retention, the pure parts: the tools file's `approvers` (each error
names the field; each approver's topic), an approval record read or refused with why, the
ACLs that make an approvals topic its approver's alone, and which ledger keys the index
finds expired."""

from __future__ import annotations

import json

import pytest
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
)

from contextplane.services.actions import ledger
from contextplane.services.actions.approval_acls import approval_acl_problems
from contextplane.services.actions.approvals import Approval, read_approval
from contextplane.services.actions.ledger import LedgerIndex
from contextplane.services.actions.tools import ToolsFileError, approvals_topics, parse_tools

TOOL = """
[tools.refund]
endpoint = "http://127.0.0.1:9/refund"
idempotent = true
policy = 'permit(principal, action, resource) when { context.approved };'
"""


def test_approvers_name_their_topics_and_the_policy_version() -> None:
    plain = parse_tools(TOOL)["refund"]
    tools = parse_tools(TOOL + 'approvers = ["User:alice", "User:ops.bob-2"]\n')
    assert tools["refund"].approvers == ("User:alice", "User:ops.bob-2")
    assert plain.approvers == ()
    assert tools["refund"].policy_version != plain.policy_version
    assert approvals_topics(tools) == {
        "copilot.approvals.alice": "User:alice",
        "copilot.approvals.ops.bob-2": "User:ops.bob-2",
    }


@pytest.mark.parametrize(
    "approvers",
    ['"User:alice"', '["alice"]', '["Group:ops"]', '["User:a b"]', '["User:"]', "[1]"],
)
def test_a_bad_approver_names_the_field(approvers: str) -> None:
    with pytest.raises(ToolsFileError, match=r"tools\.refund\.approvers"):
        parse_tools(TOOL + f"approvers = {approvers}\n")


def test_an_approval_is_read_or_refused_with_why() -> None:
    good = json.dumps({"request_hash": "sha256:ab"}).encode()
    assert read_approval(b"k1", good) == Approval("k1", "sha256:ab")
    refused = {
        "no key": (None, good),
        "long key": (b"k" * (ledger.KEY_BYTES_MAX + 1), good),
        "not UTF-8": (b"\xff", good),
        "no value": (b"k1", None),
        "not JSON": (b"k1", b"{"),
        "nested": (b"k1", b"[" * 3000),
        "no hash": (b"k1", b"{}"),
        "hash not text": (b"k1", b'{"request_hash": 1}'),
    }
    for why, (key, value) in refused.items():
        assert isinstance(read_approval(key, value), str), why


def test_expired_keys_are_old_settled_and_of_owned_partitions() -> None:
    index = LedgerIndex()
    owned = {(ledger.REQUESTS_TOPIC, 0), ("copilot.approvals.alice", 0)}

    def add(key: tuple[str, ...], offset: int, **entry: object) -> None:
        index.apply(key, ledger.encode_entry(entry), offset)

    at = {"topic": ledger.REQUESTS_TOPIC, "partition": 0, "offset": 1}
    elsewhere = {**at, "partition": 1}
    add(ledger.call_key("old"), 1, state="done", at_ms=100, request=at)
    add(ledger.call_key("new"), 2, state="done", at_ms=5_000, request=at)
    add(ledger.call_key("under-way"), 3, state="started", at_ms=100, request=at)
    add(ledger.call_key("not-mine"), 4, state="done", at_ms=100, request=elsewhere)
    add(ledger.conflict_key("old", "h"), 5, state="conflict", at_ms=100, request=at)
    approval = {"topic": "copilot.approvals.alice", "partition": 0, "offset": 7}
    add(ledger.approval_key("x", "User:alice", "h"), 6, state="refused", at_ms=1, approval=approval)
    expired = index.expired(1_000, owned, 100)
    refused = ledger.approval_key("x", "User:alice", "h")
    wanted = [ledger.call_key("old"), ledger.conflict_key("old", "h"), refused]
    assert sorted(expired) == sorted(wanted)
    assert len(index.expired(1_000, owned, 2)) == 2


@pytest.mark.parametrize("retention_ms", [1_500, 86_400_000])
def test_an_approval_stops_releasing_a_margin_before_the_sweep(retention_ms: int) -> None:
    """An entry the sweep of another executor may tombstone any moment (it crosses the
    horizon) is no longer released by an approval: no approval races the sweep."""
    now = 10**12
    margin = min(ledger.APPROVAL_MARGIN_MS_MAX, retention_ms // 4)
    horizon = ledger.approval_horizon_ms(now, retention_ms)
    assert horizon == now - retention_ms + margin
    owned = {(ledger.REQUESTS_TOPIC, 0)}
    at = {"topic": ledger.REQUESTS_TOPIC, "partition": 0, "offset": 1}
    index = LedgerIndex()
    for n, age in enumerate([retention_ms - margin // 2, retention_ms - margin - 1]):
        entry = {"state": "awaiting-approval", "at_ms": now - age, "request": at}
        index.apply(ledger.call_key(f"age-{age}"), ledger.encode_entry(entry), n)
    near = {"state": "awaiting-approval", "at_ms": now - (retention_ms - margin // 2)}
    inside = {"state": "awaiting-approval", "at_ms": now - (retention_ms - margin - 1)}
    assert ledger.written_before(near, horizon)  # refused, though not yet swept:
    assert not index.expired(now - retention_ms, owned, 100)
    assert not ledger.written_before(inside, horizon)
    assert ledger.approval_horizon_ms(now, 0) is None  # keys kept for ever


def _binding(
    principal: str,
    operation: AclOperation,
    name: str = "copilot.approvals.alice",
    permission: AclPermissionType = AclPermissionType.ALLOW,
) -> AclBinding:
    literal = ResourcePatternType.LITERAL
    return AclBinding(ResourceType.TOPIC, name, literal, principal, "*", operation, permission)


def test_an_approvals_topic_is_the_approvers_alone() -> None:
    topic, alice = "copilot.approvals.alice", "User:alice"
    assert approval_acl_problems(topic, alice, [_binding(alice, AclOperation.WRITE)]) == []
    harmless = [
        _binding(alice, AclOperation.ALL),
        _binding("User:bob", AclOperation.READ),
        _binding("User:bob", AclOperation.WRITE, permission=AclPermissionType.DENY),
    ]
    assert approval_acl_problems(topic, alice, harmless) == []
    everyone = _binding("User:*", AclOperation.WRITE, name="*")
    problems = approval_acl_problems(topic, alice, [_binding(alice, AclOperation.WRITE), everyone])
    assert problems == [f"User:* may write {topic} (WRITE on literal '*'): only {alice} may"]
    assert "no ACL lets User:alice write" in approval_acl_problems(topic, alice, [])[0]
