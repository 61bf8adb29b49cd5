"""The topic-change wait (broker/topic_propagation.py) against scripted peers: it ends
once each peer shows the change, leaves out a peer that cannot be asked or may not
describe the topic, and ends at its bound for a peer that never shows it."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from contextplane import limits
from contextplane.broker.topic_propagation import DELETED, until_shown
from contextplane.clock import SystemClock
from contextplane.cluster.peer_client import PeerUnavailable
from contextplane.protocol.error_codes import ErrorCode


def topic(name: str, partitions: int, error: int = ErrorCode.none, led: bool = True) -> Any:
    partition_error = ErrorCode.none if led else ErrorCode.leader_not_available
    return SimpleNamespace(
        name=name,
        error_code=error,
        partitions=[SimpleNamespace(error_code=partition_error) for _ in range(partitions)],
    )


class ScriptedPeers:
    """Each node's answers in turn (the last repeated); an exception is raised."""

    def __init__(self, answers: dict[int, list[Any]]) -> None:
        self.answers = answers
        self.asked: dict[int, int] = dict.fromkeys(answers, 0)

    async def request(self, node: int, api_key: int, version: int, **fields: Any) -> Any:
        script = self.answers[node]
        answer = script[min(self.asked[node], len(script) - 1)]
        self.asked[node] += 1
        if isinstance(answer, BaseException):
            raise answer
        return SimpleNamespace(topics=answer)


def context(peers: ScriptedPeers, local: dict[str, int], leader: int = 1) -> Any:
    """A request context on node 1 whose own view holds `local` (topic -> partitions),
    every partition led by `leader` (-1: none)."""
    records = {name: SimpleNamespace(partitions=count) for name, count in local.items()}
    cluster = SimpleNamespace(
        peers=peers,
        node_id=1,
        registry=SimpleNamespace(reachable_ids=frozenset({1, *peers.answers})),
        leaders=SimpleNamespace(listed=lambda name, index: (leader, 0)),
        topic_change_waits=0,
    )
    return SimpleNamespace(
        cluster=cluster,
        services=SimpleNamespace(clock=SystemClock()),
        topics=SimpleNamespace(topics=lambda: records),
    )


def test_the_wait_ends_once_every_peer_shows_the_change() -> None:
    # The old count, then the new one not yet led, then shown.
    answers = [[topic("t", 2)], [topic("t", 6, led=False)], [topic("t", 6)]]
    peers = ScriptedPeers({2: answers})
    asyncio.run(until_shown(context(peers, {"t": 6}), {"t": 6}))
    assert peers.asked[2] == 3
    peers = ScriptedPeers(
        {3: [[topic("gone", 1)], [topic("gone", 0, ErrorCode.unknown_topic_or_partition)]]}
    )
    asyncio.run(until_shown(context(peers, {}), {"gone": DELETED}))
    assert peers.asked[3] == 2


def test_a_peer_that_cannot_be_asked_or_may_not_describe_is_not_waited_for() -> None:
    peers = ScriptedPeers(
        {
            2: [PeerUnavailable("node 2: refused")],
            3: [[topic("t", 0, ErrorCode.topic_authorization_failed)]],
        }
    )
    asyncio.run(until_shown(context(peers, {"t": 2}), {"t": 2}))
    assert peers.asked == {2: 1, 3: 1}


def test_a_peer_that_never_shows_it_holds_the_answer_for_the_bound_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(limits, "TOPIC_CHANGE_WAIT_S", 0.3)
    peers = ScriptedPeers({2: [[topic("t", 1)]]})  # the old count, always
    clock = SystemClock()
    started = clock.monotonic_ms()
    asyncio.run(until_shown(context(peers, {"t": 4}), {"t": 4}))
    assert 300 <= clock.monotonic_ms() - started < 3_000
    assert peers.asked[2] >= 3  # asked again and again within the bound


def test_nothing_is_asked_on_a_broker_alone_or_for_no_change() -> None:
    alone = ScriptedPeers({})
    asyncio.run(until_shown(context(alone, {}), {"t": 1}))
    peers = ScriptedPeers({2: [[topic("t", 1)]]})
    asyncio.run(until_shown(context(peers, {}), {}))
    assert peers.asked == {2: 0}


def test_once_a_peer_cannot_be_asked_partitions_need_to_be_listed_not_led(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Broker 3 killed while its lease lasts: the partitions placed on it get no leader
    until the lease lapses. Broker 2 lists them without a leader, as this broker does;
    the wait ends at once instead of at its bound (before: the whole bound)."""
    monkeypatch.setattr(limits, "TOPIC_CHANGE_WAIT_S", 5.0)
    peers = ScriptedPeers(
        {2: [[topic("t", 4, led=False)]], 3: [PeerUnavailable("node 3: refused")]}
    )
    clock = SystemClock()
    started = clock.monotonic_ms()
    asyncio.run(until_shown(context(peers, {"t": 4}, leader=-1), {"t": 4}))
    assert clock.monotonic_ms() - started < 2_000
    assert peers.asked[3] == 1
    # The count is still waited for: broker 2 listing the old count holds the answer.
    monkeypatch.setattr(limits, "TOPIC_CHANGE_WAIT_S", 0.3)
    peers = ScriptedPeers({2: [[topic("t", 2)]], 3: [PeerUnavailable("node 3: refused")]})
    started = clock.monotonic_ms()
    asyncio.run(until_shown(context(peers, {"t": 4}, leader=-1), {"t": 4}))
    assert clock.monotonic_ms() - started >= 300


def test_past_the_bound_on_waits_at_once_a_change_is_answered_without_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A client racing creates and deletes keeps many waits going; each polls every peer.
    Past TOPIC_CHANGE_WAITS_MAX waits at once a change is answered without asking."""
    monkeypatch.setattr(limits, "TOPIC_CHANGE_WAITS_MAX", 2)
    peers = ScriptedPeers({2: [[topic("t", 1)]]})  # never shows it
    ctx = context(peers, {"t": 4})
    ctx.cluster.topic_change_waits = 2
    asyncio.run(until_shown(ctx, {"t": 4}))
    assert peers.asked[2] == 0
    ctx.cluster.topic_change_waits = 1
    monkeypatch.setattr(limits, "TOPIC_CHANGE_WAIT_S", 0.05)
    asyncio.run(until_shown(ctx, {"t": 4}))
    assert peers.asked[2] >= 1 and ctx.cluster.topic_change_waits == 1  # given back
