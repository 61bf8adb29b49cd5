"""What the move tests share: two brokers on one PostgreSQL and one `file://` object
store (broker 1 starts first and holds the controller), and an idempotent acks=all
producer writing `m0, m1, ...` to one partition on its own thread while the partition
moves, counting what was acknowledged and what failed."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from confluent_kafka import KafkaException, Producer

from tests.support.inprocess import InProcessBroker
from tests.support.wait import wait_until


def cluster_broker(
    data_dir: Path, node_id: int, url: str, objects: str, extra: Mapping[str, str] | None = None
) -> InProcessBroker:
    """A broker of the test cluster; `extra` settings on top of the cluster's."""
    return InProcessBroker(
        data_dir,
        object_store=objects,
        settings={
            "metadata.url": url,
            "node.id": str(node_id),
            "broker.rack": f"rack-{node_id}",
            "broker.heartbeat.interval.ms": "200",
            "broker.session.timeout.ms": "3000",
            "group.initial.rebalance.delay.ms": "0",
            # Retained ranges stay the objects they are: the tests compare them.
            "object.compaction.enable": "false",
            **(extra or {}),
        },
    )


@contextmanager
def two_brokers(
    tmp_path: Path, url: str, extra: Mapping[str, str] | None = None
) -> Iterator[tuple[InProcessBroker, InProcessBroker]]:
    """Brokers 1 and 2 (with `extra` settings), once broker 1 sees broker 2; both stopped
    after."""
    (tmp_path / "objects").mkdir()
    objects = (tmp_path / "objects").as_uri()
    one = cluster_broker(tmp_path / "one", 1, url, objects, extra).start()
    two = cluster_broker(tmp_path / "two", 2, url, objects, extra).start()
    try:
        assert one.broker is not None and two.broker is not None
        registry = one.broker.registry
        assert registry is not None
        wait_until(lambda: registry.live_ids == {1, 2}, 10, "broker 1 sees broker 2")
        yield one, two
    finally:
        two.stop()
        one.stop()


class MovingProducer:
    """Produces `m{n}` to `topic`-`partition` until stopped; `acked` holds the offsets
    acknowledged, `errors` every delivery failure."""

    def __init__(self, bootstrap: str, topic: str, partition: int) -> None:
        self._producer = Producer(
            {"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True}
        )
        self._topic, self._partition = topic, partition
        self.acked: list[int] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce)

    def start(self) -> MovingProducer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(90)

    def _ack(self, error: object, message: object) -> None:
        if error is not None:
            self.errors.append(str(error))
        else:
            self.acked.append(message.offset())  # type: ignore[attr-defined]

    def _produce(self) -> None:
        n = 0
        while not self._stop.is_set():
            try:
                self._producer.produce(
                    self._topic, value=f"m{n}".encode(), partition=self._partition,
                    on_delivery=self._ack,
                )  # fmt: skip
                n += 1
            except (BufferError, KafkaException):
                pass  # queue full or partition moving: not sent, never counted as acked
            self._producer.poll(0.002)
        self._producer.flush(60)
