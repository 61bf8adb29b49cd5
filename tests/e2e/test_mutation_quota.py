"""controller_mutation_rate (KIP-599) over the wire: CreateTopics v6+, DeleteTopics v5+
and CreatePartitions v3+ refuse a topic with THROTTLING_QUOTA_EXCEEDED once the client's
partition mutations have exhausted its quota (strict), older versions are all accepted
and throttled (permissive), and both report throttle_time_ms; another client is not
affected, and the client is served again once its throttle time has passed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_quotas import set_quota
from tests.support.inprocess import InProcessBroker
from tests.support.rawclient import RawClient
from tests.support.wait import wait_until

CREATE_TOPICS, DELETE_TOPICS, CREATE_PARTITIONS = 19, 20, 37
THROTTLING_QUOTA_EXCEEDED = 89
# A bucket of 2 partitions (quota 1 per second, 2 one-second windows).
SMALL_BUCKET = {"quota.window.num": "2", "quota.window.size.seconds": "1"}


@pytest.fixture
def quota_broker(tmp_path: Path) -> Iterator[InProcessBroker]:
    running = InProcessBroker(tmp_path / "broker", settings=dict(SMALL_BUCKET)).start()
    set_quota(running.bootstrap, [("client-id", "creator")], "controller_mutation_rate", 1.0)
    yield running
    running.stop()


def _create(
    client: RawClient, version: int, topics: list[tuple[str, int]], validate_only: bool = False
) -> Any:
    return client.request(
        CREATE_TOPICS,
        version,
        topics=[
            {
                "name": name,
                "num_partitions": count,
                "replication_factor": 1,
                "assignments": [],
                "configs": [],
            }
            for name, count in topics
        ],  # fmt: skip
        timeout_ms=10000,
        validate_only=validate_only,
    )


def _ms(throttle: timedelta) -> float:
    return throttle.total_seconds() * 1000


def _errors(response: Any, field: str = "topics") -> dict[str, int]:
    return {entry.name: int(entry.error_code) for entry in getattr(response, field)}


def test_strict_create_topics_refuses_once_the_quota_is_exhausted(
    quota_broker: InProcessBroker,
) -> None:
    with RawClient(quota_broker.bootstrap, client_id="creator") as client:
        response = _create(client, 7, [("a", 2), ("b", 1), ("c", 1)])
        # a takes the bucket to 0, b below it (accepted), c finds it exhausted.
        assert _errors(response) == {"a": 0, "b": 0, "c": THROTTLING_QUOTA_EXCEEDED}
        refused = next(t for t in response.topics if t.name == "c")
        assert refused.error_message is None  # Kafka leaves out the generic message
        assert 0 < _ms(response.throttle_time) <= 1000
    with RawClient(quota_broker.bootstrap, client_id="someone-else") as other:
        assert _errors(_create(other, 7, [("d", 5)])) == {"d": 0}

    def served_again() -> bool:
        with RawClient(quota_broker.bootstrap, client_id="creator") as again:
            return _errors(_create(again, 7, [("c", 1)])) == {"c": 0}

    wait_until(served_again, 15, "the creator served once its throttle time passed")


def test_permissive_create_topics_accepts_and_throttles_an_old_client(
    quota_broker: InProcessBroker,
) -> None:
    with RawClient(quota_broker.bootstrap, client_id="creator") as client:
        response = _create(client, 5, [("a", 2), ("b", 3), ("c", 1)])
        assert _errors(response) == {"a": 0, "b": 0, "c": 0}
        assert 3000 <= _ms(response.throttle_time) <= 4000  # 4 partitions below: about 4 s


def test_validate_only_counts_against_the_quota_as_in_kafka(
    quota_broker: InProcessBroker,
) -> None:
    with RawClient(quota_broker.bootstrap, client_id="creator") as client:
        assert _errors(_create(client, 7, [("a", 3)], validate_only=True)) == {"a": 0}
        assert _errors(_create(client, 7, [("b", 1)])) == {"b": THROTTLING_QUOTA_EXCEEDED}


def test_strict_delete_topics_and_create_partitions(quota_broker: InProcessBroker) -> None:
    with RawClient(quota_broker.bootstrap, client_id="setup") as setup:
        created = _create(setup, 7, [("x", 2), ("y", 1), ("z", 1), ("w", 1)])
        assert set(_errors(created).values()) == {0}
    with RawClient(quota_broker.bootstrap, client_id="creator") as client:
        deleted = client.request(DELETE_TOPICS, 5, topic_names=["x", "y", "z"], timeout_ms=10000)
        assert _errors(deleted, "responses") == {"x": 0, "y": 0, "z": THROTTLING_QUOTA_EXCEEDED}
        assert _ms(deleted.throttle_time) > 0
    # Another connection of the same client (this one is muted for the throttle time,
    # by which the bucket would have refilled).
    with RawClient(quota_broker.bootstrap, client_id="creator") as client:
        grown = client.request(
            CREATE_PARTITIONS,
            3,
            topics=[{"name": "w", "count": 3, "assignments": None}],
            timeout_ms=10000,
            validate_only=False,
        )
        assert _errors(grown, "results") == {"w": THROTTLING_QUOTA_EXCEEDED}
        assert _ms(grown.throttle_time) > 0
