"""The rebalance and drain planner (RFC 0004 §6): nothing placed on a draining broker,
a draining broker emptied, at most `max_moves` balancing moves, the largest broker's load
never higher after a plan, moves within a rack preferred; and the load document a
heartbeat writes stays bounded."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from contextplane.cluster.balance_plan import Broker, Led, NoBrokerLeft, broker_loads, plan
from contextplane.cluster.load import MAX_BYTES, TOP_PARTITIONS, LoadMeter, decode, encode

racks = st.sampled_from([None, "a", "b"])


@st.composite
def clusters(draw: st.DrawFn) -> tuple[list[Broker], list[Led]]:
    nodes = draw(st.lists(st.integers(0, 20), min_size=1, max_size=6, unique=True))
    brokers = [Broker(n, draw(racks), draw(st.booleans())) for n in nodes]
    count = draw(st.integers(0, 40))
    partitions = [
        Led(("t", i), draw(st.sampled_from(nodes)), draw(st.integers(0, 10_000)) * 1.0)
        for i in range(count)
    ]
    return brokers, partitions


def _after(partitions: list[Led], moves: list) -> list[Led]:  # type: ignore[type-arg]
    target = {m.key: m.target for m in moves}
    return [Led(p.key, target.get(p.key, p.leader), p.load) for p in partitions]


@settings(max_examples=300, deadline=None)
@given(clusters(), st.integers(0, 10), st.booleans())
def test_plans_respect_draining_and_the_move_limit(
    cluster: tuple[list[Broker], list[Led]], max_moves: int, spread_idle: bool
) -> None:
    brokers, partitions = cluster
    draining = {b.node_id for b in brokers if b.draining}
    live = [b for b in brokers if not b.draining]
    if not live and any(p.leader in draining for p in partitions):
        try:
            plan(brokers, partitions, max_moves)
        except NoBrokerLeft:
            return
        raise AssertionError("a plan with nowhere to go")
    moves = plan(brokers, partitions, max_moves, spread_idle=spread_idle)
    again = plan(list(reversed(brokers)), partitions, max_moves, spread_idle=spread_idle)
    assert again == moves  # deterministic
    assert len({m.key for m in moves}) == len(moves)  # each partition at most once
    assert all(m.target not in draining and m.target != m.source for m in moves)
    drained = [m for m in moves if m.source in draining]
    assert {m.key for m in drained} == {p.key for p in partitions if p.leader in draining}
    assert len(moves) - len(drained) <= max_moves
    # Balancing never raises the largest load among the brokers left after the drain.
    drained_only = _after(partitions, drained)
    before = broker_loads(live, drained_only)
    after = broker_loads(live, _after(partitions, moves))
    if before:
        assert max(after.values()) <= max(before.values())
        assert sum(after.values()) == sum(before.values())


def test_rebalance_moves_the_heaviest_brokers_load_toward_the_idle_one() -> None:
    brokers = [Broker(1, None), Broker(2, None)]
    partitions = [Led(("t", i), 1, 100.0) for i in range(4)]
    moves = plan(brokers, partitions, 50)
    assert [(m.source, m.target) for m in moves] == [(1, 2), (1, 2)]
    assert broker_loads(brokers, _after(partitions, moves)) == {1: 200.0, 2: 200.0}
    assert plan(brokers, partitions, 1) == moves[:1]  # the limit
    assert plan(brokers, partitions, 0) == []


def test_balanced_or_unmeasured_clusters_move_nothing() -> None:
    brokers = [Broker(1, None), Broker(2, None)]
    assert plan(brokers, [Led(("t", 0), 1, 0.0), Led(("t", 1), 1, 0.0)], 50) == []
    assert plan(brokers, [Led(("t", 0), 1, 10.0), Led(("t", 1), 2, 10.0)], 50) == []
    # One partition carrying everything: moving it would only swap the peak.
    assert plan(brokers, [Led(("t", 0), 1, 10.0)], 50) == []


def test_moves_stay_within_the_rack_when_that_lowers_the_load() -> None:
    brokers = [Broker(1, "a"), Broker(2, "a"), Broker(3, "b")]
    partitions = [Led(("t", i), 1, 100.0) for i in range(3)]
    moves = plan(brokers, partitions, 1)
    assert [(m.source, m.target) for m in moves] == [(1, 2)]  # not the emptier rack b
    # Alone in its rack, a broker's load goes across.
    moves = plan([Broker(1, "a"), Broker(3, "b")], partitions, 1)
    assert [(m.source, m.target) for m in moves] == [(1, 3)]


def test_drain_empties_the_broker_to_the_least_loaded_same_rack_first() -> None:
    brokers = [Broker(1, "a", draining=True), Broker(2, "a"), Broker(3, "b"), Broker(4, "a")]
    partitions = [
        Led(("t", 0), 1, 50.0),
        Led(("t", 1), 1, 30.0),
        Led(("t", 2), 1, 0.0),
        Led(("u", 0), 2, 40.0),
    ]
    moves = plan(brokers, partitions, 50, draining_only=True)
    assert [(m.key, m.target) for m in moves] == [(("t", 0), 4), (("t", 1), 2), (("t", 2), 4)]
    # Without another broker in its rack, across.
    moves = plan([Broker(1, "a", True), Broker(3, "b")], partitions[:1], 50)
    assert [(m.key, m.target) for m in moves] == [(("t", 0), 3)]


def test_the_load_document_is_bounded_and_round_trips() -> None:
    rates = [(f"topic-{'x' * 200}-{i}", i % 7, float(i), 2.0 * i) for i in range(5000)]
    document = encode(rates)
    assert len(document) <= MAX_BYTES
    parsed = json.loads(document)
    assert parsed["in"] == round(sum(r[2] for r in rates))
    assert parsed["out"] == round(sum(r[3] for r in rates))
    short = encode([("t", i, float(i + 1), 0.0) for i in range(5000)])
    assert len(json.loads(short)["partitions"]) == TOP_PARTITIONS
    load = decode(short)
    assert load.partitions[("t", 4999)] == 5000.0  # the busiest are the ones kept
    assert ("t", 0) not in load.partitions
    assert decode("{}") == decode("not json") == decode('{"partitions": [1]}')


class _Log:
    def __init__(self, stream_id: int, topic: str, partition: int) -> None:
        self.stream_id, self.topic, self.partition = stream_id, topic, partition
        self.bytes_in = self.bytes_out = 0


def test_the_meter_averages_each_partitions_bytes_per_second() -> None:
    logs = [_Log(1, "a", 0), _Log(2, "b", 3)]
    meter = LoadMeter(lambda: logs)
    meter.document(0.0)
    for second in range(1, 601):  # ten minutes at 1,000 B/s in and 500 B/s out on a-0
        logs[0].bytes_in += 1000
        logs[0].bytes_out += 500
        document = json.loads(meter.document(float(second)))
    assert document["partitions"] == [["a", 0, 1000, 500]]  # b-3 idle: not listed
    assert (document["in"], document["out"]) == (1000, 500)
    logs.pop(0)  # moved away: forgotten
    assert json.loads(meter.document(601.0)) == {"in": 0, "out": 0, "partitions": []}


def test_idle_partitions_are_spread_by_count_when_asked() -> None:
    """Failovers leave idle partitions (coordinator shards, quiet topics) wherever they
    landed and no load moves them back: `cluster rebalance` spreads them by count."""
    brokers = [Broker(1, "a"), Broker(2, "a"), Broker(3, "b")]
    partitions = [Led(("__consumer_offsets", i), 3, 0.0) for i in range(9)]
    assert plan(brokers, partitions, 50) == []  # load alone: nothing to balance
    moves = plan(brokers, partitions, 50, spread_idle=True)
    counts = {n: 0 for n in (1, 2, 3)}
    for led in _after(partitions, moves):
        counts[led.leader] += 1
    assert counts == {1: 3, 2: 3, 3: 3}
    assert all(m.load == 0.0 and m.source == 3 for m in moves)
    assert len(plan(brokers, partitions, 2, spread_idle=True)) == 2  # the limit holds
    # Spread already: nothing.
    assert plan(brokers, _after(partitions, moves), 50, spread_idle=True) == []


def test_a_drain_of_idle_partitions_spreads_them() -> None:
    brokers = [Broker(1, None, draining=True), Broker(2, None), Broker(3, None)]
    partitions = [Led(("t", i), 1, 0.0) for i in range(6)]
    moves = plan(brokers, partitions, 0, draining_only=True)
    assert sorted(m.target for m in moves) == [2, 2, 2, 3, 3, 3]


def test_a_drain_spreads_idle_partitions_by_count_whatever_the_loads() -> None:
    """Loads are measured floats that almost never tie: by load, every idle partition of
    a drained broker went to the one measured a few bytes a second lighter."""
    brokers = [Broker(1, None, draining=True), Broker(2, None), Broker(3, None)]
    partitions = [Led(("busy", 0), 2, 5.0), Led(("busy", 1), 3, 3.0)]
    partitions += [Led(("t", i), 1, 0.0) for i in range(10)]
    partitions += [Led(("hot", 0), 1, 100.0)]
    moves = plan(brokers, partitions, 0, draining_only=True)
    assert moves[0].key == ("hot", 0) and moves[0].target == 3  # the load: least loaded
    idle = [m.target for m in moves[1:]]
    assert sorted(idle) == [2] * 6 + [3] * 4  # each broker then leads 7 partitions
