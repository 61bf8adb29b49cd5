"""The tool executor against a running cluster: tool calls per second through the ledger
for new keys (transaction A, the endpoint call, transaction B) and for repeated keys
(the recorded result stands: a transaction of the group offset only), next to the bare
rate of the same cluster's transactions (begin, one record, the group offset, commit) from
this process. Rounds interleave the three.

    .venv/bin/python -m bench.action_ledger --bootstrap 127.0.0.1:9092

The executor runs as `contextplane executor`; the tool endpoint (an HTTP server that
answers at once) and the producer run in this process, on the same cores.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from contextplane.services.actions import ledger
from contextplane.services.actions.client import ActionsClient

READY = re.compile(r"contextplane executor ready on \S+:(\d+)")


class Endpoint(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        body = b'{"ok":true}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def start_executor(bootstrap: str, tools: Path, log: Path, run_id: str) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "contextplane.cli.main", "executor", "--bootstrap", bootstrap]
    args += ["--tools", str(tools), "--port", "0", "--transactional-id", f"bench-{run_id}"]
    args += ["--group", f"bench-{run_id}"]
    process = subprocess.Popen(args, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = READY.search(log.read_text(errors="replace"))
        if found:
            process.port = int(found.group(1))  # type: ignore[attr-defined]
            return process
        if process.poll() is not None:
            break
        time.sleep(0.1)
    raise SystemExit(f"the executor did not start:\n{log.read_text()[-2000:]}")


def calls_per_s(client: ActionsClient, producer: Producer, keys: list[str]) -> float:
    """Requests produced at once; seconds until the last key sent (a marker) is done."""
    started = time.monotonic()
    for key in keys:
        value = {"decision_id": key, "tool": "act", "arguments": {"n": 1}}
        producer.produce(ledger.REQUESTS_TOPIC, key=key.encode(), value=json.dumps(value).encode())
    producer.flush(60)
    marker = f"marker-{uuid.uuid4().hex}"
    outcome = client.call("act", {"n": 1}, marker, wait_s=600)
    assert outcome.state == "done", outcome
    return (len(keys) + 1) / (time.monotonic() - started)


def bare_transactions_per_s(bootstrap: str, count: int, run_id: str) -> float:
    """The cluster's transactions from one producer, each one record and a group offset."""
    topic = f"bench-bare-{run_id}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1)])[topic].result(30)
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"bare-{run_id}"})
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bare-{run_id}"})
    producer.init_transactions(30)
    metadata = consumer.consumer_group_metadata()
    started = time.monotonic()
    for n in range(count):
        producer.begin_transaction()
        producer.produce(topic, key=str(n).encode(), value=b"x")
        offsets = [TopicPartition(ledger.REQUESTS_TOPIC, 0, n)]
        producer.send_offsets_to_transaction(offsets, metadata, 30)
        producer.commit_transaction(30)
    rate = count / (time.monotonic() - started)
    consumer.close()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    run_id = uuid.uuid4().hex[:8]
    server = ThreadingHTTPServer(("127.0.0.1", 0), Endpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as directory:
        tools = Path(directory) / "tools.toml"
        tools.write_text(
            f"""
[tools.act]
endpoint = "http://127.0.0.1:{server.server_address[1]}/act"
idempotent = true
policy = 'permit(principal, action, resource) when {{ context.arguments.n <= 100 }};'
"""
        )
        log = Path(directory) / "executor.log"
        executor = start_executor(args.bootstrap, tools, log, run_id)
        client = ActionsClient(args.bootstrap, f"http://127.0.0.1:{executor.port}")  # type: ignore[attr-defined]
        producer = Producer({"bootstrap.servers": args.bootstrap, "linger.ms": 5})
        new, repeated, bare = [], [], []
        try:
            for round_ in range(args.rounds):
                keys = [f"{run_id}-{round_}-{n}" for n in range(args.calls)]
                new.append(calls_per_s(client, producer, keys))
                repeated.append(calls_per_s(client, producer, keys))
                bare.append(
                    bare_transactions_per_s(args.bootstrap, args.calls, f"{run_id}{round_}")
                )
                print(
                    f"round {round_}: new {new[-1]:.0f}/s, repeated {repeated[-1]:.0f}/s,"
                    f" bare transactions {bare[-1]:.0f}/s",
                    flush=True,
                )
        finally:
            executor.terminate()
            executor.wait(60)
            client.close()
            server.shutdown()
    median = statistics.median
    print(
        json.dumps(
            {
                "new_calls_per_s": round(median(new), 1),
                "repeated_calls_per_s": round(median(repeated), 1),
                "bare_transactions_per_s": round(median(bare), 1),
                "new_over_bare": round(median(n / b for n, b in zip(new, bare, strict=True)), 2),
                "repeated_over_bare": round(
                    median(r / b for r, b in zip(repeated, bare, strict=True)), 2
                ),
            }
        )
    )


if __name__ == "__main__":
    main()
