"""The simulated clients of the group simulation: what a Kafka consumer remembers and how
it reacts to each answer.

Rules of this file: a client only updates its own memory here; it never calls the
machine (answers may arrive while the machine is in the middle of a call). It reacts only
to the answer of its latest JoinGroup or SyncGroup: an answer to a request it has replaced
is recorded and checked, not acted on.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from contextplane.coordinators.group_state import JoinRequest, Protocols, SyncRequest
from contextplane.protocol.error_codes import ErrorCode

TOPICS = ("orders", "payments", "audit")
# Protocol lists a client may offer, in its order of preference.
PROTOCOL_CHOICES: tuple[tuple[str, ...], ...] = (
    ("range", "roundrobin"),
    ("roundrobin", "range"),
    ("range",),
    ("roundrobin",),
    ("sticky",),
)
# What a client offers after a restart that follows INCONSISTENT_GROUP_PROTOCOL.
FALLBACK_PROTOCOLS = ("range", "roundrobin", "sticky")
VALID_SESSION_MS = 10_000
SESSION_CHOICES_MS = (6_000, VALID_SESSION_MS, 30_000)
REBALANCE_CHOICES_MS = (6_000, 20_000, 60_000)


def subscription(topics: tuple[str, ...]) -> bytes:
    """A ConsumerProtocolSubscription v0 for `topics`."""
    out = struct.pack(">hi", 0, len(topics))
    for topic in topics:
        raw = topic.encode()
        out += struct.pack(">h", len(raw)) + raw
    return out + struct.pack(">i", -1)


def protocols(names: tuple[str, ...], topics: tuple[str, ...]) -> Protocols:
    metadata = subscription(topics)
    return [(name, metadata) for name in names]


@dataclass(eq=False)
class Request:
    """A JoinGroup or SyncGroup handed to the machine, and every answer it got."""

    number: int
    kind: str
    client: Client
    request: JoinRequest | SyncRequest
    answers: list[dict[str, Any]] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.kind}#{self.number}({self.client.name})"


@dataclass(eq=False)
class Client:
    name: str
    group_id: str
    instance_id: str | None
    api_version: int
    protocol_type: str
    protocols: Protocols
    session_ms: int
    rebalance_ms: int
    member_id: str = ""
    generation: int = -1
    protocol_name: str | None = None
    leader: bool = False
    skip_assignment: bool = False
    members: list[str] = field(default_factory=list)
    needs_join: bool = True
    needs_sync: bool = False
    synced_generation: int = -1
    # FENCED_INSTANCE_ID is fatal for a Kafka client: this process is done.
    fenced: bool = False
    # The client closed (left the group, or gave up).
    stopped: bool = False
    last_join: Request | None = None
    last_sync: Request | None = None
    # When a well-behaved client sends its next heartbeat (a third of its session on).
    next_heartbeat_ms: int = 0

    @property
    def active(self) -> bool:
        return not self.fenced and not self.stopped

    def waiting(self) -> bool:
        return any(r is not None and not r.answers for r in (self.last_join, self.last_sync))

    def forget_membership(self) -> None:
        self.member_id = ""
        self.generation = -1
        self.leader = False
        self.needs_join = True
        self.needs_sync = False

    def restart(self) -> None:
        """A new process: static members keep their instance id, nothing else."""
        self.forget_membership()
        self.fenced = False
        self.stopped = False

    # -- reactions ----------------------------------------------------------------------

    def on_join_answer(self, response: dict[str, Any]) -> None:
        code = response["error_code"]
        if code is ErrorCode.none:
            self.member_id = response["member_id"]
            self.generation = response["generation_id"]
            self.protocol_name = response["protocol_name"]
            self.leader = response["leader"] == self.member_id
            self.skip_assignment = response["skip_assignment"]
            self.members = [m["member_id"] for m in response["members"]]
            self.needs_join = False
            self.needs_sync = True
        elif code is ErrorCode.member_id_required:
            self.member_id = response["member_id"]
            self.needs_join = True
        elif code is ErrorCode.fenced_instance_id:
            self.fenced = True
        elif code is ErrorCode.unknown_member_id:
            self.forget_membership()
        elif code is ErrorCode.group_max_size_reached:
            self.forget_membership()
            self.stopped = True
        elif code is ErrorCode.invalid_session_timeout:
            self.session_ms = VALID_SESSION_MS
        elif code is ErrorCode.inconsistent_group_protocol:
            # Fatal for a Kafka client; if it is started again it offers every protocol.
            self.stopped = True
            self.protocol_type = "consumer"
            self.protocols = protocols(FALLBACK_PROTOCOLS, TOPICS)
        else:
            self.needs_join = True

    def on_sync_answer(self, request: SyncRequest, response: dict[str, Any]) -> None:
        code = response["error_code"]
        self.needs_sync = False
        if code is ErrorCode.none:
            self.synced_generation = request.generation_id
        elif code is ErrorCode.fenced_instance_id:
            self.fenced = True
        elif code is ErrorCode.unknown_member_id:
            self.forget_membership()
        else:
            self.needs_join = True

    def on_heartbeat_answer(self, code: ErrorCode) -> None:
        if code is ErrorCode.fenced_instance_id:
            self.fenced = True
        elif code is ErrorCode.unknown_member_id:
            self.forget_membership()
        elif code is not ErrorCode.none:
            self.needs_join = True
