"""What TLS, SASL, authorization and read receipts cost, as ratios to PLAINTEXT in one run.

    .venv/bin/python -m bench.security [--rounds 5] [--mb 100] [--batch-kb 1000]
        [--fetch-passes 3]

Five configurations, each a broker process (`contextplane up`) of its own except the
first two, which are two listeners of one broker:

    PLAINTEXT          no authorizer, no read receipts
    SASL_SSL           the same broker's SASL_SSL listener, SCRAM-SHA-512 (a CA and a
                       server certificate made for the run; the user added with
                       `contextplane users add` before the broker starts)
    control            another broker process set up as PLAINTEXT's: its ratio to
                       PLAINTEXT is the noise floor of comparing two processes
    authz              PLAINTEXT, StandardAuthorizer with 100 ACLs (98 for other
                       principals and topics; the benchmark's client, User:ANONYMOUS,
                       is allowed by PREFIXED ACLs on `bench-` topics and groups)
    authz+receipts     the same with read receipts on (the default)

Each round produces `--mb` MB of 1 KiB values with confluent-kafka (acks=all, values
lz4 cannot shrink, batches of up to `--batch-kb` KB, one producer per round) to a
one-partition topic, then reads those records back `--fetch-passes` times with a
consumer (assigned the partition from the round's first offset, group `bench-reader`,
timed once it has connected: from the log cache), for every configuration, rotating
which goes first, so load from other work on the machine falls on all alike. One JSON line
per round and configuration, then the medians: produce and fetch MB/s, the broker's CPU
seconds per MB (user + system of its process, from /proc) for each, and every
configuration's ratio to PLAINTEXT (throughput below 1: slower; CPU above 1: costs more):
the ratio of the medians, and the median of the ratios within each round (paired, less
moved by load that changes between rounds).
Authorization and read receipts cost per request and per fetched partition, not per
byte: smaller batches (`--batch-kb 16`) mean more requests per MB, the harder case.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

from tests.support.broker import BrokerProcess, free_port
from tests.support.tls import TestCa

VALUE_BYTES = 1024
ACL_COUNT = 100
USER, PASSWORD = "bench", "bench-secret"
STANDARD_AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
CONFIGS = ("PLAINTEXT", "SASL_SSL", "control", "authz", "authz+receipts")
METRICS = ("produce_mb_per_s", "fetch_mb_per_s", "produce_cpu_s_per_mb", "fetch_cpu_s_per_mb")
NO_RECEIPTS = {"contextplane.audit.read.receipts.enable": "false"}


@dataclass
class Target:
    """One configuration: the broker process that serves it and a client's settings."""

    broker: BrokerProcess
    client: dict[str, Any]
    topic: str

    def cpu_s(self) -> float:
        assert self.broker.process is not None
        stat = Path(f"/proc/{self.broker.process.pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def add_user(data_dir: Path) -> None:
    """The SASL user, as an operator adds one: before the broker starts."""
    done = subprocess.run(
        [sys.executable, "-m", "contextplane.cli.main", "users", "add", USER]
        + ["--data-dir", str(data_dir), "--mechanism", "SCRAM-SHA-512", "--password-stdin"],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr)


def acls() -> list[AclBinding]:
    """ACL_COUNT ACLs: the client's PREFIXED ones and the rest for other principals."""
    anonymous = [
        AclBinding(
            resource,
            "bench-",
            ResourcePatternType.PREFIXED,
            "User:ANONYMOUS",
            "*",
            AclOperation.ALL,
            AclPermissionType.ALLOW,
        )  # fmt: skip
        for resource in (ResourceType.TOPIC, ResourceType.GROUP)
    ]
    others = []
    for i in range(ACL_COUNT - len(anonymous)):
        operation = (AclOperation.READ, AclOperation.WRITE, AclOperation.DESCRIBE)[i % 3]
        pattern = ResourcePatternType.PREFIXED if i % 4 == 0 else ResourcePatternType.LITERAL
        permission = AclPermissionType.DENY if i % 10 == 9 else AclPermissionType.ALLOW
        others.append(AclBinding(ResourceType.TOPIC, f"app-{i}", pattern, f"User:svc-{i % 20}",
                                 "*", operation, permission))  # fmt: skip
    return anonymous + others


def create_acls(client: dict[str, Any]) -> None:
    admin = AdminClient(client)
    for future in admin.create_acls(acls()).values():
        future.result(30)


def create_topic(client: dict[str, Any], topic: str) -> None:
    admin = AdminClient(client)
    admin.create_topics([NewTopic(topic, 1)])[topic].result(30)


def start_authorized(where: Path, name: str, receipts: bool) -> Target:
    """A broker with the authorizer and the ACLs: created while User:ANONYMOUS is a super
    user, then started again without, so every request goes through the ACLs."""
    settings = {"authorizer.class.name": STANDARD_AUTHORIZER}
    if not receipts:
        settings |= NO_RECEIPTS
    broker = BrokerProcess(where / name, settings=settings | {"super.users": "User:ANONYMOUS"})
    broker.start()
    client = {"bootstrap.servers": broker.bootstrap}
    topic = f"bench-{name}"
    create_acls(client)
    create_topic(client, topic)
    broker.stop()
    broker.settings = settings
    broker.start()
    return Target(broker, client, topic)


@contextmanager
def targets(where: Path) -> Iterator[dict[str, Target]]:
    ca = TestCa()
    ca_path = ca.write(where / "ca.pem")
    keystore = ca.issue("broker", server=True).write(where / "broker.pem")
    plain_port, sasl_port = free_port(), free_port()
    add_user(where / "listeners")
    listeners = BrokerProcess(
        where / "listeners",
        port=plain_port,
        settings={
            "listeners": f"PLAINTEXT://127.0.0.1:{plain_port},SASL_SSL://127.0.0.1:{sasl_port}",
            "sasl.enabled.mechanisms": "SCRAM-SHA-512",
            "ssl.keystore.location": str(keystore),
        }
        | NO_RECEIPTS,
    )
    with ExitStack() as stack:
        listeners.start()
        stack.callback(listeners.stop)
        sasl_ssl = {
            "bootstrap.servers": f"127.0.0.1:{sasl_port}",
            "security.protocol": "SASL_SSL",
            "ssl.ca.location": str(ca_path),
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": USER,
            "sasl.password": PASSWORD,
        }
        found = {
            "PLAINTEXT": Target(listeners, {"bootstrap.servers": listeners.bootstrap},
                                "bench-plaintext"),
            "SASL_SSL": Target(listeners, sasl_ssl, "bench-sasl-ssl"),
        }  # fmt: skip
        control = BrokerProcess(where / "control", settings=NO_RECEIPTS)
        control.start()
        stack.callback(control.stop)
        found["control"] = Target(control, {"bootstrap.servers": control.bootstrap},
                                  "bench-control")  # fmt: skip
        for target in found.values():
            create_topic(target.client, target.topic)
        for name, receipts in (("authz", False), ("authz+receipts", True)):
            target = start_authorized(where, name.replace("+", "-"), receipts)
            stack.callback(target.broker.stop)
            found[name] = target
        yield found


def produce(target: Target, megabytes: float, batch_kb: int = 1000) -> tuple[int, float]:
    """The round's first offset and the MB/s of producing `megabytes` MB."""
    value = base64.b64encode(os.urandom(VALUE_BYTES))[:VALUE_BYTES]
    count = int(megabytes * 1_000_000) // VALUE_BYTES
    producer = Producer(
        {
            **target.client,
            "acks": "all",
            "linger.ms": 5,
            "batch.size": batch_kb * 1000,
            "queue.buffering.max.kbytes": 65536,
        }
    )
    first: list[int] = []

    def delivered(error: Any, message: Any) -> None:
        if error is None and not first:
            first.append(message.offset())

    started = time.perf_counter()
    for index in range(count):
        while True:
            try:
                producer.produce(target.topic, value=value, partition=0,
                                 on_delivery=delivered if index == 0 else None)  # fmt: skip
                break
            except BufferError:
                producer.poll(0.01)
    if producer.flush(120) != 0 or not first:
        raise RuntimeError("not every message was delivered")
    return first[0], count * VALUE_BYTES / 1e6 / (time.perf_counter() - started)


def fetch(target: Target, first_offset: int, megabytes: float, passes: int = 1) -> float:
    """MB/s of reading the round's records back from `first_offset`, `passes` times."""
    count = int(megabytes * 1_000_000) // VALUE_BYTES
    consumer = Consumer(
        {
            **target.client,
            "group.id": "bench-reader",
            "client.id": "bench-reader",
            "enable.auto.commit": False,
            # A fetch at the end of the partition waits at most this long for records, so
            # assigning the next pass is not held up by a long poll (500 ms by default).
            "fetch.wait.max.ms": 5,
        }
    )
    try:
        # Connecting and logging in are not fetching: done before the clock starts.
        consumer.get_watermark_offsets(TopicPartition(target.topic, 0), timeout=30)
        started = time.perf_counter()
        for _ in range(passes):
            consumer.assign([TopicPartition(target.topic, 0, first_offset)])
            received = 0
            while received < count:
                batch = consumer.consume(min(10_000, count - received), 10.0)
                if not batch:
                    raise RuntimeError(f"{target.topic}: stalled at {received} of {count}")
                for message in batch:
                    if message.error() is not None:
                        raise RuntimeError(f"{target.topic}: {message.error()}")
                received += len(batch)
        return passes * count * VALUE_BYTES / 1e6 / (time.perf_counter() - started)
    finally:
        consumer.close()


def measure(
    target: Target, megabytes: float, batch_kb: int = 1000, passes: int = 1
) -> dict[str, float]:
    cpu_before = target.cpu_s()
    first, produced = produce(target, megabytes, batch_kb)
    cpu_produced = target.cpu_s()
    fetched = fetch(target, first, megabytes, passes)
    return {
        "produce_mb_per_s": produced,
        "fetch_mb_per_s": fetched,
        "produce_cpu_s_per_mb": (cpu_produced - cpu_before) / megabytes,
        "fetch_cpu_s_per_mb": (target.cpu_s() - cpu_produced) / (megabytes * passes),
    }


def summarise(rows: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    """Medians per configuration, and each one's ratio to PLAINTEXT's."""
    medians = {
        name: {metric: statistics.median(row[metric] for row in found) for metric in METRICS}
        for name, found in rows.items()
    }
    base = medians["PLAINTEXT"]
    others = [name for name in rows if name != "PLAINTEXT"]
    ratios = {name: {m: _ratio(v, base[m]) for m, v in medians[name].items()} for name in others}
    paired = {
        name: {
            m: statistics.median(
                _ratio(row[m], plain[m])
                for row, plain in zip(rows[name], rows["PLAINTEXT"], strict=True)
            )
            for m in METRICS
        }
        for name in others
    }
    return {"medians": medians, "ratios_to_plaintext": ratios, "paired_ratios": paired}


def _ratio(value: float, base: float) -> float:
    return value / base if base else float("nan")


def run(
    rounds: int, megabytes: float, where: Path, batch_kb: int = 1000, passes: int = 1
) -> dict[str, Any]:
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in CONFIGS}
    with targets(where) as found:
        for target in found.values():  # warm up every broker and client path
            measure(target, min(megabytes, 5), batch_kb)
        for round_index in range(rounds):
            shift = round_index % len(CONFIGS)
            for name in CONFIGS[shift:] + CONFIGS[:shift]:
                figures = measure(found[name], megabytes, batch_kb, passes)
                rows[name].append(figures)
                line = {"round": round_index, "config": name}
                print(json.dumps(line | {k: round(v, 5) for k, v in figures.items()}), flush=True)
    return summarise(rows)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.security")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mb", type=float, default=100, help="MB produced and read per round")
    parser.add_argument("--batch-kb", type=int, default=1000, help="the producer's batch.size")
    parser.add_argument("--fetch-passes", type=int, default=3, help="reads of a round's records")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-security-") as tmp:
        summary = run(args.rounds, args.mb, Path(tmp), args.batch_kb, args.fetch_passes)

    def rounded(figures: dict[str, float]) -> dict[str, float]:
        return {k: round(v, 4) for k, v in figures.items()}

    print(json.dumps({k: {n: rounded(f) for n, f in v.items()} for k, v in summary.items()}))


if __name__ == "__main__":
    main()
