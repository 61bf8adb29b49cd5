"""What every evaluation probe shares: its result, the bounded time it runs in, and the
resources it makes (topics, groups, ACLs), each uniquely named and removed afterwards.

A probe is a function of a `ProbeContext` that returns its evidence (a short string of
what it checked) when the cluster did what Kafka does; it raises `NotApplicable` when the
cluster or the command line does not offer what it checks, and anything else is a
failure, whose message is the evidence.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from contextplane.cli.kafka_client import Connection, LibrdkafkaLog
from contextplane.clock import SystemClock

PREFIX = "__evaluate-"
PASS, FAIL, NOT_APPLICABLE = "pass", "fail", "n-a"
# Evidence is a line of a table: longer text (a client's error) is cut.
EVIDENCE_MAX = 300
# Removing what a probe made gets this much time beyond the probe's own bound (default).
CLEANUP_S = 10.0


class NotApplicable(Exception):
    """The cluster or the command line does not offer what the probe checks (why)."""


class ProbeFailure(Exception):
    """The cluster did not do what Kafka does (what was seen instead)."""


@dataclass(frozen=True)
class ProbeResult:
    name: str
    result: str
    evidence: str
    seconds: float

    def document(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "result": self.result,
            "evidence": self.evidence,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class Settings:
    """What the command line gives every probe."""

    config: dict[str, str]  # librdkafka's settings: bootstrap.servers and security
    timeout_s: float
    schema_registry: str | None = None
    connect_url: str | None = None
    restart_command: tuple[str, ...] = ()  # argv, run without a shell
    cleanup_s: float = CLEANUP_S


def cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= EVIDENCE_MAX else text[: EVIDENCE_MAX - 3] + "..."


@dataclass
class ProbeContext:
    """One probe's run: its deadline, its clients, and what to undo when it ends."""

    name: str
    settings: Settings
    deadline_ms: int
    clock: SystemClock = field(default_factory=SystemClock)
    topics: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    # Run in reverse order after the probe, before its topics and groups are deleted.
    undo: list[Callable[[], object]] = field(default_factory=list)
    _admin: Any = None
    _suffix: str = field(default_factory=lambda: secrets.token_hex(4))

    def remaining_s(self) -> float:
        """Seconds left before the probe's deadline; ProbeFailure once it has passed."""
        left = (self.deadline_ms - self.clock.monotonic_ms()) / 1000
        if left <= 0:
            raise ProbeFailure(f"no result within {self.settings.timeout_s:g} s")
        return left

    def pause(self, seconds: float) -> None:
        """Wait before asking again, never past the deadline."""
        time.sleep(min(seconds, self.remaining_s()))

    def unique(self, what: str = "") -> str:
        """A name no other run uses: `__evaluate-<probe>[-what]-<random>`."""
        return f"{PREFIX}{self.name}{'-' + what if what else ''}-{self._suffix}"

    def client_config(self, **extra: object) -> dict[str, Any]:
        """A client's settings: the command line's, `extra`, and librdkafka's log lines
        kept off the output (at debug level, as the other commands keep them)."""
        return {**self.settings.config, "logger": LibrdkafkaLog(), **extra}

    def admin(self) -> Any:
        """The probe's AdminClient, asked for the cluster's metadata first: an unreachable
        cluster is named (BrokerUnreachable) before any request waits its whole bound."""
        if self._admin is None:
            from confluent_kafka.admin import AdminClient

            connection = Connection(self.client_config())
            admin = AdminClient(connection.client_config())
            connection.metadata(admin, self.remaining_s())
            self._admin = admin
        return self._admin

    def answer(self, future: Any, what: str) -> Any:
        """An admin future's result within the probe's time; ProbeFailure naming `what`
        and Kafka's error otherwise."""
        import concurrent.futures

        from confluent_kafka import KafkaException

        from contextplane.cli.kafka_client import exception_text

        try:
            return future.result(timeout=self.remaining_s())
        except KafkaException as exc:
            raise ProbeFailure(f"{what}: {exception_text(exc)}") from None
        except concurrent.futures.TimeoutError:
            raise ProbeFailure(f"{what}: no answer within the probe's time") from None

    def create_topic(self, partitions: int = 1, config: dict[str, str] | None = None) -> str:
        """A new topic of the probe's own (deleted after it), created with the cluster's
        default replication factor."""
        from confluent_kafka.admin import NewTopic

        name = self.unique(f"t{len(self.topics)}" if self.topics else "")
        new = NewTopic(name, partitions, replication_factor=-1, config=config or {})
        self.topics.append(name)
        self.answer(self.admin().create_topics([new])[name], f"create topic {name!r}")
        return name

    def group(self, what: str = "group") -> str:
        """A group id of the probe's own (its offsets deleted after it)."""
        name = self.unique(what)
        self.groups.append(name)
        return name

    def cleanup(self) -> None:
        """Undo what the probe made, each step on its own: one failing does not keep the
        rest. The requests share `cleanup_s` (the caller bounds the whole)."""
        bound_s = self.settings.cleanup_s
        until_ms = self.clock.monotonic_ms() + int(bound_s * 1000)
        for step in reversed(self.undo):
            with contextlib.suppress(Exception):  # best effort: the result stands
                step()
        if self._admin is None or not (self.topics or self.groups):
            return
        futures = []
        if self.groups:
            futures += self._admin.delete_consumer_groups(
                self.groups, request_timeout=bound_s
            ).values()
        if self.topics:
            futures += self._admin.delete_topics(
                self.topics, operation_timeout=bound_s, request_timeout=bound_s
            ).values()
        for future in futures:
            left_s = max(0.0, (until_ms - self.clock.monotonic_ms()) / 1000)
            with contextlib.suppress(Exception):  # an absent group or topic: nothing to do
                future.result(timeout=left_s)
