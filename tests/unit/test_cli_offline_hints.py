"""What `produce` and `consume` say of partitions without a leader (a broker gone with
records only in its local WAL), from the metadata librdkafka gives them."""

from __future__ import annotations

import argparse
from types import SimpleNamespace
from typing import Any

import pytest

from contextplane.cli.consume import _warn_offline
from contextplane.cli.produce import _leaderless


def metadata(leaders: dict[int, int]) -> Any:
    return SimpleNamespace(
        partitions={p: SimpleNamespace(leader=leader) for p, leader in leaders.items()}
    )


class Client:
    def __init__(self, leaders: dict[int, int] | None) -> None:
        self.leaders = leaders

    def list_topics(self, topic: str, timeout: float) -> Any:
        if self.leaders is None:
            raise RuntimeError("no answer")
        return SimpleNamespace(topics={topic: metadata(self.leaders)})


def test_produce_names_the_partitions_written_without_a_leader() -> None:
    every = argparse.Namespace(topic="demo", partition=None)
    one = argparse.Namespace(topic="demo", partition=2)
    assert _leaderless(Client({0: 1, 1: -1, 2: -1}), every) == (
        " (partitions 1, 2 without a leader: offline)"
    )
    assert _leaderless(Client({0: 1, 1: -1, 2: -1}), one) == (
        " (partition 2 without a leader: offline)"
    )
    assert _leaderless(Client({0: 1, 1: 3}), every) == ""
    assert _leaderless(Client(None), every) == ""  # the hint is best effort


def test_consume_warns_of_the_partitions_read_without_a_leader(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _warn_offline("demo", metadata({0: 1, 1: -1, 2: -1}), [0, 2])
    assert capsys.readouterr().err == (
        "topic 'demo': partition 2 without a leader (offline): nothing is read from them"
        " until one takes them\n"
    )
    _warn_offline("demo", metadata({0: 1}), [0])
    assert capsys.readouterr().err == ""
