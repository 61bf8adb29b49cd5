"""A partition's aborted-transaction index in memory is bounded
(`ABORTED_TXNS_IN_MEMORY_MAX`, made 4 here): a client aborting transactions without end
cannot grow the broker's memory. Past the bound the oldest stored entries leave memory,
and a read_committed read below them gets them from the metadata store, as Kafka reads its
.txnindex files: the consumer still drops every aborted record, a Fetch still lists every
aborted transaction, and so after a restart, which loads only the latest entries (fewer
when every partition's together would pass `ABORTED_TXNS_LOADED_MAX`)."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from conformance import wire
from contextplane import limits
from tests.e2e.test_transactions import TIMEOUT_S, _consumer, _producer, _read_values
from tests.support.inprocess import InProcessBroker
from tests.support.rawclient import RawClient
from tests.support.wait import wait_until

KEPT = 4
ROUNDS = 16  # alternating commit and abort: 8 aborted transactions


def test_aborted_transactions_past_the_bound_are_read_from_the_store(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "ABORTED_TXNS_IN_MEMORY_MAX", KEPT)
    data = tmp_path_factory.mktemp("aborted") / "broker"
    broker = InProcessBroker(data, settings={"upload.interval.ms": "100"}).start()
    try:
        topic = f"aborted-{uuid.uuid4().hex[:8]}"
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(TIMEOUT_S)
        producer = _producer(broker, f"tid-{topic}")
        for round_ in range(ROUNDS):
            commit = round_ % 2 == 0
            producer.begin_transaction()
            producer.produce(topic, f"{'c' if commit else 'a'}{round_}".encode())
            producer.flush(TIMEOUT_S)
            if commit:
                producer.commit_transaction(TIMEOUT_S)
            else:
                producer.abort_transaction(TIMEOUT_S)
        end = ROUNDS * 2  # a record and a marker each
        aborted_firsts = [2 * r for r in range(1, ROUNDS, 2)]
        assert broker.broker is not None and broker.broker.storage is not None
        transactions = broker.broker.storage.partition(topic, 0).transactions
        # Uploaded and committed every 100 ms: then the oldest leave memory.
        wait_until(lambda: transactions.stored_before > 0, 30, "aborted entries spilled")
        assert len(transactions.aborted) <= KEPT

        def check(on: InProcessBroker) -> None:
            committed = _read_values(_consumer(on, "read_committed"), topic, end)
            assert committed == [f"c{r}".encode() for r in range(0, ROUNDS, 2)]
            with RawClient(on.bootstrap) as client:
                fetched = wire.fetch_one(client, topic, 0, isolation_level=1)
                listed = sorted(a.first_offset for a in fetched.aborted_transactions)
                assert listed == aborted_firsts
                later = wire.fetch_one(client, topic, 9, isolation_level=1)
                listed = sorted(a.first_offset for a in later.aborted_transactions)
                assert listed == [f for f in aborted_firsts if f >= 8]

        check(broker)
        # What a start loads of every partition's entries together is bounded as well:
        # with room for 2 in all, the one partition loads its latest 2 (not KEPT).
        monkeypatch.setattr(limits, "ABORTED_TXNS_LOADED_MAX", 2)
        monkeypatch.setattr(limits, "ABORTED_TXNS_IN_MEMORY_FLOOR", 1)
        broker.restart()
        assert broker.broker is not None and broker.broker.storage is not None
        reloaded = broker.broker.storage.partition(topic, 0).transactions
        assert len(reloaded.aborted) == 2 and reloaded.stored_before > 0
        check(broker)
    finally:
        broker.stop()
