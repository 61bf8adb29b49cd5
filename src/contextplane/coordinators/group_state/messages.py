"""What goes into the machine and what comes out: requests, responses and waiters.

Rules of this file:

* Requests are plain data that the broker's handlers build from decoded, bounded wire
  requests; the machine never sees the wire.
* Responses are dicts of the Kafka response's field values; the handler turns them into
  the version-specific entity. Each API's error response has one shape, built here.
* A `Waiter` takes exactly one response. A request that may have to wait (JoinGroup,
  SyncGroup) hands one to the machine, which answers it exactly once: at once, or later
  through `member.complete_join` / `member.complete_sync`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from contextplane.protocol.error_codes import ErrorCode

UNKNOWN_MEMBER_ID = ""
CONSUMER_PROTOCOL_TYPE = "consumer"
GROUP_TYPE = "classic"

Waiter = Callable[[dict[str, Any]], None]
# (protocol name, metadata) in the member's order of preference.
Protocols = list[tuple[str, bytes]]


@dataclass(slots=True)
class JoinRequest:
    group_id: str
    member_id: str
    protocol_type: str
    protocols: Protocols
    session_timeout_ms: int
    rebalance_timeout_ms: int
    group_instance_id: str | None = None
    client_id: str = ""
    client_host: str = ""
    api_version: int = 9
    reason: str | None = None


@dataclass(slots=True)
class SyncRequest:
    group_id: str
    generation_id: int
    member_id: str
    assignments: dict[str, bytes]
    group_instance_id: str | None = None
    protocol_type: str | None = None
    protocol_name: str | None = None


def join_error(member_id: str, code: ErrorCode) -> dict[str, Any]:
    return {
        "error_code": code,
        "generation_id": -1,
        "protocol_type": None,
        "protocol_name": None,
        "leader": UNKNOWN_MEMBER_ID,
        "skip_assignment": False,
        "member_id": member_id,
        "members": [],
    }


def sync_error(code: ErrorCode) -> dict[str, Any]:
    return {"error_code": code, "protocol_type": None, "protocol_name": None, "assignment": b""}


def leave_entry(member_id: str, instance_id: str | None, code: ErrorCode) -> dict[str, Any]:
    """One member's entry in a LeaveGroup response."""
    return {"member_id": member_id, "group_instance_id": instance_id, "error_code": code}
