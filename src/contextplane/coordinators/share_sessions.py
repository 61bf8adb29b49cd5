"""Share sessions (KIP-932's ShareFetch sessions), pure.

A share consumer opens a session on a broker with a ShareFetch at epoch 0 naming the
partitions it fetches; each later ShareFetch or ShareAcknowledge carries the next epoch
(1, 2, ...) and may add partitions or forget some; epoch -1 closes it. The sessions are
kept per (group, member) and bounded by `group.share.max.share.sessions`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from contextplane.protocol.error_codes import ErrorCode

INITIAL_EPOCH = 0
FINAL_EPOCH = -1

TopicPartition = tuple[str, int]
SessionKey = tuple[str, str]  # group id, member id


@dataclass(slots=True)
class ShareSession:
    next_epoch: int
    partitions: set[TopicPartition] = field(default_factory=set)
    owner: object = None  # the connection that opened it: it closes with it


class ShareSessions:
    def __init__(self, max_sessions: int) -> None:
        self.max_sessions = max_sessions
        self.sessions: dict[SessionKey, ShareSession] = {}

    def open(
        self, key: SessionKey, partitions: set[TopicPartition], owner: object = None
    ) -> ErrorCode:
        """Epoch 0: a new session, replacing the member's old one."""
        if key not in self.sessions and len(self.sessions) >= self.max_sessions:
            return ErrorCode.share_session_limit_reached
        self.sessions[key] = ShareSession(INITIAL_EPOCH + 1, set(partitions), owner)
        return ErrorCode.none

    def advance(self, key: SessionKey, epoch: int) -> tuple[ErrorCode, ShareSession | None]:
        """A request at `epoch` > 0 in an open session: it must be the next epoch."""
        session = self.sessions.get(key)
        if session is None:
            return ErrorCode.share_session_not_found, None
        if epoch != session.next_epoch:
            return ErrorCode.invalid_share_session_epoch, None
        # Kafka's epochs wrap to 1 past int32's maximum, never back to 0.
        session.next_epoch = 1 if epoch == 2**31 - 1 else epoch + 1
        return ErrorCode.none, session

    def check_final(self, key: SessionKey) -> ErrorCode:
        return ErrorCode.none if key in self.sessions else ErrorCode.share_session_not_found

    def close(self, key: SessionKey) -> ShareSession | None:
        return self.sessions.pop(key, None)
