"""The context service against a running cluster: how fast it applies a backlog of source
records (the service stopped with SIGSTOP while they are produced, then resumed) next to
the broker's own produce rate for the same records, get latency, and how long a read
fence waits for a record just produced. Rounds interleave produce and apply. Then a
steady event rate (`--steady-rate` records/s for `--steady-seconds`) with gets back to
back: their latency and the freshness age and lag each answer reports. Then
point-in-time reads (`as_of`) next to plain gets, interleaved: at vectors the view passed
within its kept snapshots, and at older ones read from the log start.

    .venv/bin/python -m bench.context_service --bootstrap 127.0.0.1:9092

The producer and the HTTP clients run in this process, on the same cores as the service
and (usually) the broker: the figures are what one such machine gets.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from contextplane.services.context.client import ContextClient, ContextClientError, EntityContext

READY = re.compile(r"contextplane context ready on \S+:(\d+)")
ACCOUNTS = 1_000
PARTITIONS = 2


def views_file(directory: Path, tickets: str) -> Path:
    path = directory / "views.toml"
    path.write_text(
        f"""
[[views.account.sources]]
topic = "{tickets}"
entity_id = "value.account.id"
field = "tickets"
merge = "list"
max_items = 20
"""
    )
    return path


def produce(bootstrap: str, topic: str, count: int, start: int = 0) -> tuple[float, dict[int, int]]:
    """Seconds to produce and have acknowledged `count` records; the last offset per partition."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all"})
    last: dict[int, int] = {}

    def delivered(error: Any, message: Any) -> None:
        assert error is None, error
        last[message.partition()] = max(message.offset(), last.get(message.partition(), -1))

    began = time.perf_counter()
    for n in range(start, start + count):
        value = {"account": {"id": f"a{n % ACCOUNTS}"}, "n": n, "subject": "x" * 120}
        while True:
            try:
                producer.produce(
                    topic,
                    key=str(n).encode(),
                    value=json.dumps(value).encode(),
                    on_delivery=delivered,
                )
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    producer.flush(120)
    return time.perf_counter() - began, last


Vector = dict[tuple[str, int], int]


def positions_of(answer: EntityContext) -> Vector:
    """The positions an answer reflects: the vector a copilot would record with it."""
    return {(p.topic, p.partition): p.position for p in answer.freshness.partitions}


def as_of_samples(
    client: ContextClient, vectors: list[Vector], count: int
) -> tuple[list[float], list[float]]:
    """Seconds of plain gets and of as_of reads at `vectors` (taken in turn), interleaved."""
    rng = random.Random(7)
    plain, past = [], []
    for n in range(count):
        entity = f"a{rng.randrange(ACCOUNTS)}"
        began = time.perf_counter()
        client.get("account", entity)
        plain.append(time.perf_counter() - began)
        began = time.perf_counter()
        client.get("account", entity, as_of=vectors[n % len(vectors)])
        past.append(time.perf_counter() - began)
    return plain, past


def steady(
    bootstrap: str, topic: str, client: ContextClient, rate: int, seconds: float, start: int
) -> tuple[list[float], list[float], list[float]]:
    """Records produced at `rate` per second for `seconds` (a thread, paced every 10 ms)
    while this thread reads entities back to back: each read's seconds, the freshness age
    it reported (ms) and its lag (offsets behind the high watermarks the loop last saw)."""
    done = threading.Event()

    def pace() -> None:
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1})
        began, sent = time.perf_counter(), 0
        while (elapsed := time.perf_counter() - began) < seconds:
            for n in range(sent, int(elapsed * rate)):
                value = {"account": {"id": f"a{n % ACCOUNTS}"}, "n": start + n}
                producer.produce(topic, key=str(start + n).encode(), value=json.dumps(value))
            sent = max(sent, int(elapsed * rate))
            producer.poll(0)
            time.sleep(0.01)
        producer.flush(60)
        done.set()

    thread = threading.Thread(target=pace, daemon=True)
    thread.start()
    reads, ages, lags = [], [], []
    n = 0
    while not done.is_set():
        began = time.perf_counter()
        answer = client.get("account", f"a{n % ACCOUNTS}")
        reads.append(time.perf_counter() - began)
        if answer.freshness.age_ms is not None:
            ages.append(float(answer.freshness.age_ms))
        lags.append(float(answer.freshness.lag or 0))
        n += 1
    thread.join()
    return reads, ages, lags


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--gets", type=int, default=2_000)
    parser.add_argument("--snapshot-every", type=int, default=10_000)
    parser.add_argument("--as-of-reads", type=int, default=200)
    parser.add_argument("--steady-rate", type=int, default=500, help="records/s")
    parser.add_argument("--steady-seconds", type=float, default=20.0)
    args = parser.parse_args()
    run = uuid.uuid4().hex[:8]
    tickets, sink = f"bench.tickets.{run}", f"bench.produce.{run}"
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    for future in admin.create_topics(
        [NewTopic(t, PARTITIONS, 1) for t in (tickets, sink)]
    ).values():
        future.result(60)
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        service = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "contextplane.cli.launch",
                "context",
                "--bootstrap",
                args.bootstrap,
                "--views",
                str(views_file(directory, tickets)),
                "--port",
                "0",
                "--name",
                f"bench-{run}",
                "--data-dir",
                str(directory / "data"),
                "--log-level",
                "WARNING",
                "--snapshot-every-records",
                str(args.snapshot_every),
                "--as-of-timeout-ms",
                "60000",
            ],
            stdout=subprocess.PIPE,
        )
        try:
            assert service.stdout is not None
            port = 0
            for line in service.stdout:
                found = READY.search(line.decode())
                if found:
                    port = int(found.group(1))
                    break
            client = ContextClient(f"http://127.0.0.1:{port}", timeout_s=60)
            produced = 0
            produce_rates, apply_rates = [], []
            round_ends: list[Vector] = []  # the view's positions at the end of each round
            for _ in range(args.rounds):
                seconds, _ = produce(args.bootstrap, sink, args.records, produced)
                produce_rates.append(args.records / seconds)
                service.send_signal(signal.SIGSTOP)
                _, last = produce(args.bootstrap, tickets, args.records, produced)
                produced += args.records
                fence = {(tickets, p): offset for p, offset in last.items()}
                began = time.perf_counter()
                service.send_signal(signal.SIGCONT)
                while True:
                    try:
                        answer = client.get("account", "a0", min_offsets=fence, timeout_ms=30_000)
                        round_ends.append(positions_of(answer))
                        break
                    except ContextClientError as exc:
                        if exc.kind != "fence-timeout":
                            raise
                apply_rates.append(args.records / (time.perf_counter() - began))

            sdk, keep_alive = [], []
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            for n in range(args.gets):
                began = time.perf_counter()
                client.get("account", f"a{n % ACCOUNTS}")
                sdk.append(time.perf_counter() - began)
                began = time.perf_counter()
                connection.request("GET", f"/v1/views/account/entities/a{n % ACCOUNTS}")
                connection.getresponse().read()
                keep_alive.append(time.perf_counter() - began)
            fence_waits = []
            seen: list[Vector] = []  # what each fenced read reflected, as a copilot records it
            for n in range(200):
                _, last = produce(args.bootstrap, tickets, 1, produced + n)
                began = time.perf_counter()
                fence = {(tickets, p): offset for p, offset in last.items()}
                answer = client.get("account", f"a{(produced + n) % ACCOUNTS}", min_offsets=fence)
                fence_waits.append(time.perf_counter() - began)
                seen.append(positions_of(answer))
            produced += 200
            loaded = steady(
                args.bootstrap, tickets, client, args.steady_rate, args.steady_seconds, produced
            )
            produced += int(args.steady_rate * args.steady_seconds)
            freshness = client.views()["views"]["account"]["freshness"]
            total = sum(p["position"] for p in freshness["partitions"])
            time.sleep(2)  # the snapshot thread looks once a second
            recent = as_of_samples(client, seen, args.as_of_reads)
            # The ends of the first rounds: older than the snapshots kept.
            old = as_of_samples(client, round_ends[:-1], max(8, args.as_of_reads // 20))
        finally:
            service.send_signal(signal.SIGCONT)
            service.terminate()
            service.wait(30)

    def ms(samples: list[float], q: float) -> str:
        return f"{percentile(samples, q) * 1000:.2f}"

    print(f"records per round: {args.records} ({ACCOUNTS} accounts, list of 20 per account)")
    rounds = list(zip(produce_rates, apply_rates, strict=True))
    for n, (p, a) in enumerate(rounds):
        print(f"round {n}: produce {p:,.0f} records/s, apply {a:,.0f} records/s, ratio {a / p:.2f}")
    print(
        f"median: produce {statistics.median(produce_rates):,.0f}/s, "
        f"apply {statistics.median(apply_rates):,.0f}/s, "
        f"ratio {statistics.median(a / p for p, a in rounds):.2f}"
    )
    print(f"get via SDK (new connection each): p50 {ms(sdk, 0.5)} ms, p99 {ms(sdk, 0.99)} ms")
    print(
        f"get on a keep-alive connection: p50 {ms(keep_alive, 0.5)} ms,"
        f" p99 {ms(keep_alive, 0.99)} ms"
    )
    print(
        f"fence wait after the produce ack: p50 {ms(fence_waits, 0.5)} ms, "
        f"p99 {ms(fence_waits, 0.99)} ms"
    )
    reads, ages, lags = loaded
    print(
        f"under a steady {args.steady_rate} records/s for {args.steady_seconds:g} s,"
        f" {len(reads)} gets back to back: get p50 {ms(reads, 0.5)} ms, p99 {ms(reads, 0.99)}"
        f" ms; freshness age p50 {percentile(ages, 0.5):.0f} ms, p99"
        f" {percentile(ages, 0.99):.0f} ms, max {max(ages):.0f} ms; lag p50"
        f" {percentile(lags, 0.5):.0f}, p99 {percentile(lags, 0.99):.0f} offsets"
    )
    print(f"at the end: age {freshness['age_ms']} ms, lag {freshness['lag']}")
    print(f"as_of on {total:,} records, a snapshot every {args.snapshot_every:,} (3 kept):")
    cases = (
        ("at positions fenced reads saw last", recent),
        ("at the ends of earlier rounds", old),
    )
    for name, (plain, past) in cases:
        ratio = statistics.median(past) / statistics.median(plain)
        print(
            f"  {name} ({len(past)} reads): as_of p50 {ms(past, 0.5)} ms, p99 {ms(past, 0.99)}"
            f" ms; plain get p50 {ms(plain, 0.5)} ms; as_of / get {ratio:.1f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
