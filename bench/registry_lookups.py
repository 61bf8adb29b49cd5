"""Schema registry lookups per second over HTTP: `contextplane registry` started against
a running cluster, a set of schemas registered, then rounds of each lookup kind,
interleaved, from client threads on keep-alive connections.

    .venv/bin/python -m bench.registry_lookups --bootstrap 127.0.0.1:9092

The clients run in this process, on the same cores as the registry: the figures are what
one such client process gets, a floor of what the registry serves.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

READY = re.compile(r"contextplane schema registry ready on \S+:(\d+)")
HEADERS = {"Content-Type": "application/vnd.schemaregistry.v1+json"}


def schema(index: int) -> str:
    fields = [{"name": f"f{n}", "type": "string", "default": ""} for n in range(index % 20 + 1)]
    return json.dumps({"type": "record", "name": f"R{index}", "fields": fields})


def start_registry(bootstrap: str, log: object) -> tuple[subprocess.Popen[bytes], int]:
    args = [sys.executable, "-m", "contextplane.cli.main", "registry"]
    process = subprocess.Popen(
        [*args, "--bootstrap", bootstrap, "--port", "0", "--log-level", "WARNING"],
        stdout=subprocess.PIPE,
        stderr=log,  # type: ignore[arg-type]
    )
    assert process.stdout is not None
    line = process.stdout.readline().decode()
    found = READY.search(line)
    if not found:
        process.kill()
        raise SystemExit(f"the registry did not start: {line!r}")
    return process, int(found.group(1))


def rate(
    port: int, threads: int, seconds: float, request: Callable[[int], tuple[str, str, str | None]]
) -> float:
    """Requests answered 200 per second, over all threads."""
    counts = [0] * threads
    stop = time.perf_counter() + seconds

    def client(slot: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port)
        n = 0
        while time.perf_counter() < stop:
            method, path, body = request(n + slot)
            connection.request(method, path, body=body, headers=HEADERS)
            answer = connection.getresponse()
            answer.read()
            assert answer.status == 200, (path, answer.status)
            n += 1
        counts[slot] = n
        connection.close()

    workers = [threading.Thread(target=client, args=(slot,)) for slot in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(counts) / (time.perf_counter() - started)


def measure(
    bootstrap: str, schemas: int = 200, threads: int = 4, seconds: float = 5.0, rounds: int = 3
) -> dict[str, Any]:
    """Registrations per second (one at a time), and per lookup kind the requests per
    second of every round and their median."""
    with tempfile.TemporaryFile() as log:
        process, port = start_registry(bootstrap, log)
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port)
            run = uuid.uuid4().hex[:8]  # subjects of this run: each registration is a write
            ids: list[int] = []
            began = time.perf_counter()
            for index in range(schemas):
                body = json.dumps({"schema": schema(index)})
                connection.request("POST", f"/subjects/{run}-{index}/versions", body, HEADERS)
                ids.append(json.loads(connection.getresponse().read())["id"])
            registered_s = time.perf_counter() - began
            n = schemas
            kinds: dict[str, Callable[[int], tuple[str, str, str | None]]] = {
                "GET /schemas/ids/{id}": lambda i: ("GET", f"/schemas/ids/{ids[i % n]}", None),
                "GET /subjects/{s}/versions/latest": lambda i: (
                    "GET",
                    f"/subjects/{run}-{i % n}/versions/latest",
                    None,
                ),
                "POST /subjects/{s} (lookup)": lambda i: (
                    "POST",
                    f"/subjects/{run}-{i % n}",
                    json.dumps({"schema": schema(i % n)}),
                ),
            }
            results: dict[str, list[float]] = {kind: [] for kind in kinds}
            for _ in range(rounds):
                for kind, request in kinds.items():
                    results[kind].append(rate(port, threads, seconds, request))
        finally:
            process.terminate()
            process.wait(30)
    return {
        "schemas": schemas,
        "threads": threads,
        "registered_per_s": n / registered_s,
        "lookups": {
            kind: {"median": statistics.median(rates), "rounds": rates}
            for kind, rates in results.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--schemas", type=int, default=200)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    found = measure(args.bootstrap, args.schemas, args.threads, args.seconds, args.rounds)
    n = found["schemas"]
    print(f"registered {n} schemas, one at a time: {found['registered_per_s']:.0f} per second")
    for kind, figures in found["lookups"].items():
        each = ", ".join(f"{r:.0f}" for r in figures["rounds"])
        print(f"{kind}: median {figures['median']:.0f}/s ({each})")


if __name__ == "__main__":
    main()
