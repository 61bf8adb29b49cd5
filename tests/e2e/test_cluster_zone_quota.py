"""A client's producer_byte_rate holds through its zone's stand-in (RFC 0004 §7): the
records a stand-in hands to a leader of another zone count against the client's quota
there, where its connection is, so the connection is muted for the throttle the answer
reports (KIP-219), acks=0 ones included.

Broker 1 (rack a) stands in for broker 2 (rack b); the zone-a client's quota is 100 kB/s.
A 300 kB Produce for a partition broker 2 leads is answered with a throttle, and the
connection reads its next request only once that throttle has passed. Before, the
answer carried the leader's throttle (of its own connection to broker 1) while the
client's connection was never muted: the next request was answered at once, and an
acks=0 flood went through at the rate it was sent.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from conformance.wire import Rec, encode_batch
from tests.e2e.test_cluster_failover import broker, fixture
from tests.e2e.test_cluster_zone_attack import SLOW, ZONE_A, led_by_two
from tests.e2e.test_cluster_zone_produce import PRODUCE, PRODUCE_VERSION, TOPIC
from tests.e2e.test_quotas import SHORT_WINDOWS, set_quota
from tests.support.postgres import PostgresServer
from tests.support.rawclient import RawClient

RATE = 100_000  # bytes a second
API_VERSIONS = 18


def _produce(partition: int) -> dict[str, Any]:
    batch = encode_batch([Rec(bytes([n]) * 100_000) for n in range(3)])
    return {
        "transactional_id": None,
        "acks": 1,
        "timeout": 10_000,
        "topic_data": [{"name": TOPIC, "partition_data": [{"index": partition, "records": batch}]}],
    }


def test_a_zone_clients_quota_mutes_its_connection_to_the_stand_in(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url, objects = fixture(tmp_path, postgres_server)
    extra = {"zone.produce.proxy.enable": "true", **SLOW, **SHORT_WINDOWS}
    one = broker(tmp_path / "one", 1, url, objects, **extra, **{"broker.rack": "a"}).start()
    two = broker(tmp_path / "two", 2, url, objects, **extra, **{"broker.rack": "b"}).start()
    try:
        on_two = led_by_two(url, one.bootstrap)
        set_quota(one.bootstrap, [("client-id", ZONE_A)], "producer_byte_rate", RATE)
        with RawClient(one.bootstrap, client_id=ZONE_A) as client:
            client.sock.settimeout(30)
            answer = client.request(PRODUCE, PRODUCE_VERSION, **_produce(on_two))
            assert answer.responses[0].partition_responses[0].error_code == 0, answer
            throttle_s = answer.throttle_time.total_seconds()
            assert throttle_s >= 1.0, throttle_s  # 300 kB against 100 kB/s
            started = time.monotonic()
            client.request(API_VERSIONS, 0)  # a client ignoring the throttle
            waited_s = time.monotonic() - started
        assert waited_s >= throttle_s / 2, (throttle_s, waited_s)
    finally:
        two.stop()
        one.stop()
