"""The executor's own `GET /metrics` on its HTTP port, in Prometheus's text format as the
broker's and the other services' are (`prometheus_text.py`): each request's outcome as the
ledger records it, the endpoint calls and their time, policy decisions, approvals, the
ledger index (calls waiting for an approval or a human), the input's lag, and the
process's own metrics. Served as the ledger read is: no authentication, on `--host`.

Label values come from the tools file (tool names, approvers, the topics they make) or
from fixed sets here, never from a record: a request naming a tool that is not configured
is counted as rejected, and a ledger record of a state or kind not written here is
`other`. Every series exists from the start (at 0), so `rate()` sees a first failure.

The executor's thread counts; a scrape on the HTTP loop copies each dict (one C call,
atomic under the GIL) and reads the copy."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from starlette.requests import Request
from starlette.responses import Response

from contextplane.latency_histogram import LatencyHistogram
from contextplane.prometheus_text import exposition
from contextplane.services.actions import ledger
from contextplane.services.actions.ledger import LedgerIndex

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REPLAYED = "replayed"  # a request whose key holds a final entry: the recorded result stands
# What a request for a configured tool ends as (the ledger state written, or replayed).
OUTCOMES = (
    ledger.DONE,
    REPLAYED,
    ledger.CONFLICT,
    ledger.DENIED,
    ledger.AWAITING_APPROVAL,
    ledger.ERROR,
    ledger.UNKNOWN,
)
# An endpoint call: the answer's status class, or never connected, or no answer.
RESULTS = ("2xx", "3xx", "4xx", "5xx", "other", "not_sent", "interrupted")
DECISIONS = ("allow", "deny", "awaiting-approval")
REJECTIONS = ("no_key", "unknown_tool", "malformed")
APPROVALS = ("released", "refused")
# Seconds: a fast local endpoint to the longest tool time bound (120 s).
CALL_BOUNDS_S = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
)  # fmt: skip


def status_class(status: int) -> str:
    return f"{status // 100}xx" if 200 <= status <= 599 else "other"


class ExecutorCounts:
    """What the executor's thread counts, every label value known at construction."""

    def __init__(self, tools: Iterable[str], approvers: Iterable[str], topics: Iterable[str]):
        tools = sorted(tools)
        self.calls = {(t, o): 0 for t in tools for o in OUTCOMES}
        self.endpoint = {(t, r): 0 for t in tools for r in RESULTS}
        self.call_seconds = {t: LatencyHistogram(CALL_BOUNDS_S) for t in tools}
        self.decisions = {(t, d): 0 for t in tools for d in DECISIONS}
        self.approvals = {(a, o): 0 for a in sorted(set(approvers)) for o in APPROVALS}
        self.rejected = dict.fromkeys(REJECTIONS, 0)
        self.consumed = dict.fromkeys(sorted(topics), 0)
        self.transactions = {"committed": 0, "aborted": 0}
        self.tombstones = 0
        self.assigned = 0
        # (topic, partition) -> records past the consumer's position; replaced whole.
        self.lag: dict[tuple[str, int], int] = {}

    def call(self, tool: str, outcome: str) -> None:
        self.calls[(tool, outcome)] += 1

    def endpoint_call(self, tool: str, result: str, seconds: float) -> None:
        self.endpoint[(tool, result)] += 1
        self.call_seconds[tool].observe(seconds)

    def consumed_from(self, topic: str) -> None:
        if topic in self.consumed:  # (the consumer reads only the topics given it)
            self.consumed[topic] += 1


def _counter(name: str, doc: str, labels: list[str], values: dict) -> Metric:  # type: ignore[type-arg]
    family = CounterMetricFamily(name, doc, labels=labels)
    for key, value in sorted(values.copy().items()):
        family.add_metric(list(key) if isinstance(key, tuple) else [key], value)
    return family


def families(counts: ExecutorCounts, index: LedgerIndex) -> list[Metric]:
    name = "contextplane_executor_"
    found = [
        _counter(
            name + "calls",
            "Tool call requests by what the ledger records for them (replayed: the key's"
            " recorded result stands)",
            ["tool", "outcome"],
            counts.calls,
        ),
        _counter(
            name + "endpoint_calls",
            "Tool endpoint calls by the answer's status class, not_sent or interrupted",
            ["tool", "result"],
            counts.endpoint,
        ),
        _counter(
            name + "policy_decisions",
            "Cedar policy decisions recorded",
            ["tool", "decision"],
            counts.decisions,
        ),
        _counter(
            name + "approvals",
            "Approvals read, by approver: released a call, or refused",
            ["approver", "outcome"],
            counts.approvals,
        ),
        _counter(
            name + "requests_rejected",
            "Request records that do not read as a call of a configured tool",
            ["reason"],
            counts.rejected,
        ),
        _counter(
            name + "records_consumed",
            "Records read from the input topics",
            ["topic"],
            counts.consumed,
        ),
        _counter(
            name + "transactions",
            "Kafka transactions, committed or aborted",
            ["result"],
            counts.transactions,
        ),
        CounterMetricFamily(
            name + "ledger_tombstones",
            "Ledger keys tombstoned past the key retention",
            value=counts.tombstones,
        ),
    ]
    seconds = HistogramMetricFamily(
        name + "endpoint_call_seconds", "Time of each tool endpoint call", labels=["tool"]
    )
    for tool, histogram in sorted(counts.call_seconds.items()):
        seconds.add_metric([tool], histogram.cumulative(), histogram.sum_s)
    entries = GaugeMetricFamily(
        name + "ledger_entries", "Ledger entries in the index, by key kind", labels=["kind"]
    )
    for kind, count in sorted(index.kinds.copy().items()):
        entries.add_metric([kind], count)
    calls = GaugeMetricFamily(
        name + "ledger_calls",
        "Call entries in the index by state (awaiting-approval: waiting for an approver;"
        " unknown: for a human)",
        labels=["state"],
    )
    for state, count in sorted(index.states.copy().items()):
        calls.add_metric([state], count)
    index_bytes = GaugeMetricFamily(
        name + "ledger_index_bytes",
        "The ledger index's size and the bound past which the executor stops",
        labels=["kind"],
    )
    index_bytes.add_metric(["used"], index.bytes_used)
    index_bytes.add_metric(["limit"], index.bytes_max)
    assigned = GaugeMetricFamily(
        name + "assigned_partitions", "Input partitions assigned to this member", counts.assigned
    )
    lag = GaugeMetricFamily(
        name + "lag_records",
        "Records of an assigned input partition past the consumer's position",
        labels=["topic", "partition"],
    )
    for (topic, partition), records in sorted(counts.lag.items()):
        lag.add_metric([topic, str(partition)], records)
    return [*found, seconds, entries, calls, index_bytes, assigned, lag]


async def metrics(request: Request) -> Response:
    state = request.app.state
    found = families(state.counts, state.index)  # on the loop: copies of what moves
    text = await asyncio.to_thread(exposition, found, True)
    return Response(text, media_type=CONTENT_TYPE)
