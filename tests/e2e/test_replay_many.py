"""A replay of hundreds of decisions (issue #15 §3 and §7): 200 decisions recorded live
through the SDK (a context read and, for a gold account up to 100, a refund through the
executor), the accounts changed afterwards, then the range replayed twice. The same
function: every decision identical, and the tool endpoint never called (its count and
`copilot.tool-calls`' end unchanged). A changed policy (the limit lowered to 30): the
diff lists exactly the decisions whose refund it refuses, and still calls nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Producer

from contextplane.cli.main import main
from contextplane.services.actions.ledger import REQUESTS_TOPIC
from tests.e2e.test_replay import FUNCTIONS, TOOLS, end_offset, running_plane
from tests.support import replay_copilot
from tests.support.actions import CountingEndpoint

TIMEOUT_S = 60
DECISIONS = 200
TIERS = {"a1": "gold", "a2": "silver", "a3": "gold", "a4": "gold", "a5": "silver"}
AMOUNTS = (10, 25, 40, 80, 150, 95, 5)


def request(n: int) -> dict[str, Any]:
    account = f"a{n % len(TIERS) + 1}"
    return {"account_id": account, "amount": AMOUNTS[n % len(AMOUNTS)], "key": f"refund-{n}"}


def refunded(n: int, limit: int) -> bool:
    """What the rule decides for request n, with the tiers the decisions saw."""
    wanted = request(n)
    return TIERS[wanted["account_id"]] == "gold" and wanted["amount"] <= limit


def produce(producer: Producer, account: str, tier: str) -> tuple[int, int]:
    landed: list[tuple[int, int]] = []
    producer.produce(
        "crm.accounts",
        key=account.encode(),
        value=json.dumps({"name": account, "tier": tier}).encode(),
        on_delivery=lambda e, m: landed.append((m.partition(), m.offset())),
    )
    producer.flush(TIMEOUT_S)
    return landed[0]


@pytest.fixture(scope="module", name="plane")
def plane_fixture(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, str, str, CountingEndpoint, range]]:
    """The plane with 200 decisions recorded: (bootstrap, context url, ledger url, the
    endpoint, the decisions' offsets on partition 0)."""
    with running_plane(tmp_path_factory.mktemp("replay-many")) as plane:
        client, endpoint, decisions = plane.client, plane.endpoint, plane.decisions
        for account, tier in TIERS.items():
            at = produce(plane.producer, account, tier)
        client.get("account", "a5", min_offsets={("crm.accounts", at[0]): at[1]})
        landed = []
        for n in range(DECISIONS):
            with decisions.decision(f"d-{n}", input=request(n)) as decision:
                replay_copilot.decide(request(n), client, plane.tools, decision)
            assert decision.landed is not None and decision.landed[0] == 0
            landed.append(decision.landed[1])
        assert endpoint.effects == {f"refund-{n}": 1 for n in range(DECISIONS) if refunded(n, 100)}
        for account, tier in TIERS.items():  # every tier flipped after the decisions
            at = produce(plane.producer, account, "silver" if tier == "gold" else "gold")
        client.get("account", "a5", min_offsets={("crm.accounts", at[0]): at[1]})
        offsets = range(landed[0], landed[-1] + 1)
        yield plane.broker.bootstrap, plane.context.url, plane.executor.url, endpoint, offsets


def replay(
    plane: Any, function: str, run: str, capsys: pytest.CaptureFixture[str], *more: str
) -> Any:
    bootstrap, context_url, ledger_url, _, offsets = plane
    argv = ["replay", "--bootstrap-server", bootstrap, "--function", f"{FUNCTIONS}:{function}"]
    argv += ["--from-offset", str(offsets.start), "--to-offset", str(offsets.stop)]
    argv += ["--context-url", context_url, "--ledger-url", ledger_url]
    status = main([*argv, "--run", run, "--output", "json", *more])
    return status, json.loads(capsys.readouterr().out)


def test_a_replay_of_hundreds_of_decisions_calls_no_tool(
    plane: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    bootstrap, _, _, endpoint, _ = plane
    calls = sum(endpoint.requests.values())
    requests_end = end_offset(bootstrap, REQUESTS_TOPIC)

    status, same = replay(plane, "decide", "same", capsys)
    assert same["decisions"] == DECISIONS and same["differing"] == 0 and status == 0
    replayed_calls = [c for r in same["results"] for c in r["tool_calls"]["replay"]]
    assert len(replayed_calls) == sum(refunded(n, 100) for n in range(DECISIONS))
    assert {c["state"] for c in replayed_calls} == {"done"}  # the ledger's answers

    status, strict = replay(plane, "decide_strictly", "strict", capsys)
    assert status == 1 and strict["decisions"] == DECISIONS
    differing = {r["decision_id"] for r in strict["results"] if r["differs"]}
    assert differing == {
        f"d-{n}" for n in range(DECISIONS) if refunded(n, 100) and not refunded(n, 30)
    }
    assert strict["differing"] == len(differing) > 0

    assert sum(endpoint.requests.values()) == calls
    assert end_offset(bootstrap, REQUESTS_TOPIC) == requests_end


def test_a_changed_tool_policy_lists_exactly_the_calls_it_decides_otherwise(
    plane: Any, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """The copilot unchanged, the refund tool's Cedar policy lowered to 30 (`--tools`):
    each recorded evaluation decided again, the refunds above 30 denied, nothing called."""
    bootstrap, _, _, endpoint, _ = plane
    calls = sum(endpoint.requests.values())
    tools = tmp_path / "changed-tools.toml"
    tools.write_text(
        TOOLS.format(url="http://127.0.0.1:9/unused").replace(
            'resource == Tool::"refund");',
            'resource == Tool::"refund") when { context.arguments.amount <= 30 };',
        )
    )
    status, report = replay(plane, "decide", "policy", capsys, "--tools", str(tools))
    assert status == 1 and report["decisions"] == DECISIONS
    changed = {f"d-{n}" for n in range(DECISIONS) if refunded(n, 100) and not refunded(n, 30)}
    results = {r["decision_id"]: r for r in report["results"]}
    assert {d for d, r in results.items() if r["differs"]} == changed
    for decision_id in changed:
        [call] = results[decision_id]["tool_calls"]["replay"]
        assert call["state"] == "denied" and results[decision_id]["tool_calls"]["differ"]
        assert call["policy"]["recorded"] == "allow" and call["policy"]["replayed"] == "deny"
    kept = [results[f"d-{n}"] for n in range(DECISIONS) if refunded(n, 30)]
    assert kept and all(r["tool_calls"]["replay"][0]["state"] == "done" for r in kept)
    assert sum(endpoint.requests.values()) == calls
