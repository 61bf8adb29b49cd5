"""Share sessions (KIP-932's ShareFetch sessions), pure.

A share consumer opens a session on a broker with a ShareFetch at epoch 0 naming the
partitions it fetches; each later ShareFetch or ShareAcknowledge carries the next epoch
(1, 2, ...) and may add partitions or forget some; epoch -1 closes it. The sessions are
kept per (group, member) and bounded by `group.share.max.share.sessions` (Kafka 4.4's
ShareSessionCache: a new session past it is SHARE_SESSION_LIMIT_REACHED, none evicted).
A session closes with the connection that opened it: the connection holds a hook for
each session open on it, dropped when the session closes or moves to another connection.
"""

from __future__ import annotations

from collections.abc import Callable
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
        self,
        key: SessionKey,
        partitions: set[TopicPartition],
        owner: object = None,
        on_lost: Callable[[], None] | None = None,
    ) -> ErrorCode:
        """Epoch 0: a new session, replacing the member's old one; `on_lost` runs if the
        `owner` connection goes while it is open."""
        if key not in self.sessions and len(self.sessions) >= self.max_sessions:
            return ErrorCode.share_session_limit_reached
        self.close(key)
        self.sessions[key] = ShareSession(INITIAL_EPOCH + 1, set(partitions), owner)
        hooks = _hooks(owner)
        if hooks is not None and on_lost is not None:
            hooks[(_HOOK, key)] = on_lost
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
        session = self.sessions.pop(key, None)
        if session is not None and (hooks := _hooks(session.owner)) is not None:
            hooks.pop((_HOOK, key), None)
        return session


_HOOK = "share-session"


def _hooks(owner: object) -> dict[object, Callable[[], None]] | None:
    """The owner connection's hooks run when it goes (`ConnectionInfo.on_lost`)."""
    hooks = getattr(owner, "on_lost", None)
    return hooks if isinstance(hooks, dict) else None
