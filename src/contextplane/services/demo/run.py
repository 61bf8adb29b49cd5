"""The support-copilot demo, step by step: a broker (embedded unless one is given), the
topics, the sample events, the context service and the executor as child processes
with a counting tool endpoint, the rule-based copilot over the tickets (each ticket
produced, then decided inside `decisions.decision()` with a read fence after it, its
reply written back), one decision traced, the recorded decisions replayed against the
ledger, and (on the embedded broker, whose SASL users and ACL `logins.py` sets up) the
refund the threshold held approved by its approver and its decision traced to the
approval. Each step that fails raises StepError naming it; everything started is
stopped whatever happens (`Demo.close`)."""

from __future__ import annotations

import json
import subprocess
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from contextplane.clock import SystemClock
from contextplane.copilot import ActionsClient, Context, Decisions
from contextplane.services.actions import ledger
from contextplane.services.demo import approval, copilot, logins, review, scenario
from contextplane.services.demo.children import Child, ChildError
from contextplane.services.demo.endpoint import CountingEndpoint
from contextplane.services.demo.errors import StepError
from contextplane.services.kafka_delivery import produce_and_wait
from contextplane.services.kafka_topics import ensure_topics
from contextplane.services.trace.link import Link

SOURCE = "contextplane-demo/support-copilot"
# Fixed names: a second run against the same cluster takes over the first's changelog,
# group and transactional id rather than leaving new ones behind each time.
CONTEXT_NAME = "contextplane-demo-context"
EXECUTOR_ID = "contextplane-demo-executor"
# One Kafka call or tool call of a step waits at most this (and never past the deadline).
CALL_WAIT_S = 30.0
START_WAIT_S = 60.0
_CLOCK = SystemClock()


@dataclass
class Settings:
    bootstrap: str | None  # None: start an embedded broker
    client_config: dict[str, Any]  # librdkafka settings (security), without the bootstrap
    command_config: Path | None  # the same, as a file for the child services
    timeout_s: float
    # Asks the cluster's metadata through a client, or raises naming why it cannot.
    reach: Callable[[Any, float], Any]


@dataclass
class Decided:
    decision_id: str
    ticket: dict[str, Any]
    outcome: str
    tool_calls: list[dict[str, Any]]
    reply: dict[str, Any]  # where it was written back: topic, partition, offset
    landed: tuple[int, int]  # the decision's record on copilot.decisions

    def document(self) -> dict[str, Any]:
        return {
            "decision_id": self.decision_id,
            "ticket_id": self.ticket["ticket_id"],
            "account_id": self.ticket["account_id"],
            "outcome": self.outcome,
            "tool_calls": self.tool_calls,
            "reply": self.reply,
            "decision": {"partition": self.landed[0], "offset": self.landed[1]},
        }


@dataclass
class Demo:
    settings: Settings
    say: Callable[[str], None]  # the human output, one line at a time
    note: Callable[[str], None]  # what the demo does that is not its result (stderr)
    show_trace: Callable[[Any], None]  # the traced decision's tree (a trace Link)
    step: str = "start"
    run_tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    _deadline_ms: int = 0
    _work: tempfile.TemporaryDirectory[str] | None = None
    _closers: list[Callable[[], Any]] = field(default_factory=list)
    _bootstrap: str = ""
    _feeder: Producer | None = None
    # How the demo and its services log in (the embedded broker's super user, else the
    # given --command-config), and the approver's login (the embedded broker only).
    _login: dict[str, Any] = field(default_factory=dict)
    _login_file: Path | None = None
    _approver: logins.Login | None = None

    def run(self) -> dict[str, Any]:
        self._deadline_ms = _CLOCK.monotonic_ms() + int(self.settings.timeout_s * 1000)
        self._work = tempfile.TemporaryDirectory(prefix="contextplane-demo-")
        work = Path(self._work.name)
        self._login, self._login_file = self.settings.client_config, self.settings.command_config
        self._bootstrap = self._broker(work)
        config = {"bootstrap.servers": self._bootstrap, **self._login}
        self._topics(config)
        context = self._start_context(work)
        fence = self._feed(config)
        endpoint = CountingEndpoint()
        self._closers.append(endpoint.close)
        context_url, executor_url = self._services(work, context, endpoint.url)
        decided = self._copilot(config, context_url, executor_url, fence)
        executed = endpoint.calls
        self._check_executed(decided, executed)
        traced = next((d for d in decided if "refund" in _states(d)), decided[0])
        tree = self._trace(config, traced).document()
        # Before the approval: a replay answers each call's newest ledger entry, and the
        # approved call's is `done` where its decision recorded `awaiting-approval`.
        replay = self._replay(config, context_url, executor_url, decided, endpoint)
        approved = self._approval(config, executor_url, decided, endpoint)
        return {
            "bootstrap_server": self._bootstrap,
            "embedded_broker": self.settings.bootstrap is None,
            "decisions": [d.document() for d in decided],
            "tool_calls_executed": executed,
            "tool_calls_by_tool": dict(sorted(endpoint.by_tool.items())),
            "replay": replay,
            "trace": {"decision_id": traced.decision_id, "tree": tree},
            "approval": approved,
        }

    def close(self) -> None:
        """Everything started, stopped in reverse order; the temporary directory removed."""
        for closer in reversed(self._closers):
            try:
                closer()
            except Exception as exc:  # one failed stop does not keep the others running
                self.note(f"stopping: {type(exc).__name__}: {exc}")
        self._closers.clear()
        if self._work is not None:
            self._work.cleanup()
            self._work = None

    def _left_s(self, most: float = CALL_WAIT_S) -> float:
        left = (self._deadline_ms - _CLOCK.monotonic_ms()) / 1000
        if left <= 0:
            raise StepError(f"the demo's {self.settings.timeout_s:g} s ran out")
        return min(most, left)

    def _start(self, child: Child) -> Child:
        self._closers.append(child.stop)
        return child.start()

    def _ready(self, child: Child) -> int:
        try:
            return child.wait_ready(_CLOCK.monotonic_ms() + int(self._left_s(START_WAIT_S) * 1000))
        except ChildError as exc:
            raise StepError(str(exc)) from None

    def _broker(self, work: Path) -> str:
        self.step = "broker"
        if self.settings.bootstrap is not None:
            return self.settings.bootstrap
        self.note(
            "starting an embedded broker on 127.0.0.1 (a free port, a temporary data dir,"
            f" SASL/SCRAM users User:{logins.ADMIN} and {logins.APPROVER})"
        )
        try:
            admin, self._approver = logins.add_users(work / "broker", self._left_s(START_WAIT_S))
        except subprocess.TimeoutExpired:
            self._left_s()  # names the demo's --timeout when that is what ran out
            raise StepError(f"adding the users: no answer within {START_WAIT_S:g} s") from None
        # The given client settings (the CLI's librdkafka logger among them), logged in.
        self._login = self.settings.client_config | admin.client_config()
        self._login_file = admin.write_properties(work / "admin.properties")
        args = ["up", "--data-dir", str(work / "broker"), "--port", "0"]
        args += ["--set", "http.port=-1"]  # no console: 8080 may be taken
        for name, value in logins.BROKER_SETTINGS.items():
            args += ["--set", f"{name}={value}"]
        ready = "contextplane broker ready"
        broker = self._start(Child("broker", args, work / "broker.log", ready))
        port = self._ready(broker)
        self.note(f"embedded broker ready on 127.0.0.1:{port}")
        return f"127.0.0.1:{port}"

    def _topics(self, config: dict[str, Any]) -> None:
        self.step = "topics"
        admin = AdminClient(config)
        self.settings.reach(admin, self._left_s())
        wanted = [NewTopic(topic, 1) for topic in scenario.TOPICS]
        ensure_topics(admin, wanted, self._bootstrap, self._left_s(), StepError)
        self.say(f"topics: {', '.join(scenario.TOPICS)}")
        if self._approver is not None:
            topic = logins.grant_approver(admin, self._left_s())
            self.say(f"ACL: {logins.APPROVER} may write {topic}, no one else but the super user")

    def _producer(self, config: dict[str, Any]) -> Producer:
        producer = Producer({**config, "acks": "all", "enable.idempotence": True})
        self._closers.append(lambda: producer.flush(5))
        return producer

    def _feed(self, config: dict[str, Any]) -> dict[tuple[str, int], int]:
        """The accounts, entitlements and incidents; the fence after them."""
        self.step = "feed"
        self._feeder = self._producer(config)
        fence: dict[tuple[str, int], int] = {}
        events = scenario.background_events()
        for event in events:
            self._produce(event, fence)
        counts = {t: sum(e.topic == t for e in events) for t in scenario.SOURCE_TOPICS[:3]}
        self.say("fed " + ", ".join(f"{n} to {t}" for t, n in counts.items()))
        return fence

    def _produce(self, event: scenario.Event, fence: dict[tuple[str, int], int]) -> None:
        assert self._feeder is not None
        partition, offset = produce_and_wait(
            self._feeder,
            event.topic,
            event.key.encode(),
            json.dumps(event.value).encode(),
            self._left_s(),
            StepError,
            f"{event.topic} {event.key}",
        )
        fence[(event.topic, partition)] = offset

    def _security(self) -> list[str]:
        path = self._login_file
        return [] if path is None else ["--command-config", str(path)]

    def _start_context(self, work: Path) -> Child:
        """Started once its source topics exist; the feed runs while it starts."""
        self.step = "context service"
        views = work / "views.toml"
        views.write_text(scenario.VIEWS)
        args = ["context", "--bootstrap", self._bootstrap, "--port", "0", *self._security()]
        args += ["--views", str(views), "--name", CONTEXT_NAME, "--data-dir", str(work / "context")]
        ready = "contextplane context ready"
        return self._start(Child("context service", args, work / "context.log", ready))

    def _services(self, work: Path, context: Child, endpoint_url: str) -> tuple[str, str]:
        self.step = "context service"
        context_url = f"http://127.0.0.1:{self._ready(context)}"
        self.step = "executor"
        tools = work / "tools.toml"
        approver = None if self._approver is None else logins.APPROVER
        tools.write_text(scenario.tools_file(endpoint_url, approver))
        args = ["executor", "--bootstrap", self._bootstrap, "--port", "0", *self._security()]
        args += ["--tools", str(tools), "--context-url", context_url]
        args += ["--transactional-id", EXECUTOR_ID, "--group", EXECUTOR_ID]
        ready = "contextplane executor ready"
        executor = self._start(Child("executor", args, work / "executor.log", ready))
        executor_url = f"http://127.0.0.1:{self._ready(executor)}"
        self.say(f"context service on {context_url}, executor on {executor_url}")
        return context_url, executor_url

    def _copilot(
        self,
        config: dict[str, Any],
        context_url: str,
        executor_url: str,
        fence: dict[tuple[str, int], int],
    ) -> list[Decided]:
        self.step = "copilot"
        bootstrap, security = self._bootstrap, self._login
        context = Context(context_url)
        tools = ActionsClient(bootstrap, executor_url, client_config=security)
        self._closers.append(tools.close)
        decisions = Decisions(bootstrap, source=SOURCE, client_config=security)
        self._closers.append(decisions.close)
        replies = self._producer(config)
        decided = []
        for ticket in scenario.TICKETS:
            self.step = f"copilot: ticket {ticket['ticket_id']}"
            self._produce(scenario.ticket_event(ticket), fence)
            # Read-your-writes: the context read waits until the view applied the ticket.
            asked = {"ticket": ticket, "run": self.run_tag, "fence": _fence_json(fence)}
            with decisions.decision(correlation_id=ticket["ticket_id"], input=asked) as decision:
                reply = copilot.decide(asked, context, tools, decision)
                value = {
                    "ticket_id": ticket["ticket_id"],
                    "decision_id": decision.id,
                    "text": reply,
                }
                at = produce_and_wait(
                    replies,
                    scenario.REPLIES_TOPIC,
                    ticket["ticket_id"].encode(),
                    json.dumps(value).encode(),
                    self._left_s(),
                    StepError,
                    f"the reply to {ticket['ticket_id']}",
                )
                decision.write_back(scenario.REPLIES_TOPIC, *at)
            assert decision.landed is not None  # produced, or the block raised
            calls = [
                {"key": c.get("key"), "tool": c.get("tool"), "state": c.get("state")}
                for c in decision.tool_calls
            ]
            where = {"topic": scenario.REPLIES_TOPIC, "partition": at[0], "offset": at[1]}
            outcome = decision.outcome or "ok"
            done = Decided(decision.id, ticket, outcome, calls, where, decision.landed)
            decided.append(done)
            self.say(f"{ticket['ticket_id']} {ticket['account_id']}: {done.outcome}")
        return decided

    def _check_executed(self, decided: list[Decided], executed: int) -> None:
        """The endpoint's count against the ledger's: each `done` call reached it once."""
        self.step = "tool calls"
        done = sum(c["state"] == "done" for d in decided for c in d.tool_calls)
        if executed != done:
            raise StepError(f"the endpoint counted {executed} calls, the ledger {done} done")
        self.say(f"tool calls executed: {executed} (counted at the tool endpoint)")

    def _trace(self, config: dict[str, Any], traced: Decided) -> Link:
        self.step = "trace"
        tree = review.trace_decision(config, traced.decision_id, self._left_s())
        self.say(f"trace of {traced.ticket['ticket_id']}'s decision {traced.decision_id}:")
        self.show_trace(tree)
        return tree

    def _approval(
        self,
        config: dict[str, Any],
        executor_url: str,
        decided: list[Decided],
        endpoint: CountingEndpoint,
    ) -> dict[str, Any]:
        """The first refund the threshold held for approval, approved by the approver
        (the embedded broker only: elsewhere the demo has no approver's login), called
        once, and its decision traced to the approval."""
        self.step = "approval"
        if self._approver is None:
            why = (
                "shown on the embedded broker only (an approver's own login, and an"
                " approvals topic only that principal may write)"
            )
            self.say(f"approval: skipped: {why}")
            return {"skipped": why}
        waiting = [
            (d, str(c["key"]))
            for d in decided
            for c in d.tool_calls
            if c["tool"] == "refund"
            and c["state"] == ledger.AWAITING_APPROVAL
            and d.ticket.get("amount", 0) > scenario.AUTO_APPROVED_MAX
        ]
        if not waiting:
            raise StepError("no refund above the threshold awaits approval")
        held, key = waiting[0]
        ticket_id, amount = held.ticket["ticket_id"], held.ticket["amount"]
        calls_before = endpoint.calls
        login = self.settings.client_config | self._approver.client_config()
        outcome = approval.approve(
            self._bootstrap, executor_url, login, logins.APPROVER, key, self._left_s()
        )
        calls = endpoint.calls - calls_before
        self.say(
            f"approval: {ticket_id}'s refund of {amount} approved by {logins.APPROVER}:"
            f" {outcome.state}, {calls} tool call at the endpoint"
        )
        if calls != 1:
            raise StepError(f"the approved refund reached the endpoint {calls} times")
        tree = self._trace(config, held)
        self.step = "approval"
        shown = approval.approved_by(tree, key)
        if shown != logins.APPROVER:
            raise StepError(f"the trace of {held.decision_id} names approved_by {shown!r}")
        return {
            "ticket_id": ticket_id,
            "decision_id": held.decision_id,
            "key": key,
            "approver": logins.APPROVER,
            "state": outcome.state,
            "approved_by": outcome.entry.get("approved_by"),
            "tool_calls": calls,
            "trace": {"decision_id": held.decision_id, "tree": tree.document()},
        }

    def _replay(
        self,
        config: dict[str, Any],
        context_url: str,
        executor_url: str,
        decided: list[Decided],
        endpoint: CountingEndpoint,
    ) -> dict[str, Any]:
        self.step = "replay"
        run = f"support-copilot-{self.run_tag}"
        calls_before = endpoint.calls
        urls = (context_url, executor_url)
        landed = {d.decision_id: d.landed for d in decided}
        topic, diffs = review.replay_decisions(
            config, self._login, run, urls, landed, self._left_s()
        )
        calls = endpoint.calls - calls_before
        differing = [d.decision_id for d in diffs if d.differs]
        self.say(
            f"replay: {len(diffs)} decisions to {topic}, {len(differing)} differing,"
            f" {calls} tool calls at the endpoint"
        )
        if len(diffs) != len(decided):
            raise StepError(f"{len(diffs)} of {len(decided)} decisions replayed")
        if calls:
            raise StepError(f"the replay made {calls} tool calls")
        if differing:
            raise StepError(f"decisions differ: {', '.join(differing)}")
        return {
            "run": run,
            "topic": topic,
            "decisions": len(diffs),
            "tool_calls": calls,
            "differing": len(differing),
            "differing_decisions": differing,
            "results": [d.document() for d in diffs],
        }


def _states(decided: Decided) -> set[str]:
    return {str(c["tool"]) for c in decided.tool_calls if c["state"] == "done"}


def _fence_json(fence: dict[tuple[str, int], int]) -> list[list[Any]]:
    return [[topic, partition, offset] for (topic, partition), offset in sorted(fence.items())]
