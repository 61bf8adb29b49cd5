"""The continuous balancer's round decision (cluster/autobalance_round.py): loads, moves
in flight and recent moves in, the moves (or none) and why out."""

from __future__ import annotations

from contextplane.broker.stats import BrokerStats, TopicCounters
from contextplane.cluster.autobalance_round import Limits, decide
from contextplane.cluster.balance_plan import Broker, Led
from contextplane.console.metrics import Snapshot, render

LIMITS = Limits(deviation=0.2, min_load=1000.0, max_moves=10)
TWO = [Broker(1, None), Broker(2, None)]


def skewed(count: int = 4, load: float = 1000.0) -> list[Led]:
    """`count` partitions of `load` bytes/s, all led by broker 1."""
    return [Led(("t", p), 1, load) for p in range(count)]


def test_a_skewed_load_moves_partitions_off_the_busiest_broker() -> None:
    decided = decide(TWO, skewed(), LIMITS)
    assert [(m.source, m.target) for m in decided.moves] == [(1, 2), (1, 2)]
    assert decided.reason.startswith("unbalanced: node 1 at 4000 B/s, the mean 2000 B/s")


def test_moves_per_round_are_bounded() -> None:
    decided = decide(TWO, skewed(8), Limits(0.2, 1000.0, max_moves=3))
    assert len(decided.moves) == 3


def test_nothing_moves_while_unsettled_or_moves_are_in_flight() -> None:
    assert decide(TWO, skewed(), LIMITS, settled=False).moves == []
    assert "cool-down" in decide(TWO, skewed(), LIMITS, settled=False).reason
    in_flight = decide(TWO, skewed(), LIMITS, in_flight=1)
    assert in_flight.moves == [] and in_flight.reason == "1 moves in flight"


def test_a_spread_within_the_deviation_or_below_the_threshold_stays() -> None:
    even = [Led(("t", 0), 1, 1100.0), Led(("t", 1), 2, 900.0)]  # peak 10 % above the mean
    assert "balanced enough" in decide(TWO, even, LIMITS).reason
    # Past a smaller deviation it looks for moves (none here lowers the peak).
    assert "no move lowers the peak" in decide(TWO, even, Limits(0.05, 1000.0, 10)).reason
    small = skewed(4, 100.0)  # 400 B/s, all on one broker
    assert decide(TWO, small, LIMITS).moves == []
    assert "balanced enough" in decide(TWO, small, LIMITS).reason
    assert decide(TWO, small, Limits(0.2, 0.0, 10)).moves != []


def test_a_recently_moved_partition_stays_and_its_load_counts_on_its_leader() -> None:
    partitions = skewed()
    recent = {("t", 0), ("t", 1), ("t", 2)}
    decided = decide(TWO, partitions, LIMITS, recent=recent)
    assert [m.key for m in decided.moves] == [("t", 3)]
    # Everything recent: broker 1 stays loaded, no move is possible.
    stuck = decide(TWO, partitions, LIMITS, recent={p.key for p in partitions})
    assert stuck.moves == [] and "no move lowers the peak" in stuck.reason


def test_never_onto_a_draining_broker_and_never_a_drain() -> None:
    brokers = [Broker(1, None), Broker(2, None, draining=True), Broker(3, None)]
    partitions = [*skewed(), Led(("d", 0), 2, 5000.0)]
    decided = decide(brokers, partitions, LIMITS)
    assert decided.moves and all(m.target == 3 and m.source == 1 for m in decided.moves)
    lone = decide([Broker(1, None), Broker(2, None, draining=True)], skewed(), LIMITS)
    assert lone.moves == [] and "fewer than two" in lone.reason


def test_a_rebalanced_cluster_then_stays_put() -> None:
    """No ping-pong: after a round's moves the next round, even without the cool-down's
    protection, finds nothing worth moving."""
    partitions = skewed()
    first = decide(TWO, partitions, LIMITS)
    moved = {m.key: m.target for m in first.moves}
    after = [Led(p.key, moved.get(p.key, p.leader), p.load) for p in partitions]
    assert decide(TWO, after, LIMITS).moves == []


def test_the_rounds_are_counted_on_metrics() -> None:
    stats = BrokerStats()
    assert "contextplane_balancer_rounds" not in _families(stats)  # the balancer off
    stats.balancer_round(0)
    stats.balancer_round(2)
    stats.balancer_round(0)
    text = _families(stats)
    assert 'contextplane_balancer_rounds_total{outcome="moved"} 1.0' in text
    assert 'contextplane_balancer_rounds_total{outcome="skipped"} 2.0' in text
    assert "contextplane_balancer_moved_partitions_total 2.0" in text


def _families(stats: BrokerStats) -> str:
    snapshot = Snapshot(
        brokers=2,
        partitions=[],
        all_topics=TopicCounters(),
        topics={},
        requests={},
        balancer_rounds=dict(stats.balancer_rounds),
        balancer_moves=stats.balancer_moves,
    )
    return render(snapshot).decode()
