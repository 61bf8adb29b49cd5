"""Decisions produced to `copilot.decisions` (RFC 0006 §4): the topic created when
missing, one idempotent producer (acks=all), and `decision()`, the block whose reads,
tool calls and write-backs become one event when it ends, also when it raises."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from contextplane.clock import SystemClock
from contextplane.services.kafka_delivery import produce_and_wait
from contextplane.services.kafka_topics import ensure_topics
from contextplane.services.trace import current, event

log = logging.getLogger(__name__)

TIMEOUT_S = 30.0
# Reads and tool calls one decision records, at most: the event's byte bound decides in
# the end; these keep a runaway loop from growing the block's memory first.
READS_MAX = 10_000
CALLS_MAX = 10_000
OUTCOME_CHARS_MAX = 64 * 1024
# A decision's input (what a replay gives the copilot function again), JSON, at most.
INPUT_BYTES_MAX = 64 * 1024
_CLOCK = SystemClock()


class DecisionError(Exception):
    """The decision could not be produced (the message says why), or the topic cannot
    be created."""


class Decision:
    """One open decision: what the block read, called and wrote back, and its outcome
    (set `outcome`; "ok" unless set, "error: ..." when the block raised)."""

    def __init__(
        self,
        attributes: event.Attributes,
        input: Any = None,
        replay_of: dict[str, Any] | None = None,
    ) -> None:
        self.id = attributes.id
        self.attributes = attributes
        self.input = input
        # In a replay (services/replay/): the original's topic, partition and offset. A
        # copilot that produces its own write-backs skips them when this is set.
        self.replay_of = replay_of
        self.reads: list[dict[str, Any]] = []
        self.tool_calls: list[dict[str, Any]] = []
        self.write_backs: list[dict[str, Any]] = []
        self.outcome: str | None = None
        # Where the event landed: (partition, offset), once produced.
        self.landed: tuple[int, int] | None = None

    def note_read(self, read: dict[str, Any]) -> None:
        _bounded(self.reads, read, READS_MAX, "context reads")

    def note_call(self, call: dict[str, Any]) -> None:
        _bounded(self.tool_calls, call, CALLS_MAX, "tool calls")

    def write_back(self, topic: str, partition: int, offset: int) -> None:
        """A record the copilot produced as a result (its delivery report's position)."""
        _bounded(
            self.write_backs,
            {"topic": topic, "partition": partition, "offset": offset},
            CALLS_MAX,
            "write-backs",
        )

    def document(self, ended_ms: int) -> dict[str, Any]:
        document = {
            "decision_id": self.id,
            "reads": self.reads,
            "tool_calls": self.tool_calls,
            "write_backs": self.write_backs,
            "outcome": (self.outcome or "ok")[:OUTCOME_CHARS_MAX],
            "started_ms": self.attributes.time_ms,
            "ended_ms": ended_ms,
        }
        if self.input is not None:
            document["input"] = self.input
        if self.replay_of is not None:
            document["replay_of"] = self.replay_of
        return document


def _bounded(items: list[dict[str, Any]], item: dict[str, Any], most: int, what: str) -> None:
    if len(items) >= most:
        raise DecisionError(f"a decision records at most {most} {what}")
    items.append(item)


class Decisions:
    """The producer of one copilot's decisions.

    decisions = Decisions("127.0.0.1:9092", source="support-copilot")
    with decisions.decision(correlation_id=conversation_id) as decision:
        account = context.get("account", "a1")          # recorded
        tools.call("refund", {...}, "refund-a1-1")      # recorded, decision_id set
        decision.write_back("support.replies", 0, 17)
        decision.outcome = "refunded 40"
    """

    def __init__(
        self,
        bootstrap: str,
        *,
        source: str = "contextplane.copilot",
        client_config: dict[str, Any] | None = None,
        timeout_s: float = TIMEOUT_S,
        topic: str = event.DECISIONS_TOPIC,
    ) -> None:
        self._bootstrap = bootstrap
        self.topic = topic  # another for replays: copilot.replay.<run>
        self._source = event.check_name("source", source)
        self._config: dict[str, Any] = {"bootstrap.servers": bootstrap, **(client_config or {})}
        self._timeout_s = timeout_s
        self._producer = Producer(
            {**self._config, "enable.idempotence": True, "acks": "all", "linger.ms": 0}
        )
        self.bytes_max = self._ensure_topic()

    def _ensure_topic(self) -> int:
        """Create the topic if missing; its max.message.bytes bounds a decision."""
        admin = AdminClient(self._config)
        wanted = [NewTopic(self.topic, num_partitions=1)]
        ensure_topics(admin, wanted, self._bootstrap, self._timeout_s, DecisionError)
        resource = ConfigResource(ConfigResource.Type.TOPIC, self.topic)
        try:
            configs = admin.describe_configs([resource])[resource].result(self._timeout_s)
            topic_max = int(configs["max.message.bytes"].value)
        except (KafkaException, KeyError, ValueError, TypeError) as exc:
            log.warning("max.message.bytes of %s unknown (%s)", self.topic, exc)
            topic_max = event.CLIENT_MESSAGE_BYTES_MAX
        return min(topic_max, event.CLIENT_MESSAGE_BYTES_MAX)

    @contextmanager
    def decision(
        self,
        decision_id: str | None = None,
        *,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        input: Any = None,
        replay_of: dict[str, Any] | None = None,
    ) -> Iterator[Decision]:
        """The event is produced when the block ends (acks=all), and the block's exception,
        if any, raised again after it. `correlation_id` defaults to the decision id,
        `causation_id` to the correlation id. `input` (JSON, ≤ 64 KiB) is what the
        decision was asked: `contextplane replay` gives it to the copilot function again."""
        decision = self.new_decision(
            decision_id,
            correlation_id=correlation_id,
            causation_id=causation_id,
            input=input,
            replay_of=replay_of,
        )
        token = current.open_decision.set(decision)
        try:
            yield decision
        except BaseException as exc:
            decision.outcome = f"error: {type(exc).__name__}: {exc}"
            current.open_decision.reset(token)
            self.produce(decision)
            raise
        current.open_decision.reset(token)
        self.produce(decision)

    def new_decision(
        self,
        decision_id: str | None = None,
        *,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        input: Any = None,
        replay_of: dict[str, Any] | None = None,
    ) -> Decision:
        """A decision not yet open anywhere (`decision()` opens one for its block; the MCP
        server keeps one per id the agent names, across its calls)."""
        if input is not None:
            try:
                size = len(json.dumps(input).encode())
            except (TypeError, ValueError) as exc:
                raise DecisionError(f"a decision's input must be JSON: {exc}") from None
            if size > INPUT_BYTES_MAX:
                raise DecisionError(f"a decision's input is {size} bytes, past {INPUT_BYTES_MAX}")
        started_ms = _CLOCK.wall_ms()
        ident = event.check_name("decision id", decision_id or event.new_decision_id(started_ms))
        correlation = event.check_name("correlation id", correlation_id or ident)
        attributes = event.Attributes(
            id=ident,
            source=self._source,
            time_ms=started_ms,
            correlation_id=correlation,
            causation_id=event.check_name("causation id", causation_id or correlation),
        )
        return Decision(attributes, input, replay_of)

    def produce(self, decision: Decision) -> None:
        """The decision's event as it stands, produced (acks=all); `decision.landed` is
        where it went. DecisionTooLargeError past the topic's bound, DecisionError when
        it could not be produced."""
        value = event.encode(decision.document(_CLOCK.wall_ms()), decision.id, self.bytes_max)
        decision.landed = produce_and_wait(
            self._producer,
            self.topic,
            decision.id.encode(),
            value,
            self._timeout_s,
            DecisionError,
            f"decision {decision.id!r}",
            headers=event.headers(decision.attributes),
        )

    def close(self) -> None:
        self._producer.flush(self._timeout_s)
