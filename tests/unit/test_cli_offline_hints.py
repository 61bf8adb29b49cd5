"""What `produce` and `consume` say of partitions no broker serves now, from the metadata
librdkafka gives them: without a leader (a broker gone with records only in its local
WAL), or led by a broker that takes no connection (killed or stopped while its lease
lasts, so Metadata still names it; probed with a TCP connection)."""

from __future__ import annotations

import argparse
import socket
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from contextplane.cli.consume import _warn_offline
from contextplane.cli.produce import _leaderless

LIVE, DEAD = 1, 3


@pytest.fixture(name="brokers")
def brokers_fixture() -> Iterator[dict[int, Any]]:
    """Broker 1 listens; broker 3's port takes no connection."""
    with socket.socket() as live, socket.socket() as dead:
        live.bind(("127.0.0.1", 0))
        live.listen()
        dead.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        yield {
            LIVE: SimpleNamespace(host="127.0.0.1", port=live.getsockname()[1]),
            DEAD: SimpleNamespace(host="127.0.0.1", port=dead.getsockname()[1]),
        }


def metadata(leaders: dict[int, int]) -> Any:
    return SimpleNamespace(
        partitions={p: SimpleNamespace(leader=leader) for p, leader in leaders.items()}
    )


class Client:
    def __init__(self, leaders: dict[int, int] | None, brokers: dict[int, Any]) -> None:
        self.leaders = leaders
        self.brokers = brokers

    def list_topics(self, topic: str, timeout: float) -> Any:
        if self.leaders is None:
            raise RuntimeError("no answer")
        return SimpleNamespace(topics={topic: metadata(self.leaders)}, brokers=self.brokers)


def test_produce_names_the_partitions_written_that_no_broker_serves(
    brokers: dict[int, Any],
) -> None:
    every = argparse.Namespace(topic="demo", partition=None)
    one = argparse.Namespace(topic="demo", partition=2)
    assert _leaderless(Client({0: LIVE, 1: -1, 2: -1}, brokers), every) == (
        " (partitions 1, 2 without a leader (offline))"
    )
    assert _leaderless(Client({0: LIVE, 1: -1, 2: -1}, brokers), one) == (
        " (partition 2 without a leader (offline))"
    )
    assert _leaderless(Client({0: LIVE, 1: DEAD, 2: -1}, brokers), every) == (
        " (partition 2 without a leader (offline); partition 1 led by broker 3, which takes"
        " no connection (stopped or killed))"
    )
    assert _leaderless(Client({0: LIVE, 1: LIVE}, brokers), every) == ""
    assert _leaderless(Client(None, brokers), every) == ""  # the hint is best effort


def test_consume_warns_of_the_partitions_read_that_no_broker_serves(
    capsys: pytest.CaptureFixture[str], brokers: dict[int, Any]
) -> None:
    client = Client({0: LIVE, 1: -1, 2: -1}, brokers)
    _warn_offline(client, "demo", metadata({0: LIVE, 1: -1, 2: -1}), [0, 2])
    assert capsys.readouterr().err == (
        "topic 'demo': partition 2 without a leader (offline): nothing is read from it until"
        " a live broker takes it\n"
    )
    # Right after a kill, Metadata still names the leader: the probe finds it gone.
    client = Client({0: LIVE, 1: DEAD}, brokers)
    _warn_offline(client, "demo", metadata({0: LIVE, 1: DEAD}), [0, 1])
    assert capsys.readouterr().err == (
        "topic 'demo': partition 1 led by broker 3, which takes no connection (stopped or"
        " killed): nothing is read from it until a live broker takes it\n"
    )
    _warn_offline(Client({0: LIVE}, brokers), "demo", metadata({0: LIVE}), [0])
    assert capsys.readouterr().err == ""
