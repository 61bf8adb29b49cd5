"""The executor's pure parts: the tools file (each error names its field), Cedar
evaluation with awaiting-approval, the request reader, the ledger index's ordering and
bound."""

from __future__ import annotations

import json

import pytest

from contextplane.services.actions import ledger
from contextplane.services.actions.ledger import IndexFullError, LedgerIndex
from contextplane.services.actions.policy import evaluate
from contextplane.services.actions.requests import Refused, Request, read_request
from contextplane.services.actions.tools import ToolsFileError, parse_tools

TOOL = """
[tools.refund]
endpoint = "http://127.0.0.1:9/refund"
idempotent = true
policy = 'permit(principal, action, resource) when { context.arguments.amount <= 100 };'
approval_policy = 'permit(principal, action, resource) when { context.arguments.amount <= 1000 };'
"""


def test_a_tools_file_is_read() -> None:
    tools = parse_tools(TOOL)
    refund = tools["refund"]
    assert (refund.idempotent, refund.timeout_ms, refund.context) == (True, 10_000, None)
    assert refund.policy_version.startswith("sha256:")


@pytest.mark.parametrize(
    ("text", "names"),
    [
        (TOOL.replace("http://", "ftp://"), "tools.refund.endpoint"),
        (TOOL.replace("idempotent = true", ""), "tools.refund.idempotent: required"),
        (TOOL.replace("idempotent = true", 'idempotent = "yes"'), "tools.refund.idempotent"),
        (TOOL + "timeout_ms = 0\n", "tools.refund.timeout_ms"),
        (TOOL.replace("<= 100 }", "<= }"), "tools.refund.policy: not a Cedar policy"),
        (TOOL + "retries = 3\n", "tools.refund: unknown key 'retries'"),
        (TOOL + "[tools.refund.context]\nview = 'account'\n", "tools.refund.context.entity"),
        ("[tools]\n", "no [tools.NAME] table"),
        ("[tools.refund\n", "line 1"),
    ],
)
def test_a_bad_tools_file_names_the_field(text: str, names: str) -> None:
    with pytest.raises(ToolsFileError, match=names.replace(".", r"\.").replace("[", r"\[")):
        parse_tools(text)


@pytest.mark.parametrize(
    ("amount", "approved", "decision"),
    [
        (50, False, "allow"),
        (500, False, "awaiting-approval"),
        (5000, False, "deny"),
        (50.5, False, "deny"),  # a decimal compared as a long: an evaluation error denies
    ],
)
def test_cedar_decides(amount: float, approved: bool, decision: str) -> None:
    refund = parse_tools(TOOL)["refund"]
    got = evaluate(
        refund.policy,
        refund.approval_policy,
        tool="refund",
        caller="copilot",
        arguments={"amount": amount, "note": None},
        entity=None,
        approved=approved,
    )
    assert got.decision == decision
    assert got.request["resource"] == 'Tool::"refund"'
    assert "note" not in got.request["context"]["arguments"]  # no nulls in Cedar
    assert (len(got.errors) > 0) == isinstance(amount, float)


def test_a_request_is_read_and_checked() -> None:
    tools = parse_tools(TOOL)
    value = {"decision_id": "d1", "tool": "refund", "arguments": {"amount": 5}}
    got = read_request(b"k1", json.dumps(value).encode(), tools)
    assert isinstance(got, Request)
    assert got.hash == ledger.request_hash("refund", {"amount": 5})
    assert got.caller == "copilot" and got.context_offsets is None
    fenced = {**value, "context_offsets": {"crm.accounts": {"0": 7}}}
    got = read_request(b"k1", json.dumps(fenced).encode(), tools)
    assert isinstance(got, Request) and got.context_offsets == {("crm.accounts", 0): 7}
    refusals = {
        "no key": (None, value),
        "unknown tool": (b"k", {**value, "tool": "wire"}),
        "hash": (b"k", {**value, "request_hash": "sha256:00"}),
        "arguments": (b"k", {**value, "arguments": [1]}),
        "partition": (b"k", {**value, "context_offsets": {"t": {"²": 1}}}),
    }
    for why, (key, body) in refusals.items():
        refused = read_request(key, json.dumps(body).encode(), tools)
        assert isinstance(refused, Refused), why
    assert isinstance(read_request(b"k", b"not json", tools), Refused)
    assert isinstance(read_request(b"k", b"x" * (ledger.REQUEST_BYTES_MAX + 1), tools), Refused)


def test_the_hash_ignores_key_order() -> None:
    assert ledger.request_hash("t", {"a": 1, "b": 2}) == ledger.request_hash("t", {"b": 2, "a": 1})
    assert ledger.request_hash("t", {"a": 1}) != ledger.request_hash("t", {"a": 2})


def test_the_index_keeps_the_newest_entry_of_each_key() -> None:
    index = LedgerIndex()
    key = ledger.call_key("k")
    index.apply(key, ledger.encode_entry({"state": "done"}), 5)
    index.apply(key, ledger.encode_entry({"state": "started"}), 3)  # older: ignored
    assert index.get(key) == {"state": "done"}
    index.apply(key, None, 6)  # a tombstone removes it
    assert index.get(key) is None and len(index) == 0
    assert ledger.decode_key(ledger.encode_key(("conflict", "k", "h"))) == ("conflict", "k", "h")
    assert ledger.decode_key(b"[1]") is None


def test_the_index_is_bounded() -> None:
    index = LedgerIndex(bytes_max=1000)
    with pytest.raises(IndexFullError):
        for n in range(100):
            index.apply(ledger.call_key(f"k{n}"), ledger.encode_entry({"n": n}), n)


def test_the_index_counts_its_entries_by_kind_and_calls_by_state() -> None:
    """What the executor's /metrics reports: a state or kind the executor never writes
    (anyone may write the ledger topic) is `other`, an unhashable one too."""
    index = LedgerIndex()
    index.apply(ledger.call_key("a"), ledger.encode_entry({"state": "started"}), 1)
    index.apply(ledger.call_key("a"), ledger.encode_entry({"state": "done"}), 2)
    index.apply(ledger.call_key("b"), ledger.encode_entry({"state": ["x"]}), 3)
    index.apply(ledger.call_key("c"), ledger.encode_entry({"state": "awaiting-approval"}), 4)
    index.apply(ledger.call_key("c"), None, 5)
    index.apply(ledger.conflict_key("a", "h"), ledger.encode_entry({"state": "conflict"}), 6)
    index.apply(("made-up",), ledger.encode_entry({}), 7)
    assert {k: v for k, v in index.kinds.items() if v} == {"call": 2, "conflict": 1, "other": 1}
    assert {s: n for s, n in index.states.items() if n} == {"done": 1, "other": 1}
    assert index.bytes_used > 0 and index.bytes_max == ledger.INDEX_BYTES_MAX
