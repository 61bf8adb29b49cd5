"""Benchmark: what read receipts and authorization cost a consumer's fetch throughput.

A broker runs in a thread of this process (file WAL, SQLite metadata, as `contextplane
up`) with a preloaded topic; a confluent-kafka consumer reads the whole partition again
and again under three configurations, interleaved round by round so load from elsewhere
on the machine falls on all of them:

    plain        no authorizer, no read receipts
    authz        StandardAuthorizer with an ALLOW READ ACL, no read receipts
    authz+rr     the same with read receipts on (the default)

    .venv/bin/python -m bench.read_receipts [--messages 200000] [--rounds 7]
        [--fetch-max-bytes 1048576] [--batch-messages 100]

Prints the median messages per second of each, and the median CPU time of the broker's
event-loop thread per read (less disturbed by other load on a shared machine than wall
time), with their ratios to `plain`; a smaller `--fetch-max-bytes` means more fetches
per message, the worst case for receipts.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from contextplane.broker.app import Broker
from contextplane.security.acls import AclBinding, Operation, PatternType, Permission, ResourceType
from contextplane.security.authorizer import AllowEverything
from contextplane.settings import STANDARD_AUTHORIZER, Settings

TOPIC = "bench-receipts"


class ThreadedBroker:
    def __init__(self, settings: Settings) -> None:
        self.broker = Broker(settings)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def call(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(120)

    def close(self) -> None:
        self.call(self.broker.stop())
        self.call(_cancel_the_rest())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def read_all(bootstrap: str, messages: int, fetch_max_bytes: int) -> float:
    """Seconds for one consumer to read the partition from offset 0 to its end."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "bench",
            "client.id": "bench-reader",
            "enable.auto.commit": False,
            "fetch.max.bytes": fetch_max_bytes,
            "message.max.bytes": min(fetch_max_bytes, 1_000_000),
            "max.partition.fetch.bytes": fetch_max_bytes,
        }
    )
    try:
        consumer.assign([TopicPartition(TOPIC, 0, 0)])
        started = time.perf_counter()
        received = 0
        while received < messages:
            batch = consumer.consume(10_000, 10.0)
            if not batch:
                raise RuntimeError(f"stalled at {received} of {messages}")
            received += len(batch)
        return time.perf_counter() - started
    finally:
        consumer.close()


def run(messages: int, rounds: int, fetch_max_bytes: int, batch_messages: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(
            data_dir=Path(data_dir),
            port=0,
            authorizer_class_name=STANDARD_AUTHORIZER,
        )
        threaded = ThreadedBroker(settings)
        broker = threaded.broker
        try:
            threaded.call(broker.start())
            bootstrap = f"127.0.0.1:{broker.bound_port}"
            pipeline = broker.pipeline
            assert pipeline is not None
            services = pipeline.services
            acls = services.acls
            assert acls is not None
            standard = services.authorizer
            everyone = "User:*"
            for resource, name in ((ResourceType.TOPIC, TOPIC), (ResourceType.GROUP, "bench")):
                for operation in (Operation.ALL,):
                    binding = AclBinding(resource, name, PatternType.LITERAL, everyone, "*",
                                         operation, Permission.ALLOW)  # fmt: skip
                    threaded.call(_create_acl(acls, binding))
            cluster = AclBinding(ResourceType.CLUSTER, "kafka-cluster", PatternType.LITERAL,
                                 everyone, "*", Operation.ALL, Permission.ALLOW)  # fmt: skip
            threaded.call(_create_acl(acls, cluster))
            threaded.call(broker.topics.create(TOPIC, 1, {}))  # type: ignore[union-attr]
            producer = Producer(
                {
                    "bootstrap.servers": bootstrap,
                    "linger.ms": 20,
                    "batch.num.messages": batch_messages,
                    "queue.buffering.max.messages": messages + 1,
                }
            )
            for i in range(messages):
                producer.produce(TOPIC, value=b"x" * 100, partition=0)
                if i % 10_000 == 0:
                    producer.poll(0)
            assert producer.flush(60) == 0
            receipts = services.receipts
            configs = {
                "plain": (AllowEverything(), None),
                "authz": (standard, None),
                "authz+rr": (standard, receipts),
            }
            times: dict[str, list[float]] = {name: [] for name in configs}
            cpu: dict[str, list[float]] = {name: [] for name in configs}
            read_all(bootstrap, messages, fetch_max_bytes)  # warm the caches
            order = list(configs)
            for round_number in range(rounds):
                # Each configuration takes each place in the order in turn.
                shift = round_number % len(order)
                for name in order[shift:] + order[:shift]:
                    authorizer, with_receipts = configs[name]
                    services.authorizer = authorizer
                    services.receipts = with_receipts
                    cpu_before = threaded.call(_thread_cpu())
                    times[name].append(read_all(bootstrap, messages, fetch_max_bytes))
                    cpu[name].append(threaded.call(_thread_cpu()) - cpu_before)
            services.authorizer, services.receipts = standard, receipts
        finally:
            threaded.close()
    rates = {name: messages / statistics.median(t) for name, t in times.items()}
    cpu_s = {name: statistics.median(c) for name, c in cpu.items()}
    return (
        rates
        | {
            "authz / plain": rates["authz"] / rates["plain"],
            "authz+rr / plain": rates["authz+rr"] / rates["plain"],
            "authz+rr / authz": rates["authz+rr"] / rates["authz"],
        }
        | {f"broker cpu s {name}": value for name, value in cpu_s.items()}
        | {
            "cpu authz / plain": cpu_s["authz"] / cpu_s["plain"],
            "cpu authz+rr / plain": cpu_s["authz+rr"] / cpu_s["plain"],
            "cpu authz+rr / authz": cpu_s["authz+rr"] / cpu_s["authz"],
        }
    )


async def _thread_cpu() -> float:
    """CPU seconds of the broker's event-loop thread so far."""
    return time.thread_time()


async def _cancel_the_rest() -> None:
    """Connections still open when the listener closed."""
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _create_acl(acls: Any, binding: AclBinding) -> None:
    await acls.create([binding])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--fetch-max-bytes", type=int, default=1024 * 1024)
    parser.add_argument("--batch-messages", type=int, default=100, help="records per batch")
    args = parser.parse_args()
    result = run(args.messages, args.rounds, args.fetch_max_bytes, args.batch_messages)
    print(
        f"messages: {args.messages} of 100 bytes in batches of {args.batch_messages}, "
        f"fetch.max.bytes {args.fetch_max_bytes}"
    )
    for name, value in result.items():
        if "/" in name or name.startswith("broker cpu"):
            print(f"{name}: {value:.3f}")
        else:
            print(f"{name}: {value:,.0f} msg/s")


if __name__ == "__main__":
    main()
