"""Replay speed against a running cluster: decisions per second replayed (each read
answered `as_of` its recorded positions by the context service, each tool call answered
from the executor's ledger, the replayed decision produced to `copilot.replay.<run>`)
next to the same decisions made live (a fenced-free context read, a refund through the
executor for a gold account up to 100, the decision produced). Rounds interleave: each
records `--decisions` live, then replays exactly those.

    .venv/bin/python -m bench.copilot_replay --bootstrap 127.0.0.1:9092

The context service and the executor run as `contextplane context` / `executor`; the
tool endpoint, the copilot and the replay run in this process, on the same cores.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from bench.action_ledger import Endpoint, start_executor
from bench.context_service import READY as CONTEXT_READY
from contextplane.services.actions.client import ActionsClient
from contextplane.services.context.client import ContextClient
from contextplane.services.replay import recorded as recorded_log
from contextplane.services.replay.runner import Replayer
from contextplane.services.trace.recorder import Decisions

ACCOUNTS = 50
AMOUNTS = (10, 40, 80, 150, 95)


def decide(request: dict[str, Any], context: Any, tools: Any, decision: Any) -> None:
    """The copilot function: refund a gold account's request up to 100, else decline."""
    account = context.get("account", request["account_id"])
    tier = ((account.state or {}).get("profile") or {}).get("tier")
    if tier != "gold" or request["amount"] > 100:
        decision.outcome = f"declined: tier {tier}"
        return
    arguments = {"account_id": request["account_id"], "amount": request["amount"]}
    decision.outcome = tools.call("refund", arguments, request["key"]).state


def start_context(bootstrap: str, views: Path, directory: Path, run: str) -> Any:
    args = [sys.executable, "-m", "contextplane.cli.main", "context", "--bootstrap", bootstrap]
    args += ["--views", str(views), "--port", "0", "--name", f"bench-replay-{run}"]
    args += ["--data-dir", str(directory / "context"), "--log-level", "WARNING"]
    process = subprocess.Popen(args, stdout=subprocess.PIPE)
    assert process.stdout is not None
    for line in process.stdout:
        found = CONTEXT_READY.search(line.decode())
        if found:
            process.port = int(found.group(1))  # type: ignore[attr-defined]
            return process
    raise SystemExit("the context service did not start")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--decisions", type=int, default=200)
    args = parser.parse_args()
    run = uuid.uuid4().hex[:8]
    accounts = f"bench.accounts.{run}"
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    admin.create_topics([NewTopic(accounts, 1)])[accounts].result(30)
    producer = Producer({"bootstrap.servers": args.bootstrap, "acks": "all"})
    for n in range(ACCOUNTS):
        tier = "gold" if n % 2 == 0 else "silver"
        producer.produce(accounts, key=f"a{n}".encode(), value=json.dumps({"tier": tier}).encode())
    producer.flush(30)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Endpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    live_rates, replay_rates = [], []
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as scratch:
        directory = Path(scratch)
        views = directory / "views.toml"
        views.write_text(f'[[views.account.sources]]\ntopic = "{accounts}"\nfield = "profile"\n')
        tools = directory / "tools.toml"
        tools.write_text(
            f"""
[tools.refund]
endpoint = "http://127.0.0.1:{server.server_address[1]}/refund"
idempotent = true
policy = 'permit(principal, action, resource) when {{ context.arguments.amount <= 100 }};'
"""
        )
        context = start_context(args.bootstrap, views, directory, run)
        executor = start_executor(args.bootstrap, tools, directory / "executor.log", run)
        context_url = f"http://127.0.0.1:{context.port}"
        ledger_url = f"http://127.0.0.1:{executor.port}"  # type: ignore[attr-defined]
        reader = ContextClient(context_url)
        actions = ActionsClient(args.bootstrap, ledger_url)
        decisions = Decisions(args.bootstrap, source=f"bench-{run}")
        config = {"bootstrap.servers": args.bootstrap}
        log = recorded_log.DecisionLog(config, 60)
        try:
            reader.get("account", f"a{ACCOUNTS - 1}")
            for round_ in range(args.rounds):
                landed = []
                began = time.perf_counter()
                for n in range(args.decisions):
                    request = {
                        "account_id": f"a{n % ACCOUNTS}",
                        "amount": AMOUNTS[n % len(AMOUNTS)],
                        "key": f"{run}-{round_}-{n}",
                    }
                    with decisions.decision(input=request) as decision:
                        decide(request, reader, actions, decision)
                    assert decision.landed is not None
                    landed.append(decision.landed)
                live_rates.append(args.decisions / (time.perf_counter() - began))
                partition = landed[0][0]
                assert all(p == partition for p, _ in landed), "decisions on several partitions"
                span = log.span_of_offsets(partition, landed[0][1], landed[-1][1] + 1)
                replayer = Replayer(
                    args.bootstrap,
                    f"bench-{run}-{round_}",
                    decide,
                    context_url=context_url,
                    ledger_url=ledger_url,
                )
                began = time.perf_counter()
                try:
                    diffs = [replayer.replay(recorded) for recorded in log.read(span)]
                finally:
                    replayer.close()
                replay_rates.append(len(diffs) / (time.perf_counter() - began))
                differing = sum(1 for d in diffs if d.differs)
                print(
                    f"round {round_}: live {live_rates[-1]:.1f} decisions/s, replay"
                    f" {replay_rates[-1]:.1f} decisions/s ({len(diffs)} replayed,"
                    f" {differing} differing)",
                    flush=True,
                )
        finally:
            log.close()
            decisions.close()
            actions.close()
            for process in (executor, context):
                process.terminate()
                process.wait(60)
            server.shutdown()
    median = statistics.median
    print(
        json.dumps(
            {
                "live_decisions_per_s": round(median(live_rates), 1),
                "replay_decisions_per_s": round(median(replay_rates), 1),
                "replay_over_live": round(
                    median(r / live for r, live in zip(replay_rates, live_rates, strict=True)), 2
                ),
            }
        )
    )


if __name__ == "__main__":
    main()
