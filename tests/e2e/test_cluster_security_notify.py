"""SCRAM credentials and client quotas changed through one broker are in force on another
at once: each change moves `generation.security`, announced by PostgreSQL NOTIFY, and
every broker reads them again. Two brokers on one PostgreSQL with a 60 s heartbeat
interval, so everything broker 2 sees here before 60 s after its registration came by
notification.

- a SCRAM user created through broker 1 logs in on broker 2; its password changed
  through broker 1, broker 2 refuses the old one and accepts the new; deleted, refused;
- a producer_byte_rate quota set through broker 1 throttles a producer on broker 2
  (throttle_time_ms in its Produce responses); removed, it throttles no more.
"""

from __future__ import annotations

import time
from pathlib import Path

from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from conformance import wire
from contextplane.metadata.postgres_listener import GenerationListener
from tests.support.inprocess import InProcessBroker
from tests.support.postgres import PostgresServer
from tests.support.rawclient import RawClient
from tests.support.sasl_login import SaslLoginFailed, login
from tests.support.wait import wait_until

PRODUCE, ALTER_CLIENT_QUOTAS = 0, 49
SASL_AUTHENTICATION_FAILED = 58
INTERVAL_S = 60
MECHANISM = "SCRAM-SHA-512"
SETTINGS = {
    "broker.heartbeat.interval.ms": str(INTERVAL_S * 1000),
    "broker.session.timeout.ms": str(3 * INTERVAL_S * 1000),
    # Admin requests on PLAINTEXT (no authorizer), logins on SASL_PLAINTEXT.
    "listeners": "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
    "sasl.enabled.mechanisms": MECHANISM,
    # Rates over two one-second windows (test_quotas.py): a burst is throttled at once.
    "quota.window.num": "2",
    "quota.window.size.seconds": "1",
}
QUOTA = 50_000  # producer_byte_rate, bytes per second
PAYLOAD = 100_000  # one produce: twice the quota's second


def address(broker: InProcessBroker, listener: str) -> str:
    return f"127.0.0.1:{broker.listener_port(listener)}"


def set_password(bootstrap: str, user: str, password: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192)
    upsert = UserScramCredentialUpsertion(user, info, password.encode())
    admin.alter_user_scram_credentials([upsert])[user].result(20)


def delete_user(bootstrap: str, user: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    deletion = UserScramCredentialDeletion(user, ScramMechanism.SCRAM_SHA_512)
    admin.alter_user_scram_credentials([deletion])[user].result(20)


def login_error(bootstrap: str, user: str, password: str) -> int:
    """0 when `user` logs in with `password`, else the broker's error code."""
    with RawClient(bootstrap) as raw:
        try:
            login(raw, MECHANISM, user, password)
        except SaslLoginFailed as failed:
            return failed.code
    return 0


def alter_quota(bootstrap: str, client_id: str, value: float | None) -> None:
    """Set producer_byte_rate for `client_id`, or remove it (None)."""
    op = {"key": "producer_byte_rate", "value": value or 0.0, "remove": value is None}
    entity = [{"entity_type": "client-id", "entity_name": client_id}]
    with RawClient(bootstrap) as raw:
        response = raw.request(
            ALTER_CLIENT_QUOTAS, 1, entries=[{"entity": entity, "ops": [op]}], validate_only=False
        )
    assert [int(e.error_code) for e in response.entries] == [0]


def partitions_led_by(bootstrap: str, topic: str, node_id: int) -> list[int]:
    with RawClient(bootstrap) as raw:
        (found,) = wire.metadata(raw, [topic]).topics
    return [p.partition_index for p in found.partitions if p.leader_id == node_id]


def throttle_ms(bootstrap: str, client_id: str, topic: str, partition: int) -> int:
    """Produce PAYLOAD bytes as `client_id` on a new connection (a throttled one is
    muted for the throttle); the response's throttle_time_ms."""
    batch = wire.encode_batch([b"x" * PAYLOAD])
    with RawClient(bootstrap, client_id=client_id) as raw:
        response = raw.request(PRODUCE, 9, **wire.produce_fields(topic, batch, partition, -1, None))
    assert response.responses[0].partition_responses[0].error_code == 0
    return int(response.throttle_time.total_seconds() * 1000)


def test_credentials_and_quotas_changed_through_one_broker_hold_on_another(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url = postgres_server.create_database()
    (tmp_path / "objects").mkdir()
    objects = (tmp_path / "objects").as_uri()
    one = InProcessBroker(
        tmp_path / "one", {"node.id": "1", "metadata.url": url, **SETTINGS}, object_store=objects
    )
    two = InProcessBroker(
        tmp_path / "two", {"node.id": "2", "metadata.url": url, **SETTINGS}, object_store=objects
    )
    try:
        one.start()
        two.start()
        # Broker 2 registered (and heartbeat) before this: its next timed heartbeat is
        # no earlier than this plus the interval.
        heartbeat_due = time.monotonic() + INTERVAL_S
        assert two.broker is not None and two.broker.registry is not None
        listener = two.broker.registry.listener
        assert isinstance(listener, GenerationListener)
        wait_until(listener.listening.is_set, 30, "broker 2 listens for changes")
        admin_one = address(one, "PLAINTEXT")
        plain_two, sasl_two = address(two, "PLAINTEXT"), address(two, "SASL_PLAINTEXT")

        assert login_error(sasl_two, "erin", "first") == SASL_AUTHENTICATION_FAILED
        set_password(admin_one, "erin", "first")
        wait_until(
            lambda: login_error(sasl_two, "erin", "first") == 0,
            20,
            "the user created through broker 1 logs in on broker 2",
        )

        set_password(admin_one, "erin", "second")
        wait_until(
            lambda: login_error(sasl_two, "erin", "first") == SASL_AUTHENTICATION_FAILED,
            20,
            "broker 2 refuses the old password",
        )
        assert login_error(sasl_two, "erin", "second") == 0

        delete_user(admin_one, "erin")
        wait_until(
            lambda: login_error(sasl_two, "erin", "second") == SASL_AUTHENTICATION_FAILED,
            20,
            "broker 2 refuses the deleted user",
        )

        with RawClient(admin_one) as raw:
            assert wire.create_topic(raw, "metered", partitions=4).error_code == 0
        led = wait_until(
            lambda: partitions_led_by(plain_two, "metered", 2), 30, "a partition led by broker 2"
        )[0]
        assert throttle_ms(plain_two, "metered-producer", "metered", led) == 0
        alter_quota(admin_one, "metered-producer", QUOTA)
        wait_until(
            lambda: throttle_ms(plain_two, "metered-producer", "metered", led) > 0,
            30,
            "broker 2 throttles the producer over the quota set through broker 1",
        )
        alter_quota(admin_one, "metered-producer", None)
        wait_until(
            lambda: throttle_ms(plain_two, "metered-producer", "metered", led) == 0,
            30,
            "broker 2 stops throttling once the quota is removed through broker 1",
        )
        # None of it could have come by broker 2's heartbeat.
        assert time.monotonic() < heartbeat_due
    finally:
        one.stop()
        two.stop()
