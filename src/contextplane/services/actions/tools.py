"""The tools file: each tool's HTTP endpoint, its Cedar policies, its time bound, whether
the endpoint honours an Idempotency-Key header, and the context entity its policy reads
(RFC 0006 §2).

TOML, read by the standard library's `tomllib`::

    [tools.refund]
    endpoint = "http://127.0.0.1:9000/refund"   # POSTed the arguments as JSON
    idempotent = true            # the endpoint performs a key's effect once
    timeout_ms = 5000
    policy = '''permit(principal, action, resource) when { context.arguments.amount <= 100 };'''
    approval_policy = '''permit(principal, action, resource);'''   # optional
    approvers = ["User:alice"]   # optional: who may approve, on copilot.approvals.NAME
    [tools.refund.context]       # optional: the entity the policy sees as context.entity
    view = "account"
    entity = "account_id"        # a dotted path into the call's arguments

Every error names the tool and field (`tools.refund.timeout_ms`).
"""

from __future__ import annotations

import hashlib
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contextplane.services.actions.policy import PolicyError, check_policy
from contextplane.services.toml_tables import named_tables, read_file

TOOLS_MAX = 100
TIMEOUT_MS_MAX = 120_000
POLICY_CHARS_MAX = 64 * 1024
# A tool name is part of ledger entries, Cedar entity ids and URLs.
_NAME = re.compile(r"[A-Za-z0-9._-]{1,100}")
_KEYS = {
    "endpoint",
    "idempotent",
    "timeout_ms",
    "policy",
    "approval_policy",
    "approvers",
    "context",
}
APPROVERS_MAX = 100
# An approver is a `User:` principal whose name fits in its approvals topic's name.
_APPROVER = re.compile(r"User:([A-Za-z0-9._-]{1,200})")
APPROVALS_TOPIC_PREFIX = "copilot.approvals."


class ToolsFileError(ValueError):
    """A tools file that cannot be used, with where and why."""


@dataclass(frozen=True)
class ContextRead:
    view: str
    entity_path: tuple[str, ...]  # into the call's arguments


@dataclass(frozen=True)
class Tool:
    name: str
    endpoint: str
    idempotent: bool
    timeout_ms: int
    policy: str
    approval_policy: str | None = None
    context: ContextRead | None = None
    # Principals whose approvals count; empty: the request's own `approved_by` approves.
    approvers: tuple[str, ...] = ()

    @property
    def policy_version(self) -> str:
        """The hash of the policy texts: which policies an evaluation applied."""
        text = self.policy + "\0" + (self.approval_policy or "")
        if self.approvers:  # who may approve is part of the policy (none: as before)
            text += "\0" + "\0".join(self.approvers)
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:16]


def load_tools(path: Path) -> dict[str, Tool]:
    return parse_tools(read_file(path, ToolsFileError), str(path))


def parse_tools(text: str, where: str = "tools file") -> dict[str, Tool]:
    tables = named_tables(text, where, "tools", "NAME", TOOLS_MAX, ToolsFileError)
    return {name: _tool(name, table) for name, table in tables.items()}


def _tool(name: str, table: Any) -> Tool:
    at = f"tools.{name}"
    if not _NAME.fullmatch(name):
        raise ToolsFileError(f"{at}: a name of letters, digits, '.', '_' and '-'")
    if not isinstance(table, dict):
        raise ToolsFileError(f"{at}: expected a table")
    unknown = set(table) - _KEYS
    if unknown:
        raise ToolsFileError(f"{at}: unknown key {sorted(unknown)[0]!r}")
    endpoint = _required(table, "endpoint", str, at)
    parsed = urllib.parse.urlsplit(endpoint)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ToolsFileError(f"{at}.endpoint: expected an http:// or https:// URL")
    idempotent = _required(table, "idempotent", bool, at)
    timeout_ms = table.get("timeout_ms", 10_000)
    if type(timeout_ms) is not int or not 1 <= timeout_ms <= TIMEOUT_MS_MAX:
        raise ToolsFileError(f"{at}.timeout_ms: expected 1 to {TIMEOUT_MS_MAX}")
    policy = _policy(table, "policy", at, required=True)
    assert policy is not None
    return Tool(
        name=name,
        endpoint=endpoint,
        idempotent=idempotent,
        timeout_ms=timeout_ms,
        policy=policy,
        approval_policy=_policy(table, "approval_policy", at, required=False),
        context=_context(table.get("context"), f"{at}.context"),
        approvers=_approvers(table.get("approvers", []), f"{at}.approvers"),
    )


def approvals_topic(principal: str) -> str:
    """The topic only `principal` may write (the cluster's ACLs see to it): a record there
    is that principal's approval. `principal` is one `_approvers` accepted."""
    found = _APPROVER.fullmatch(principal)
    assert found is not None, principal
    return APPROVALS_TOPIC_PREFIX + found.group(1)


def approvals_topics(tools: dict[str, Tool]) -> dict[str, str]:
    """Each approvals topic the tools name, with its principal."""
    return {
        approvals_topic(principal): principal
        for tool in tools.values()
        for principal in tool.approvers
    }


def _required(table: dict[str, Any], key: str, kind: type, at: str) -> Any:
    if key not in table:
        raise ToolsFileError(f"{at}.{key}: required")
    value = table[key]
    if type(value) is not kind:
        raise ToolsFileError(f"{at}.{key}: expected a {kind.__name__}")
    return value


def _policy(table: dict[str, Any], key: str, at: str, *, required: bool) -> str | None:
    if key not in table and not required:
        return None
    text = _required(table, key, str, at)
    if len(text) > POLICY_CHARS_MAX:
        raise ToolsFileError(f"{at}.{key}: longer than {POLICY_CHARS_MAX} characters")
    try:
        check_policy(text)
    except PolicyError as exc:
        raise ToolsFileError(f"{at}.{key}: {exc}") from None
    return text


def _approvers(value: Any, at: str) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > APPROVERS_MAX:
        raise ToolsFileError(f"{at}: expected a list of at most {APPROVERS_MAX} principals")
    for principal in value:
        if not isinstance(principal, str) or not _APPROVER.fullmatch(principal):
            raise ToolsFileError(
                f"{at}: {principal!r} is not User:NAME (NAME of letters, digits, '.', '_'"
                " and '-', at most 200)"
            )
    return tuple(dict.fromkeys(value))


def _context(table: Any, at: str) -> ContextRead | None:
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ToolsFileError(f"{at}: expected a table")
    unknown = set(table) - {"view", "entity"}
    if unknown:
        raise ToolsFileError(f"{at}: unknown key {sorted(unknown)[0]!r}")
    view = _required(table, "view", str, at)
    path = _required(table, "entity", str, at)
    parts = tuple(path.split("."))
    if not all(parts):
        raise ToolsFileError(f"{at}.entity: a dotted path into the arguments")
    return ContextRead(view, parts)
