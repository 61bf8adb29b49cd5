"""The support-copilot scenario's data, pure: the topics, the sample CRM, entitlement,
incident and ticket events (deterministic), the views file and the tools file with
their Cedar policies. Refunds up to 100 are auto-approved for gold accounts; any other
refund up to 1,000 waits for a human approval (the approver's, when the tools file names
one); past that it is denied."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Every topic the demo produces to or its context view reads (one partition each: the
# records of one account stay in order whatever their key).
SOURCE_TOPICS = ("crm.accounts", "billing.entitlements", "ops.incidents", "support.tickets")
REPLIES_TOPIC = "support.replies"
TOPICS = (*SOURCE_TOPICS, REPLIES_TOPIC)
VIEW = "account"
AUTO_APPROVED_MAX = 100
APPROVAL_MAX = 1000


@dataclass(frozen=True)
class Event:
    topic: str
    key: str
    value: dict[str, Any]


ACCOUNTS = {
    "acme": {"name": "Acme Corp", "tier": "gold"},
    "globex": {"name": "Globex", "tier": "gold"},
    "initech": {"name": "Initech", "tier": "standard"},
    "umbrella": {"name": "Umbrella", "tier": "standard"},
}
ENTITLEMENTS = {
    "acme": {"plan": "enterprise", "support": "priority"},
    "globex": {"plan": "enterprise", "support": "priority"},
    "initech": {"plan": "team", "support": "standard"},
    "umbrella": {"plan": "team", "support": "standard"},
}
INCIDENTS = [
    {
        "incident_id": "INC-7",
        "account_id": "globex",
        "status": "open",
        "summary": "card payments failing since 09:00",
    },
]
TICKETS = [
    {
        "ticket_id": "T-1001",
        "account_id": "acme",
        "kind": "refund",
        "amount": 40,
        "text": "Charged twice for the March invoice",
    },
    {
        "ticket_id": "T-1002",
        "account_id": "acme",
        "kind": "refund",
        "amount": 250,
        "text": "Please refund the unused seats",
    },
    {
        "ticket_id": "T-1003",
        "account_id": "globex",
        "kind": "refund",
        "amount": 60,
        "text": "A failed payment was charged anyway",
    },
    {
        "ticket_id": "T-1004",
        "account_id": "initech",
        "kind": "refund",
        "amount": 30,
        "text": "Refund the late fee please",
    },
    {
        "ticket_id": "T-1005",
        "account_id": "umbrella",
        "kind": "refund",
        "amount": 5000,
        "text": "Refund the whole year",
    },
    {
        "ticket_id": "T-1006",
        "account_id": "initech",
        "kind": "question",
        "text": "How do I export invoices?",
    },
]


def background_events() -> list[Event]:
    """What the systems of record publish before the tickets come in."""
    events = [Event("crm.accounts", a, v) for a, v in ACCOUNTS.items()]
    events += [
        Event("billing.entitlements", a, {"account_id": a, **v}) for a, v in ENTITLEMENTS.items()
    ]
    events += [Event("ops.incidents", i["incident_id"], i) for i in INCIDENTS]
    return events


def ticket_event(ticket: dict[str, Any]) -> Event:
    return Event("support.tickets", ticket["ticket_id"], ticket)


VIEWS = """
[views.account]
freshness_target_ms = 60000

[[views.account.sources]]
topic = "crm.accounts"
field = "profile"

[[views.account.sources]]
topic = "billing.entitlements"
entity_id = "value.account_id"
field = "entitlement"

[[views.account.sources]]
topic = "ops.incidents"
entity_id = "value.account_id"
field = "incidents"
merge = "list"
max_items = 20

[[views.account.sources]]
topic = "support.tickets"
entity_id = "value.account_id"
field = "tickets"
merge = "list"
max_items = 50
"""


def tools_file(endpoint_url: str, approver: str | None = None) -> str:
    """The tools file, each tool POSTed to `endpoint_url`/NAME; with `approver`
    (`User:NAME`), a refund awaiting approval is released by that principal's approval."""
    approved = (
        f"""
permit(principal, action, resource == Tool::"refund")
when {{ context.approved && context.approver == "{approver}"
        && context.arguments.amount <= {APPROVAL_MAX} }};"""
        if approver
        else ""
    )
    approvers = f'approvers = ["{approver}"]' if approver else ""
    return f"""
[tools.refund]
endpoint = "{endpoint_url}/refund"
idempotent = true
{approvers}
policy = '''
permit(principal, action, resource == Tool::"refund")
when {{ context.entity has profile && context.entity.profile.tier == "gold"
        && context.arguments.amount <= {AUTO_APPROVED_MAX} }};{approved}
'''
approval_policy = '''
permit(principal, action, resource == Tool::"refund")
when {{ context.arguments.amount <= {APPROVAL_MAX} }};
'''
[tools.refund.context]
view = "{VIEW}"
entity = "account_id"

[tools.escalate]
endpoint = "{endpoint_url}/escalate"
idempotent = true
policy = 'permit(principal, action, resource == Tool::"escalate");'

[tools.update_ticket]
endpoint = "{endpoint_url}/update_ticket"
idempotent = true
policy = 'permit(principal, action, resource == Tool::"update_ticket");'
"""
