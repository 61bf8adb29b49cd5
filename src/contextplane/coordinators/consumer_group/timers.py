"""The consumer group machine's timers, as data (`ConsumerGroupMachine.fire_due_timers`
fences the member each one names when it fires)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SessionExpiry:
    group_id: str
    member_id: str

    @property
    def key(self) -> tuple[str, str, str]:
        return ("consumer-session", self.group_id, self.member_id)


@dataclass(frozen=True, slots=True)
class RevocationDeadline:
    group_id: str
    member_id: str

    @property
    def key(self) -> tuple[str, str, str]:
        return ("consumer-revocation", self.group_id, self.member_id)


@dataclass(frozen=True, slots=True)
class ClassicDeadline:
    """A classic member must rejoin (`kind` "join") after a REBALANCE_IN_PROGRESS, or
    sync after its JoinGroup ("sync"), within its rebalance timeout."""

    group_id: str
    member_id: str
    kind: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (f"consumer-classic-{self.kind}", self.group_id, self.member_id)


ConsumerTimer = SessionExpiry | RevocationDeadline | ClassicDeadline
