"""A trace's tree: one link per thing a decision recorded, found or `missing` with why."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# What a link shows of a recorded position it cannot follow, at most.
LINK_CHARS_MAX = 200


@dataclass
class Link:
    # decision, read, changelog-record, source-record, read-receipt, tool-call, request,
    # ledger-entry, policy-evaluation, write-back
    kind: str
    label: str
    where: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    missing: str | None = None  # why the link could not be followed
    children: list[Link] = field(default_factory=list)

    def document(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "label": self.label,
            "status": "found" if self.missing is None else "missing",
            "where": self.where,
            "detail": self.detail,
            "why": self.missing,
            "children": [child.document() for child in self.children],
        }


def place(topic: str, partition: int, offset: int) -> str:
    return f"{topic}[{partition}]@{offset}"


def cut(text: str) -> str:
    """A hostile record's text shown, at most LINK_CHARS_MAX characters of it."""
    return text if len(text) <= LINK_CHARS_MAX else text[: LINK_CHARS_MAX - 3] + "..."
