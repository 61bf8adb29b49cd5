"""A broker on PostgreSQL through PostgreSQL outages, with real clients: its backends
killed mid-traffic, then the server stopped for ~10 s while a producer runs. Produce is
acknowledged from the WAL throughout; requests that need the metadata store answer (an
error or a success) within the request timeout; once PostgreSQL is back everything
resumes without a broker restart, and every acknowledged record is read back from the
objects PostgreSQL's index names, each once."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.e2e.test_produce_fetch import consume_all
from tests.support.broker import BrokerProcess
from tests.support.postgres import PostgresServer
from tests.support.wait import wait_until

pytestmark = pytest.mark.slow

TOPIC = "through-outages"
PARTITIONS = 3
OUTAGE_S = 10.0
CALL_TIMEOUT_MS = 3_000
# Liveness bounds (a busy machine's margin; no performance claim).
REQUEST_BOUND_S = 40.0
CATCH_UP_S = 60.0
SETTINGS = {
    # A lone broker acknowledges from its WAL alone for one session less one heartbeat
    # interval after it last reached the store (RFC 0004 §5's outage path; 5 s by
    # default, which a loaded machine's producer outlasts): longer than the outage.
    "broker.session.timeout.ms": "30000",
    "upload.interval.ms": "50",
    "shutdown.timeout.ms": "120000",
    "metadata.postgresql.call.timeout.ms": str(CALL_TIMEOUT_MS),
}


def idempotent_producer(bootstrap: str) -> Producer:
    return Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})


def produce(producer: Producer, start: int, count: int, failures: list[str]) -> None:
    def delivered(err: KafkaError | None, _message: object) -> None:
        if err is not None:
            failures.append(str(err))

    for i in range(start, start + count):
        producer.produce(TOPIC, key=str(i).encode(), value=b"v" * 100, on_delivery=delivered)
        if i % 10 == 0:
            producer.poll(0)
            time.sleep(0.01)  # spread over the backend kills
    if producer.flush(REQUEST_BOUND_S * 2) != 0:
        failures.append("not every record was acknowledged")


def uploaded_records(url: str) -> tuple[int, bool]:
    """Records of TOPIC the object index covers, and whether each partition's ranges
    are contiguous from 0 (no overlap, no gap)."""
    with psycopg.connect(url) as db:
        rows = db.execute(
            "SELECT r.stream_id, r.base_offset, r.end_offset FROM ranges r"
            " JOIN partitions p ON p.stream_id = r.stream_id WHERE p.topic = %s ORDER BY 1, 2",
            (TOPIC,),
        ).fetchall()
    total, contiguous, ends = 0, True, {}
    for stream, base, end in rows:
        contiguous &= ends.get(stream, 0) == base
        ends[stream] = end
        total += end - base
    return total, contiguous


def wait_for_uploads(url: str, broker: BrokerProcess, expected: int) -> None:
    try:
        wait_until(lambda: uploaded_records(url) == (expected, True), CATCH_UP_S, "uploads")
    except AssertionError:
        raise AssertionError(
            f"uploads did not catch up: {uploaded_records(url)}\n{broker.log_tail(60)}"
        ) from None


def committed_offset(bootstrap: str, group: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        (tp,) = consumer.committed([TopicPartition(TOPIC, 0)], timeout=REQUEST_BOUND_S)
        return int(tp.offset)
    finally:
        consumer.close()


def commit_offset(bootstrap: str, group: str, offset: int) -> None:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        consumer.commit(offsets=[TopicPartition(TOPIC, 0, offset)], asynchronous=False)
    finally:
        consumer.close()


def read_back_from_objects(broker: BrokerProcess, expected: int) -> list[int]:
    """Every key, after a clean stop and a restart without the WAL: from objects only."""
    broker.stop(timeout_s=180)
    (broker.data_dir / "wal").rename(broker.data_dir / "wal-aside")
    broker.start()
    return sorted(int(m.key()) for m in consume_all(broker.bootstrap, TOPIC, PARTITIONS, expected))


def test_killed_backends_mid_traffic_lose_nothing(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url = postgres_server.create_database()
    database = url.rpartition("/")[2]
    broker = BrokerProcess(tmp_path / "broker", metadata_url=url, settings=SETTINGS).start()
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])[TOPIC].result(REQUEST_BOUND_S)
        commit_offset(broker.bootstrap, "g", 7)
        failures: list[str] = []
        producer = threading.Thread(
            target=produce, args=(idempotent_producer(broker.bootstrap), 0, 3000, failures)
        )
        producer.start()
        killed = 0
        with psycopg.connect(url, autocommit=True) as admin_db:
            while producer.is_alive():
                killed += sum(
                    1
                    for (done,) in admin_db.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = %s AND pid <> pg_backend_pid()",
                        (database,),
                    )
                    if done
                )
                time.sleep(0.2)
        producer.join()
        assert failures == [], broker.log_tail()
        assert killed > 0
        wait_for_uploads(url, broker, 3000)
        assert broker.process is not None and broker.process.poll() is None
        assert "connection lost" in broker.log_tail(2000)
        assert committed_offset(broker.bootstrap, "g") == 7
        assert read_back_from_objects(broker, 3000) == list(range(3000))
    finally:
        broker.stop()


def test_a_stopped_postgresql_is_survived_and_found_again(tmp_path: Path) -> None:
    server = PostgresServer().start()
    url = server.create_database()
    broker = BrokerProcess(tmp_path / "broker", metadata_url=url, settings=SETTINGS)
    try:
        broker.start()
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])[TOPIC].result(REQUEST_BOUND_S)
        failures: list[str] = []
        producer = idempotent_producer(broker.bootstrap)  # its producer id taken now
        produce(producer, 0, 1000, failures)
        commit_offset(broker.bootstrap, "g", 100)

        server.halt()
        outage_started = time.monotonic()
        produce(producer, 1000, 1000, failures)  # acknowledged from the WAL alone
        assert failures == [], broker.log_tail()
        assert broker.process is not None and broker.process.poll() is None
        # A request that needs the store answers within the request timeout, with a
        # retriable error (REQUEST_TIMED_OUT), and the connection stays up.
        asked = time.monotonic()
        created = admin.create_topics([NewTopic("during", 1, 1)], request_timeout=30)["during"]
        error = created.exception(timeout=REQUEST_BOUND_S)
        assert time.monotonic() - asked < REQUEST_BOUND_S
        assert isinstance(error, KafkaException), error
        assert error.args[0].code() == KafkaError.REQUEST_TIMED_OUT, error
        # Requests that do not need it are served as usual.
        assert TOPIC in admin.list_topics(timeout=REQUEST_BOUND_S).topics
        # A new idempotent producer cannot get an id (COORDINATOR_LOAD_IN_PROGRESS): it
        # retries, and its records go out once the server is back.
        late = idempotent_producer(broker.bootstrap)
        for i in range(2000, 2010):
            late.produce(TOPIC, key=str(i).encode(), value=b"late")
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - outage_started)))
        server.resume()

        def creates() -> bool:
            result = admin.create_topics([NewTopic("after", 1, 1)])["after"]
            error = result.exception(timeout=REQUEST_BOUND_S)
            return error is None or error.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS

        wait_until(creates, CATCH_UP_S, "CreateTopics succeeding again")
        assert late.flush(CATCH_UP_S) == 0
        assert committed_offset(broker.bootstrap, "g") == 100
        commit_offset(broker.bootstrap, "g", 150)
        assert committed_offset(broker.bootstrap, "g") == 150
        wait_for_uploads(url, broker, 2010)
        assert read_back_from_objects(broker, 2010) == list(range(2010))
    finally:
        broker.stop()
        server.stop()
