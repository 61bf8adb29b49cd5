"""The zone router (cluster/zone_router.py) when a leader stops answering: its rounds do
not hold the queue every zone writes through, and the calls queued behind an unanswered
one fail at once instead of each waiting the peer timeout.

Real objects (a dict), a scripted peer client: leader 2 answers at once, leader 3 (a
stopped broker) answers nothing until released, then fails as a timed-out call does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import pytest

from contextplane.clock import SystemClock
from contextplane.cluster import zone_router
from contextplane.cluster.peer_client import PeerUnavailable
from contextplane.cluster.zone_router import FrameAnswer, ZoneRouter
from contextplane.protocol.error_codes import ErrorCode

HEALTHY, STOPPED = 2, 3


class Objects:
    def __init__(self) -> None:
        self.stored: dict[str, bytes] = {}

    async def put(self, key: str, parts: Sequence[bytes | memoryview]) -> None:
        self.stored[key] = b"".join(parts)

    async def delete(self, key: str) -> None:
        self.stored.pop(key, None)


class Peers:
    """Leader 2 answers each frame; leader 3 waits for `wake`, then times out, or, when
    `slow_s` is set, answers each call that long after."""

    def __init__(self, slow_s: float | None = None) -> None:
        self.wake = asyncio.Event()
        self.slow_s = slow_s
        self.calls: dict[int, int] = {HEALTHY: 0, STOPPED: 0}

    async def request(self, leader: int, *_: Any, frames: list[Any], **__: Any) -> Any:
        self.calls[leader] += 1
        if leader == STOPPED and self.slow_s is not None:
            await asyncio.sleep(self.slow_s)
        elif leader == STOPPED:
            await self.wake.wait()
            raise PeerUnavailable(f"node {leader}: TimeoutError()")
        answers = [SimpleNamespace(error_code=0, error_message=None, body=b"ok")] * len(frames)
        return SimpleNamespace(error_code=0, error_message=None, frames=answers)


def _router(peers: Peers, objects: Objects) -> ZoneRouter:
    return ZoneRouter(objects, peers, 1, lambda: 0, SystemClock())  # type: ignore[arg-type]


async def _hand_over(router: ZoneRouter, leader: int, size: int, timeout_s: float) -> Any:
    answers = await router.hand_over({leader: b"x" * size}, "User:app", "127.0.0.1:1", timeout_s)
    return answers


def test_a_stopped_leaders_rounds_do_not_hold_the_queue_of_other_zones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With room for 1,000 queued bytes, leader 3's unanswered requests (3 × 600 bytes,
    each in its own round) leave room for leader 2's: answered at once, not after its
    timeout (the old router freed a round's room only once every leader answered)."""
    monkeypatch.setattr(zone_router, "QUEUED_BYTES_MAX", 1_000)
    monkeypatch.setattr(zone_router, "ROUND_BYTES_MAX", 600)
    monkeypatch.setattr(zone_router, "ROUND_PATIENCE_S", 0.01)

    async def scenario() -> None:
        peers, objects = Peers(), Objects()
        router = _router(peers, objects)
        stalled = [
            asyncio.ensure_future(await _hand_over(router, STOPPED, 600, 30)) for _ in range(3)
        ]
        await asyncio.sleep(0.1)
        healthy = await asyncio.wait_for(await _hand_over(router, HEALTHY, 600, 5), 2)
        assert healthy == {HEALTHY: FrameAnswer(ErrorCode.none, None, b"ok")}
        assert not any(waiting.done() for waiting in stalled)
        # The stopped leader's round objects stay until it answers; their frames live
        # there, not in the router's memory.
        assert len(objects.stored) == 3
        assert router._queued_bytes == 0
        peers.wake.set()
        for waiting in stalled:
            answers = await asyncio.wait_for(waiting, 2)
            assert answers[STOPPED].error_code == ErrorCode.not_leader_or_follower
        await asyncio.sleep(0.05)
        assert objects.stored == {}

    asyncio.run(scenario())


def test_calls_queued_behind_an_unanswered_one_fail_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Five rounds for leader 3 queue behind its first call; once that one fails for want
    of an answer, the other four are answered NOT_LEADER_OR_FOLLOWER without a call each
    (the old router called again for each: five peer timeouts in a row), and a new
    request for leader 3 is answered at once while it is marked unreachable."""
    monkeypatch.setattr(zone_router, "ROUND_BYTES_MAX", 100)
    monkeypatch.setattr(zone_router, "ROUND_PATIENCE_S", 0.01)

    async def scenario() -> None:
        peers, objects = Peers(), Objects()
        router = _router(peers, objects)
        waiting = [await _hand_over(router, STOPPED, 100, 30) for _ in range(5)]
        await asyncio.sleep(0.2)
        assert peers.calls[STOPPED] == 1
        peers.wake.set()
        answers = await asyncio.wait_for(asyncio.gather(*waiting), 2)
        codes = [answer[STOPPED].error_code for answer in answers]
        assert codes == [ErrorCode.not_leader_or_follower] * 5
        assert peers.calls[STOPPED] == 1
        assert router.unreachable.nodes() == {STOPPED}
        again = await asyncio.wait_for(await _hand_over(router, STOPPED, 100, 30), 1)
        assert again[STOPPED].error_code == ErrorCode.not_leader_or_follower
        assert peers.calls[STOPPED] == 1
        healthy = await asyncio.wait_for(await _hand_over(router, HEALTHY, 100, 5), 2)
        assert healthy[HEALTHY].error_code == ErrorCode.none

    asyncio.run(scenario())


def test_a_slow_leader_is_left_out_once_its_calls_pile_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """Leader 3 answers every call, 1 s after it: its calls pile up one a round. With
    room for 8 rounds in flight and 3 calls a leader, the fourth request for it is
    answered NOT_LEADER_OR_FOLLOWER at once (it is marked as not reachable), and a
    request for leader 2 is answered while leader 3's calls still wait (before: the
    rounds waiting on leader 3 took every slot in flight, and leader 2's request timed
    out without a call)."""
    monkeypatch.setattr(zone_router, "ROUND_BYTES_MAX", 100)
    monkeypatch.setattr(zone_router, "ROUND_PATIENCE_S", 0.01)
    monkeypatch.setattr(zone_router, "ROUNDS_IN_FLIGHT_MAX", 8)
    monkeypatch.setattr(zone_router, "LEADER_CALLS_MAX", 3)

    async def scenario() -> None:
        peers, objects = Peers(slow_s=1.0), Objects()
        router = _router(peers, objects)
        slow = [await _hand_over(router, STOPPED, 100, 30) for _ in range(3)]
        await asyncio.sleep(0.1)
        refused = await asyncio.wait_for(await _hand_over(router, STOPPED, 100, 30), 0.5)
        assert refused[STOPPED].error_code == ErrorCode.not_leader_or_follower
        for _ in range(10):  # more rounds than slots in flight, each for leader 2
            healthy = await asyncio.wait_for(await _hand_over(router, HEALTHY, 100, 2), 0.5)
            assert healthy[HEALTHY].error_code == ErrorCode.none
        # The first slow call is answered; those queued behind it fail at once, the
        # leader being marked, rather than each wait its second.
        answers = await asyncio.wait_for(asyncio.gather(*slow), 3)
        assert answers[0][STOPPED].error_code == ErrorCode.none
        assert peers.calls[STOPPED] == 1

    asyncio.run(scenario())


def test_a_request_naming_a_slow_and_a_healthy_leader_is_handed_to_the_healthy_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Leader 3 is behind (2 calls waiting, the bound): a request with a frame for each
    leader gets NOT_LEADER_OR_FOLLOWER for leader 3's partitions only; leader 2's are
    handed over and answered."""
    monkeypatch.setattr(zone_router, "ROUND_BYTES_MAX", 100)
    monkeypatch.setattr(zone_router, "ROUND_PATIENCE_S", 0.01)
    monkeypatch.setattr(zone_router, "LEADER_CALLS_MAX", 2)

    async def scenario() -> None:
        peers = Peers(slow_s=1.0)
        router = _router(peers, Objects())
        for _ in range(2):
            await _hand_over(router, STOPPED, 100, 30)
        await asyncio.sleep(0.1)
        both = await asyncio.wait_for(
            await router.hand_over({HEALTHY: b"y", STOPPED: b"x"}, "User:a", "127.0.0.1:1", 30),
            1,
        )
        assert both[HEALTHY].error_code == ErrorCode.none
        assert both[STOPPED].error_code == ErrorCode.not_leader_or_follower

    asyncio.run(scenario())
