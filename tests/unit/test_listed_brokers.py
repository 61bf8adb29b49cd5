"""The brokers Metadata, DescribeCluster and NOT_LEADER_OR_FOLLOWER's NodeEndpoints
offer a client (broker/handlers/cluster.py `listed`): this broker as the client reached
it, and every other live broker with an endpoint of the client's listener, but none
registered before its listeners bound (port 0, which a client would dial)."""

from __future__ import annotations

from contextplane.broker.handlers.cluster import listed
from contextplane.metadata.records import BrokerEndpoint, BrokerRecord


def broker(node_id: int, *ports: tuple[str, int], rack: str | None = None) -> BrokerRecord:
    endpoints = tuple(BrokerEndpoint(name, "127.0.0.1", port, "PLAINTEXT") for name, port in ports)
    return BrokerRecord(node_id, node_id * 10, rack, endpoints, "live", 60_000)


OWN = (2, "localhost", 9092, "zone-b")


def test_bound_brokers_are_listed_with_the_clients_listener_by_node_id() -> None:
    brokers = [
        broker(3, ("PLAINTEXT", 9300), ("INTERNAL", 9301), rack="zone-c"),
        broker(1, ("PLAINTEXT", 9100)),
        broker(2, ("PLAINTEXT", 1)),  # this broker's own row: the client's endpoint wins
    ]
    assert listed(OWN, brokers, "PLAINTEXT") == [
        (1, "127.0.0.1", 9100, None),
        OWN,
        (3, "127.0.0.1", 9300, "zone-c"),
    ]
    assert listed(OWN, brokers, "INTERNAL") == [OWN, (3, "127.0.0.1", 9301, "zone-c")]


def test_a_broker_not_yet_bound_is_left_out() -> None:
    starting = broker(1, ("PLAINTEXT", 0))
    # Any listener still at port 0: its ports are published all together once bound.
    half = broker(3, ("PLAINTEXT", 9300), ("INTERNAL", 0))
    assert listed(OWN, [starting, half], "PLAINTEXT") == [OWN]
    published = broker(1, ("PLAINTEXT", 9100))
    assert listed(OWN, [published, half], "PLAINTEXT") == [(1, "127.0.0.1", 9100, None), OWN]


def test_a_broker_registered_again_with_the_zone_proxy_changed_moves_the_generation() -> None:
    """Metadata's cached answers are dropped when the registry's generation moves
    (`Registry._update` compares `_listed`): a broker restarted within its lease with
    zone.produce.proxy.enable changed is named (or no longer) as a stand-in at once. Its
    lease left alone, which changes at every read, moves nothing."""
    from dataclasses import replace

    from contextplane.cluster.registry import _listed

    before = broker(2, ("PLAINTEXT", 9200), rack="b")
    assert _listed(replace(before, zone_proxy=True)) != _listed(before)
    assert _listed(replace(before, lease_remaining_ms=1)) == _listed(before)
