"""The README's tools files ("## Tool executor") load as the executor loads them, and the
one that reads an account from the context service decides as its text says: gold
accounts' refunds up to 100 allowed, others held for approval, a missing account held
rather than denied (its `has` guard), past 1,000 denied."""

from __future__ import annotations

import re

from contextplane.services.actions.policy import (
    ALLOW,
    AWAITING_APPROVAL,
    DENY,
    evaluate,
)
from contextplane.services.actions.tools import ContextRead, Tool, parse_tools
from tests.support.readme import section

HEADING = "## Tool executor"


def readme_tools() -> list[dict[str, Tool]]:
    blocks = re.findall(r"^```toml\n(.*?)^```$", section(HEADING), re.M | re.S)
    return [parse_tools(block, f"README block {n}") for n, block in enumerate(blocks)]


def decision(tool: Tool, amount: int, entity: dict[str, object] | None) -> str:
    return evaluate(
        tool.policy,
        tool.approval_policy,
        tool=tool.name,
        caller="copilot",
        arguments={"account_id": "a1", "amount": amount},
        entity=entity,
        approved=False,
    ).decision


def test_readme_tools_files_load() -> None:
    (approvals, with_context) = readme_tools()
    assert approvals["refund"].approvers == ("User:lead",)
    assert with_context["refund"].context == ContextRead("account", ("account_id",))


def test_readme_context_policy_decides_as_described() -> None:
    refund = readme_tools()[1]["refund"]
    gold = {"profile": {"tier": "gold"}}
    assert decision(refund, 40, gold) == ALLOW
    assert decision(refund, 101, gold) == AWAITING_APPROVAL
    assert decision(refund, 40, {"profile": {"tier": "standard"}}) == AWAITING_APPROVAL
    assert decision(refund, 40, None) == AWAITING_APPROVAL
    assert decision(refund, 5000, gold) == DENY
