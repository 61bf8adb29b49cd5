"""Reading `_schemas` and `__contextplane_masking` from the broker that leads them
(broker/topic_follower.py), against a real broker: the follower reads to the high
watermark the leader answers after the caller's ticket, concurrent callers share one
probe, a leader that does not answer is a FollowError within the time allowed; the
masking policies and the schema catalog folded through it on a broker whose own storage
says another node leads the topic, and failing closed when the leader cannot be read;
`contextplane.internal.client.config` checked at load."""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from contextplane.broker.masking_policies import MaskingPolicies
from contextplane.broker.schema_catalog import NOT_REGISTERED, UNAVAILABLE, SchemaCatalog
from contextplane.broker.schema_ids import carried
from contextplane.broker.subject_strategies import Strategy
from contextplane.broker.topic_follower import FollowError, TopicFollower
from contextplane.metadata.store import open_metadata_store
from contextplane.security.masking_policy import MASKING_TOPIC
from contextplane.services.schema_registry.records import encode, schema_key
from contextplane.settings import Settings, SettingsError, load_settings
from contextplane.storage.engine import StorageEngine
from contextplane.storage.memory_objects import MemoryObjectStore
from contextplane.storage.memory_wal import MemoryWal, WalMedium
from tests.support.broker import free_port
from tests.support.inprocess import InProcessBroker


@pytest.fixture(scope="module")
def leader(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessBroker]:
    running = InProcessBroker(tmp_path_factory.mktemp("leader")).start()
    admin = AdminClient({"bootstrap.servers": running.bootstrap})
    compacted = {"cleanup.policy": "compact"}
    topics = [NewTopic(name, 1, 1, config=compacted) for name in ("followed", "_schemas")]
    for future in admin.create_topics(topics).values():
        future.result(20)
    yield running
    running.stop()


def write(bootstrap: str, topic: str, records: list[tuple[bytes, bytes | None]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for key, value in records:
        producer.produce(topic, value, key=key)
    assert producer.flush(20) == 0


def unreachable() -> str:
    return f"127.0.0.1:{free_port()}"


def test_reads_to_the_high_watermark_asked_after_the_ticket(leader: InProcessBroker) -> None:
    write(leader.bootstrap, "followed", [(b"a", b"1"), (b"b", b"2"), (b"a", None)])

    async def scenario() -> None:
        follower = TopicFollower("followed", lambda: leader.bootstrap)
        try:
            marks = await follower.end_since(follower.ticket())
            assert (marks.log_start, marks.high) == (0, 3)
            chunk = await follower.read(0, marks.high)
            assert [(r.offset, r.key, r.value) for r in chunk.records] == [
                (0, b"a", b"1"),
                (1, b"b", b"2"),
                (2, b"a", None),
            ]
            assert chunk.position == 3
            # Callers that arrived together share one probe started after them.
            ticket = follower.ticket()
            answers = await asyncio.gather(*(follower.end_since(ticket) for _ in range(5)))
            assert {a.high for a in answers} == {3} and follower.ticket() == ticket + 1
            # A record acknowledged before the next ticket is seen: the probe is fresh.
            await asyncio.to_thread(write, leader.bootstrap, "followed", [(b"c", b"3")])
            marks = await follower.end_since(follower.ticket())
            assert marks.high == 4
            chunk = await follower.read(3, marks.high)
            assert [(r.offset, r.key) for r in chunk.records] == [(3, b"c")]
        finally:
            await follower.close()

    asyncio.run(scenario())


def test_a_leader_that_does_not_answer_is_an_error_within_the_timeout() -> None:
    """...shared by the callers that arrived before the probe: one probe fails them all,
    rather than each waiting for a probe of its own."""

    async def scenario() -> None:
        follower = TopicFollower("followed", unreachable, timeout_ms=300)
        try:
            with pytest.raises(FollowError):
                await follower.end_since(follower.ticket())
            ticket = follower.ticket()
            answers = await asyncio.gather(
                *(follower.end_since(ticket) for _ in range(5)), return_exceptions=True
            )
            assert all(isinstance(a, FollowError) for a in answers)
            assert follower.ticket() == ticket + 1
        finally:
            await follower.close()

    asyncio.run(scenario())


async def engine_led_elsewhere(tmp_path: Path, topic: str) -> StorageEngine:
    """A broker's storage engine whose mirror says node 2 leads `topic`."""
    settings = Settings(data_dir=tmp_path, upload_interval_ms=3_600_000)
    metadata = open_metadata_store(f"sqlite:///{tmp_path / 'metadata.db'}")
    await metadata.open()
    engine = StorageEngine(
        settings, metadata, wal=MemoryWal(WalMedium()), objects=MemoryObjectStore()
    )
    await engine.open()
    engine.led_elsewhere[(topic, 0)] = (2, 1)
    return engine


def test_masking_policies_are_folded_from_the_leader_and_fail_closed_without_it(
    leader: InProcessBroker, tmp_path: Path
) -> None:
    policy = {"principal": "User:copilot", "topic": "people", "tags": ["PII"], "action": "null"}
    write(leader.bootstrap, MASKING_TOPIC, [(b"pii", json.dumps(policy).encode())])

    async def scenario() -> None:
        engine = await engine_led_elsewhere(tmp_path, MASKING_TOPIC)
        policies = MaskingPolicies()
        policies.remote = TopicFollower(MASKING_TOPIC, lambda: leader.bootstrap)
        try:
            # A topic in the topic table whose leader the mirror has not noted yet is read
            # from its leader all the same (else: no policies, records in clear).
            noted = engine.led_elsewhere.pop((MASKING_TOPIC, 0))
            assert not policies.behind(engine) and policies.behind(engine, exists=True)
            await policies.catch_up(engine, policies.ticket(), exists=True)
            assert policies.any and not policies.incomplete
            engine.led_elsewhere[(MASKING_TOPIC, 0)] = noted
            await policies.catch_up(engine, policies.ticket())
            assert not policies.incomplete
            assert [p.name for p in policies.covering("User:copilot", "people")] == ["pii"]
            assert policies.behind(engine)  # asked again at every fetch: the leader is elsewhere
            # A tombstone written before the next fetch arrived is in force for it.
            await asyncio.to_thread(write, leader.bootstrap, MASKING_TOPIC, [(b"pii", None)])
            await policies.catch_up(engine, policies.ticket())
            assert not policies.any
            # The leader cannot be read: fail closed.
            await policies.remote.close()
            policies.remote = TopicFollower(MASKING_TOPIC, unreachable, timeout_ms=300)
            await policies.catch_up(engine, policies.ticket())
            assert policies.incomplete
        finally:
            await policies.remote.close()
            await engine.close()
            await engine.metadata.close()

    asyncio.run(scenario())


def test_the_schema_catalog_is_folded_from_the_leader_and_refuses_without_it(
    leader: InProcessBroker, tmp_path: Path
) -> None:
    value = {"subject": "t-value", "version": 1, "id": 7, "schema": '"string"'}
    key = encode(schema_key("t-value", 1))
    assert key is not None
    write(leader.bootstrap, "_schemas", [(key, encode(value))])
    seven = carried(b"\x00" + struct.pack(">I", 7), False)
    eight = carried(b"\x00" + struct.pack(">I", 8), False)

    async def scenario() -> None:
        engine = await engine_led_elsewhere(tmp_path, "_schemas")
        catalog = SchemaCatalog()
        catalog.remote = TopicFollower("_schemas", lambda: leader.bootstrap)
        try:
            # In the topic table, its leader not noted yet: read from the leader too.
            noted = engine.led_elsewhere.pop(("_schemas", 0))
            async with catalog.current(engine, exists=True):
                assert catalog.refusal(seven, "t", False, Strategy.TOPIC) is None
            engine.led_elsewhere[("_schemas", 0)] = noted
            async with catalog.current(engine):
                assert catalog.refusal(seven, "t", False, Strategy.TOPIC) is None
                refusal = catalog.refusal(eight, "t", False, Strategy.TOPIC)
                assert refusal is not None and refusal[0] == NOT_REGISTERED
            await catalog.remote.close()
            catalog.remote = TopicFollower("_schemas", unreachable, timeout_ms=300)
            async with catalog.current(engine):
                refusal = catalog.refusal(seven, "t", False, Strategy.TOPIC)
                assert refusal is not None and refusal[0] == UNAVAILABLE
        finally:
            await catalog.remote.close()
            await engine.close()
            await engine.metadata.close()

    asyncio.run(scenario())


def test_the_internal_client_config_is_checked_at_load(tmp_path: Path) -> None:
    """A properties file that does not read, maps to nothing librdkafka has, or names a
    security protocol no listener has stops the start with a message naming the setting."""
    sasl = tmp_path / "sasl.properties"
    sasl.write_text(
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\nsasl.jaas.config="
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        'username="broker" password="secret";\n'
    )
    keystore = tmp_path / "jks.properties"
    keystore.write_text("security.protocol=SSL\nssl.keystore.type=JKS\n")
    refused = {
        str(tmp_path / "missing.properties"): "No such file or directory",
        str(keystore): "only PEM files can be used",
        str(sasl): "no listener is SASL_PLAINTEXT",
    }
    for path, problem in refused.items():
        with pytest.raises(SettingsError, match=problem) as caught:
            load_settings(environ={}, overrides={"contextplane.internal.client.config": path})
        assert str(caught.value).startswith("contextplane.internal.client.config: ")
    listeners = "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0"
    jaas = 'org.apache.kafka.common.security.plain.PlainLoginModule required user_broker="s";'
    settings = load_settings(
        environ={},
        overrides={
            "listeners": listeners,
            "sasl.enabled.mechanisms": "PLAIN",
            "listener.name.sasl_plaintext.plain.sasl.jaas.config": jaas,
            "contextplane.internal.client.config": str(sasl),
        },
    )
    assert settings.internal_client_config == str(sasl)
