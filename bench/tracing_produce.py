"""Produce throughput with OpenTelemetry tracing on, as a ratio to tracing off.

    .venv/bin/python -m bench.tracing_produce [--rounds 5] [--mb 50] [--sample 1.0]

Two broker processes (`contextplane up`) at once: one with `otel.exporter.otlp.endpoint`
naming a real OTLP/HTTP receiver in this process (every span exported and decoded), one
without. Each round produces `--mb` MB of 1 KiB values with confluent-kafka (acks=all)
to one broker, then the other, alternating which goes first, in two shapes: `batched`
(linger 5 ms, batches up to 1 MB: few large requests) and `small` (linger 0, batches of
at most 16 KiB: many requests, so the per-request cost of a span shows). Prints one JSON
line per round, then the medians: MB/s, the broker's CPU seconds per MB (user + system,
from /proc), the spans received, and the on / off ratios (throughput below 1: tracing is
slower; CPU above 1: tracing costs more). `--sample` is the traced broker's
`traceidratio` sampler's ratio (1: every request traced).
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

from tests.support.broker import BrokerProcess
from tests.support.otlp_receiver import OtlpReceiver

VALUE_BYTES = 1024
SHAPES = {
    "batched": {"linger.ms": 5, "batch.size": 1_000_000},
    "small": {"linger.ms": 0, "batch.size": 16_384},
}


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _produce(bootstrap: str, shape: dict[str, Any], topic: str, megabytes: int) -> float:
    value = base64.b64encode(os.urandom(VALUE_BYTES))[:VALUE_BYTES]
    count = megabytes * 1_000_000 // VALUE_BYTES
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "queue.buffering.max.kbytes": 65536,
            **shape,
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
    parser = argparse.ArgumentParser(prog="python -m bench.tracing_produce")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mb", type=int, default=50)
    parser.add_argument(
        "--sample",
        type=float,
        default=1.0,
        help="the traced broker's OTEL_TRACES_SAMPLER_ARG (traceidratio); 1: every request",
    )
    args = parser.parse_args()
    # Read by the traced broker's SDK only (the other one never loads it).
    os.environ["OTEL_TRACES_SAMPLER"] = "traceidratio"
    os.environ["OTEL_TRACES_SAMPLER_ARG"] = str(args.sample)
    receiver = OtlpReceiver().start()
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-tracing-") as tmp:
        brokers = {
            "off": BrokerProcess(Path(tmp) / "off"),
            "on": BrokerProcess(
                Path(tmp) / "on", settings={"otel.exporter.otlp.endpoint": receiver.endpoint}
            ),
        }
        try:
            for broker in brokers.values():
                broker.start()
                _produce(broker.bootstrap, SHAPES["batched"], "warm-up", 5)
            for round_index in range(args.rounds):
                order = ["off", "on"] if round_index % 2 == 0 else ["on", "off"]
                for shape_name, shape in SHAPES.items():
                    for name in order:
                        broker = brokers[name]
                        assert broker.process is not None
                        cpu_before = _cpu_s(broker.process.pid)
                        rate = _produce(broker.bootstrap, shape, f"bench-{shape_name}", args.mb)
                        cpu_per_mb = (_cpu_s(broker.process.pid) - cpu_before) / args.mb
                        results.setdefault((shape_name, name), []).append((rate, cpu_per_mb))
                        line = {
                            "round": round_index,
                            "shape": shape_name,
                            "tracing": name,
                            "mb_per_s": round(rate, 1),
                            "broker_cpu_s_per_mb": round(cpu_per_mb, 5),
                        }
                        print(json.dumps(line), flush=True)
        finally:
            for broker in brokers.values():
                broker.stop()
            receiver.stop()
    summary: dict[str, Any] = {"sample": args.sample, "spans_received": len(receiver.spans)}
    for shape_name in SHAPES:
        off, on = results[(shape_name, "off")], results[(shape_name, "on")]
        rate_off, rate_on = (statistics.median(r for r, _ in rows) for rows in (off, on))
        cpu_off, cpu_on = (statistics.median(c for _, c in rows) for rows in (off, on))
        summary[shape_name] = {
            "median_mb_per_s": {"off": round(rate_off, 1), "on": round(rate_on, 1)},
            "median_broker_cpu_s_per_mb": {"off": round(cpu_off, 5), "on": round(cpu_on, 5)},
            "on_to_off_throughput": round(rate_on / rate_off, 3),
            # CPU comes in 10 ms ticks: a tiny run may count none.
            "on_to_off_broker_cpu": round(cpu_on / cpu_off, 3) if cpu_off else None,
        }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
