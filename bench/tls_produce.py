"""Produce throughput over TLS as a ratio to PLAINTEXT, on one broker in the same run.

    .venv/bin/python -m bench.tls_produce [--rounds 5] [--mb 100]

One broker process (`contextplane up`) with a PLAINTEXT and an SSL listener (a CA and a
server certificate made for the run). Each round produces `--mb` MB of 1 KiB values with
confluent-kafka (acks=all, lz4-incompressible values, one producer per round) through
one listener, then the other, alternating which goes first, so load from other work on
the machine falls on both alike. Prints one JSON line per round, then the medians: MB/s,
the broker's CPU seconds per MB (user + system, from /proc), and the SSL / PLAINTEXT
ratios (throughput below 1: TLS is slower; CPU above 1: TLS costs more).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from tests.support.broker import BrokerProcess, free_port
from tests.support.tls import TestCa

VALUE_BYTES = 1024


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _produce(config: dict[str, Any], topic: str, megabytes: int) -> float:
    value = base64.b64encode(os.urandom(VALUE_BYTES))[:VALUE_BYTES]
    count = megabytes * 1_000_000 // VALUE_BYTES
    producer = Producer(
        {
            **config,
            "acks": "all",
            "linger.ms": 5,
            "batch.size": 1_000_000,
            "queue.buffering.max.kbytes": 65536,
        }
    )
    started = time.perf_counter()
    for _ in range(count):
        while True:
            try:
                producer.produce(topic, value=value)
                break
            except BufferError:
                producer.poll(0.01)
    if producer.flush(120) != 0:
        raise RuntimeError("not every message was delivered")
    return count * VALUE_BYTES / 1e6 / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.tls_produce")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mb", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-tls-") as tmp:
        where = Path(tmp)
        ca = TestCa()
        ca_path = ca.write(where / "ca.pem")
        keystore = ca.issue("broker", server=True).write(where / "broker.pem")
        plain_port, ssl_port = free_port(), free_port()
        broker = BrokerProcess(
            where / "data",
            port=plain_port,
            settings={
                "listeners": f"PLAINTEXT://127.0.0.1:{plain_port},SSL://127.0.0.1:{ssl_port}",
                "ssl.keystore.location": str(keystore),
            },
        ).start()
        try:
            assert broker.process is not None
            configs = {
                "PLAINTEXT": {"bootstrap.servers": f"127.0.0.1:{plain_port}"},
                "SSL": {
                    "bootstrap.servers": f"127.0.0.1:{ssl_port}",
                    "security.protocol": "SSL",
                    "ssl.ca.location": str(ca_path),
                },
            }
            _produce(configs["PLAINTEXT"], "warm-up", 5)
            results: dict[str, list[tuple[float, float]]] = {name: [] for name in configs}
            for round_index in range(args.rounds):
                order = list(configs) if round_index % 2 == 0 else list(reversed(configs))
                for name in order:
                    cpu_before = _cpu_s(broker.process.pid)
                    rate = _produce(configs[name], f"bench-{name.lower()}", args.mb)
                    cpu_per_mb = (_cpu_s(broker.process.pid) - cpu_before) / args.mb
                    results[name].append((rate, cpu_per_mb))
                    print(
                        json.dumps(
                            {
                                "round": round_index,
                                "listener": name,
                                "mb_per_s": round(rate, 1),
                                "broker_cpu_s_per_mb": round(cpu_per_mb, 5),
                            }
                        ),
                        flush=True,
                    )
        finally:
            broker.stop()
    medians = {
        name: (statistics.median(r for r, _ in rows), statistics.median(c for _, c in rows))
        for name, rows in results.items()
    }
    print(
        json.dumps(
            {
                "median_mb_per_s": {n: round(m[0], 1) for n, m in medians.items()},
                "median_broker_cpu_s_per_mb": {n: round(m[1], 5) for n, m in medians.items()},
                "ssl_to_plaintext_throughput": round(
                    medians["SSL"][0] / medians["PLAINTEXT"][0], 3
                ),
                "ssl_to_plaintext_broker_cpu": round(
                    medians["SSL"][1] / medians["PLAINTEXT"][1], 3
                ),
            }
        )
    )


if __name__ == "__main__":
    main()
