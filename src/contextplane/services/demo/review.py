"""What the demo shows after the copilot decided: one decision traced back
(services/trace/reader.py, the tree `contextplane trace` prints) and the decisions
replayed (services/replay/runner.py) against the context service's point-in-time reads
and the executor's ledger, with the same copilot function."""

from __future__ import annotations

from typing import Any

from contextplane.services.demo import copilot
from contextplane.services.demo.errors import StepError
from contextplane.services.replay import recorded, runner
from contextplane.services.replay.diff import DecisionDiff
from contextplane.services.trace import reader as trace_reader
from contextplane.services.trace.link import Link


def trace_decision(config: dict[str, Any], decision_id: str, timeout_s: float) -> Link:
    """The decision's tree; StepError when it is not found or is not a decision."""
    reader = trace_reader.Reader(config, timeout_s, trace_reader.RECORDS_MAX)
    try:
        tree, why = trace_reader.find_and_trace(reader, decision_id)
    finally:
        reader.close()
    if tree is None:
        raise StepError(f"decision {decision_id} not found{why}")
    if tree.missing is not None:
        raise StepError(f"decision {decision_id}: {tree.missing}")
    return tree


def replay_decisions(
    config: dict[str, Any],
    client_config: dict[str, Any],
    run: str,
    urls: tuple[str, str],
    landed: dict[str, tuple[int, int]],
    timeout_s: float,
) -> tuple[str, list[DecisionDiff]]:
    """The replay topic and each decision's diff: the decisions (id -> where it landed
    on `copilot.decisions`) read back in offset order and replayed, others that landed
    between them (another copilot's) left alone."""
    context_url, executor_url = urls
    log = recorded.DecisionLog(config, timeout_s)
    replayer = runner.Replayer(
        config["bootstrap.servers"],
        run,
        copilot.decide,  # the same rules; the reply is written back live only
        context_url=context_url,
        ledger_url=executor_url,
        client_config=client_config,
        timeout_s=timeout_s,
    )
    diffs = []
    try:
        for partition in sorted({p for p, _ in landed.values()}):
            offsets = [o for p, o in landed.values() if p == partition]
            span = log.span_of_offsets(partition, min(offsets), max(offsets) + 1)
            diffs += [replayer.replay(r) for r in log.read(span) if r.decision_id in landed]
    except recorded.RangeError as exc:
        raise StepError(str(exc)) from None
    finally:
        replayer.close()
        log.close()
    return replayer.topic, diffs
