"""`contextplane replay` against a real broker (in process), the context service and the
executor as processes, and a counting tool endpoint: decisions recorded through the SDK
(a context read and a refund) are replayed after the accounts changed. The same function
gives the same tool calls and outcomes (the reads are answered as of the recorded
positions), a changed limit lists the decisions that differ, a key the ledger does not
hold answers `not-recorded`; the endpoint is never called again and nothing is produced
to `copilot.tool-calls`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from contextplane.cli.main import main
from contextplane.copilot import ActionsClient, Context, Decisions
from contextplane.services.actions.ledger import REQUESTS_TOPIC
from contextplane.services.trace import event
from contextplane.services.trace.event import DECISIONS_TOPIC
from tests.support import replay_copilot
from tests.support.actions import CountingEndpoint, ExecutorProcess
from tests.support.context import TOPICS, VIEWS, ContextProcess
from tests.support.inprocess import InProcessBroker

TIMEOUT_S = 60
FUNCTIONS = "tests.support.replay_copilot"
TOOLS = """
[tools.refund]
endpoint = "{url}"
idempotent = true
policy = 'permit(principal, action, resource == Tool::"refund");'
"""
# What each recorded decision is asked: a1 and a3 are gold (refunded), a2 silver.
REQUESTS = [
    {"account_id": "a1", "amount": 40, "key": "refund-a1"},
    {"account_id": "a2", "amount": 20, "key": "refund-a2"},
    {"account_id": "a3", "amount": 80, "key": "refund-a3"},
    # A tool the executor does not know: rejected, so the ledger holds no entry for it.
    {"account_id": "a4", "amount": 10, "key": "notify-a4", "tool": "notify"},
]


@dataclass
class Recorded:
    broker: InProcessBroker
    context_url: str
    ledger_url: str
    endpoint: CountingEndpoint
    producer: Producer
    context: Context
    # offsets of the recorded decisions on copilot.decisions, partition 0: [first, end)
    first: int
    end: int
    since: str
    until: str

    def produce(self, topic: str, key: str, value: dict[str, Any]) -> tuple[int, int]:
        landed: list[tuple[int, int]] = []

        def delivered(error: Any, message: Any) -> None:
            assert error is None, error
            landed.append((message.partition(), message.offset()))

        self.producer.produce(
            topic, key=key.encode(), value=json.dumps(value).encode(), on_delivery=delivered
        )
        self.producer.flush(TIMEOUT_S)
        return landed[0]

    def replay(self, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
        argv = ["replay", "--bootstrap-server", self.broker.bootstrap, *args]
        argv += ["--context-url", self.context_url, "--ledger-url", self.ledger_url]
        status = main(argv)
        return status, capsys.readouterr().out


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


@pytest.fixture(scope="module", name="recorded")
def recorded_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    """Four decisions recorded live, then every account's tier changed."""
    with running_plane(tmp_path_factory.mktemp("replay")) as plane:
        yield from _recorded(plane)


@dataclass
class Plane:
    broker: InProcessBroker
    context: ContextProcess
    endpoint: CountingEndpoint
    executor: ExecutorProcess
    tools: ActionsClient
    decisions: Decisions
    producer: Producer
    client: Context


@contextmanager
def running_plane(tmp: Any) -> Iterator[Plane]:
    """A broker with the account view's sources, the context service, the executor with
    the refund tool, and the copilot's clients."""
    broker = InProcessBroker(tmp / "broker").start()
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    for future in admin.create_topics([NewTopic(t, n, 1) for t, n in TOPICS.items()]).values():
        future.result(TIMEOUT_S)
    views = tmp / "views.toml"
    views.write_text(VIEWS)
    context = ContextProcess(broker.bootstrap, views, tmp / "context", tmp / "context.log")
    context.start()
    endpoint = CountingEndpoint(honours_key=True)
    tools_file = tmp / "tools.toml"
    tools_file.write_text(TOOLS.format(url=endpoint.url))
    executor = ExecutorProcess(
        broker.bootstrap, tools_file, tmp, tmp / "executor.log", transactional_id="executor-r"
    )
    executor.start()
    tools = ActionsClient(broker.bootstrap, executor.url)
    decisions = Decisions(broker.bootstrap, source="support-copilot")
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    try:
        yield Plane(
            broker, context, endpoint, executor, tools, decisions, producer, Context(context.url)
        )
    finally:
        tools.close()
        decisions.close()
        executor.stop()
        context.stop()
        endpoint.close()
        broker.stop()


def _recorded(plane: Plane) -> Iterator[Recorded]:
    client, endpoint = plane.client, plane.endpoint
    running = Recorded(
        plane.broker,
        plane.context.url,
        plane.executor.url,
        endpoint,
        plane.producer,
        client,
        0,
        0,
        "",
        "",
    )
    tiers = {"a1": "gold", "a2": "silver", "a3": "gold", "a4": "gold"}
    fence = {}
    for account, tier in tiers.items():
        at = running.produce("crm.accounts", account, {"name": account, "tier": tier})
        fence = {("crm.accounts", at[0]): at[1]}
    client.get("account", "a4", min_offsets=fence)  # every account applied
    landed = []
    since_ms = int(datetime.now(UTC).timestamp() * 1000) - 1
    for request in REQUESTS:
        with plane.decisions.decision(f"d-{request['account_id']}", input=request) as decision:
            replay_copilot.decide(request, client, plane.tools, decision)
        assert decision.landed is not None
        landed.append(decision.landed)
    until_ms = int(datetime.now(UTC).timestamp() * 1000) + 1
    assert [p for p, _ in landed] == [0] * len(REQUESTS)
    running.first, running.end = landed[0][1], landed[-1][1] + 1
    running.since, running.until = _iso(since_ms), _iso(until_ms)
    assert endpoint.effects == {"refund-a1": 1, "refund-a3": 1}
    # The accounts change after the decisions: a replay must not see it.
    for account, tier in {"a1": "silver", "a2": "gold", "a3": "silver"}.items():
        at = running.produce("crm.accounts", account, {"name": account, "tier": tier})
        fence = {("crm.accounts", at[0]): at[1]}
    now = client.get("account", "a3", min_offsets=fence)
    assert now.state is not None and now.state["profile"]["tier"] == "silver"
    yield running


def end_offset(bootstrap: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "test-replay-ends"})
    try:
        return int(consumer.get_watermark_offsets(TopicPartition(topic, 0), TIMEOUT_S)[1])
    finally:
        consumer.close()


def read_topic(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    """Every value of partition 0 of `topic`, as JSON."""
    end = end_offset(bootstrap, topic)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "test-replay-reader"})
    values: list[dict[str, Any]] = []
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        while len(values) < end:
            message = consumer.poll(TIMEOUT_S)
            assert message is not None and message.error() is None
            values.append(json.loads(message.value()))
        return values
    finally:
        consumer.close()


def test_the_same_function_replays_without_differences_or_calls(
    recorded: Recorded, capsys: pytest.CaptureFixture[str]
) -> None:
    calls_before = sum(recorded.endpoint.requests.values())
    requests_end = end_offset(recorded.broker.bootstrap, REQUESTS_TOPIC)
    status, out = recorded.replay(
        capsys,
        "--function",
        f"{FUNCTIONS}:decide",
        "--from-offset",
        str(recorded.first),
        "--to-offset",
        str(recorded.end),
        "--run",
        "same",
        "--output",
        "json",
    )
    report = json.loads(out)
    assert report["topic"] == "copilot.replay.same" and report["decisions"] == 4
    results = {r["decision_id"]: r for r in report["results"]}
    # The rejected notify call answers not-recorded in the replay: the outcome says so.
    assert results["d-a4"]["tool_calls"]["replay"][0]["state"] == "not-recorded"
    assert results["d-a4"]["outcome"]["replay"] == "refund 10: not-recorded"
    assert results["d-a4"]["outcome"]["original"] == "refund 10: rejected"
    assert [d for d, r in results.items() if r["differs"]] == ["d-a4"]
    assert status == 1
    for ident in ("d-a1", "d-a2", "d-a3"):
        assert not results[ident]["tool_calls"]["differ"], results[ident]
    assert results["d-a1"]["tool_calls"]["replay"] == [
        {
            "key": "refund-a1",
            "tool": "refund",
            "arguments": {"account_id": "a1", "amount": 40},
            "state": "done",
        }
    ]
    assert results["d-a2"]["outcome"]["replay"] == "declined: tier silver, amount 20"
    # Nothing called, nothing requested: the replay has no producer for tool calls.
    assert sum(recorded.endpoint.requests.values()) == calls_before
    assert end_offset(recorded.broker.bootstrap, REQUESTS_TOPIC) == requests_end

    # The replayed decisions: each names its original and read as of its positions.
    originals = read_topic(recorded.broker.bootstrap, DECISIONS_TOPIC)
    replays = read_topic(recorded.broker.bootstrap, "copilot.replay.same")
    assert [r["decision_id"] for r in replays] == ["d-a1", "d-a2", "d-a3", "d-a4"]
    for original, replayed in zip(originals[recorded.first :], replays, strict=True):
        assert replayed["input"] == original["input"]
        assert replayed["replay_of"]["topic"] == DECISIONS_TOPIC
        [before], [after] = original["reads"], replayed["reads"]
        vector: dict[str, dict[str, int]] = {}
        for p in before["positions"]:
            vector.setdefault(p["topic"], {})[str(p["partition"])] = p["position"]
        assert after["as_of"] == vector


def test_only_the_decisions_without_differences_exit_0(
    recorded: Recorded, capsys: pytest.CaptureFixture[str]
) -> None:
    """The three refund decisions alone (the notify one left out), as a table."""
    status, out = recorded.replay(
        capsys,
        "--function",
        f"{FUNCTIONS}:decide",
        "--from-offset",
        str(recorded.first),
        "--to-offset",
        str(recorded.end - 1),
        "--run",
        "clean",
    )
    lines = out.splitlines()
    assert lines[0].split() == [
        "DECISION",
        "ORIGINAL",
        "REPLAY",
        "DIFFERS",
        "TOOL",
        "CALLS",
        "OUTCOME",
    ]
    assert [line.split()[0] for line in lines[1:4]] == ["d-a1", "d-a2", "d-a3"]
    assert all(line.split()[3] == "no" for line in lines[1:4])
    assert lines[-1] == "3 decisions replayed to copilot.replay.clean, 0 differing"
    assert status == 0


def test_a_changed_limit_lists_the_differing_decisions_and_calls_nothing(
    recorded: Recorded, capsys: pytest.CaptureFixture[str]
) -> None:
    calls_before = sum(recorded.endpoint.requests.values())
    requests_end = end_offset(recorded.broker.bootstrap, REQUESTS_TOPIC)
    status, out = recorded.replay(
        capsys,
        "--function",
        f"{FUNCTIONS}:decide_strictly",
        "--since",
        recorded.since,
        "--until",
        recorded.until,
        "--run",
        "strict",
        "--output",
        "json",
    )
    assert status == 1
    report = json.loads(out)
    results = {r["decision_id"]: r for r in report["results"]}
    assert set(results) == {"d-a1", "d-a2", "d-a3", "d-a4"}  # the time range found them all
    for ident, amount in (("d-a1", 40), ("d-a3", 80)):
        diff = results[ident]
        assert diff["differs"] and diff["tool_calls"]["differ"] and diff["outcome"]["differs"]
        assert diff["tool_calls"]["replay"] == []
        assert diff["outcome"]["replay"] == f"declined: tier gold, amount {amount}"
    assert not results["d-a2"]["differs"]
    assert sum(recorded.endpoint.requests.values()) == calls_before
    assert end_offset(recorded.broker.bootstrap, REQUESTS_TOPIC) == requests_end


def test_reads_the_original_did_not_make(
    recorded: Recorded, capsys: pytest.CaptureFixture[str]
) -> None:
    """Another account of a view it read: as of that view's recorded positions (a2 was
    silver then, gold now); a view it never read: refused, naming why."""
    status, out = recorded.replay(
        capsys,
        "--function",
        f"{FUNCTIONS}:decide_reading_more",
        "--from-offset",
        str(recorded.first),
        "--to-offset",
        str(recorded.first + 1),
        "--run",
        "more",
        "--output",
        "json",
    )
    assert status == 1
    [result] = json.loads(out)["results"]
    assert result["outcome"]["replay"] == "a2 tier silver; tickets-by-agent: not-recorded"
    [replayed] = read_topic(recorded.broker.bootstrap, "copilot.replay.more")
    other, refused = replayed["reads"]
    assert other["entity"] == "a2" and other["found"]
    assert "no recorded positions to read as of" in refused["error"]


def test_bad_arguments_exit_2(recorded: Recorded, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--function", f"{FUNCTIONS}:decide"]
    cases = {
        "give --from-offset and --to-offset, or --since and --until": [*base],
        "--to-offset: expected more than --from-offset": [
            *base,
            "--from-offset",
            "3",
            "--to-offset",
            "3",
        ],
        "names no time zone": [*base, "--since", "2026-01-01T00:00", "--until", "2026-01-02"],
        "--function: 'no_such_module:f': importing no_such_module": [
            "--function",
            "no_such_module:f",
            "--from-offset",
            "0",
            "--to-offset",
            "1",
        ],
        "--function: 'tests.support.replay_copilot:nothing'": [
            "--function",
            f"{FUNCTIONS}:nothing",
            "--from-offset",
            "0",
            "--to-offset",
            "1",
        ],
        "--run: run name 'a/b'": [*base, "--from-offset", "0", "--to-offset", "1", "--run", "a/b"],
        "--tools: ": [*base, "--from-offset", "0", "--to-offset", "1", "--tools", "/no/such.toml"],
        "more than --max-decisions 2": [
            *base,
            "--from-offset",
            "0",
            "--to-offset",
            "3",
            "--max-decisions",
            "2",
        ],
    }
    for expected, args in cases.items():
        status = main(["replay", "--bootstrap-server", recorded.broker.bootstrap, *args])
        err = capsys.readouterr().err
        assert status == 2 and expected in err, (args, err)


def test_a_call_recorded_without_arguments_is_compared_with_its_request(
    recorded: Recorded, capsys: pytest.CaptureFixture[str]
) -> None:
    """A call recorded as slice 4 recorded it, without its arguments: they are read back
    from its request record on copilot.tool-calls and compared."""
    original = read_topic(recorded.broker.bootstrap, DECISIONS_TOPIC)[recorded.first]
    [call] = original["tool_calls"]
    del call["arguments"]
    attributes = event.Attributes("d-old", "support-copilot", 0, "d-old", "d-old")
    producer = Producer({"bootstrap.servers": recorded.broker.bootstrap, "acks": "all"})
    producer.produce(
        DECISIONS_TOPIC,
        key=b"d-old",
        value=json.dumps({**original, "decision_id": "d-old"}).encode(),
        headers=event.headers(attributes),
    )
    assert producer.flush(TIMEOUT_S) == 0
    at = end_offset(recorded.broker.bootstrap, DECISIONS_TOPIC) - 1
    status, out = recorded.replay(
        capsys,
        "--function",
        f"{FUNCTIONS}:decide",
        "--from-offset",
        str(at),
        "--to-offset",
        str(at + 1),
        "--run",
        "old",
        "--output",
        "json",
    )
    [result] = json.loads(out)["results"]
    assert result["decision_id"] == "d-old"
    assert result["tool_calls"]["original"][0]["arguments"] == {"account_id": "a1", "amount": 40}
    assert status == 0, result
