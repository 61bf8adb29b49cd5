"""Share sessions and the connections that opened them: a session closes with its
connection, and the connection's record of it goes when the session does (a client
opening and closing sessions on one connection left one entry per session ever opened)."""

from __future__ import annotations

from contextplane.broker.context import ConnectionInfo
from contextplane.coordinators.share_sessions import ShareSessions
from contextplane.protocol.error_codes import ErrorCode


def _connection() -> ConnectionInfo:
    return ConnectionInfo(peer="127.0.0.1:1")


def test_a_connection_keeps_only_its_open_sessions() -> None:
    sessions = ShareSessions(max_sessions=10)
    lost: list[tuple[str, str]] = []
    one, other = _connection(), _connection()
    for index in range(1_000):  # opened and closed, each a new member id
        key = ("g", f"m{index}")
        assert sessions.open(key, set(), one, lambda k=key: lost.append(k)) == ErrorCode.none
        assert sessions.close(key) is not None
    assert one.on_lost == {}
    # Open ones are there until their connection goes, which closes them.
    sessions.open(("g", "a"), set(), one, lambda: lost.append(("g", "a")))
    sessions.open(("g", "b"), set(), one, lambda: lost.append(("g", "b")))
    assert len(one.on_lost) == 2
    # A session opened again on another connection leaves the first one's record.
    sessions.open(("g", "b"), set(), other, lambda: lost.append(("g", "b2")))
    assert len(one.on_lost) == 1 and len(other.on_lost) == 1
    for hook in list(one.on_lost.values()):
        hook()
    assert lost == [("g", "a")]
    # Past the limit: nothing opened, nothing recorded.
    full = ShareSessions(max_sessions=1)
    full.open(("g", "a"), set(), one, lambda: None)
    assert full.open(("g", "z"), set(), other, lambda: None) == (
        ErrorCode.share_session_limit_reached
    )
    assert len(other.on_lost) == 1  # b's, from before
