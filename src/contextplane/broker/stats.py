"""Counters the request path keeps for the /metrics endpoint (console/metrics.py).

Plain integers in dicts, updated once per partition or request on the hot path;
prometheus_client's metric objects (a lock and a label lookup per increment) are built only
when Prometheus scrapes. What the broker already knows elsewhere (offsets, group commits,
the memory budget, object-store requests) is read at scrape time instead of counted here.

Per-topic counters exist only for topics the broker hosts (a produce to an unknown topic
counts in the all-topics totals only), and the exporter drops those of deleted topics, so a
client cannot grow this state with made-up names.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Each API's most recent total times kept for its latency quantiles: a window, like the
# JMX exporter's view of Kafka's histograms (which decay over about five minutes).
REQUEST_TIMES_KEPT = 1024


@dataclass(slots=True)
class TopicCounters:
    """Kafka's BrokerTopicMetrics for one topic (or for all: the `topic`-less series)."""

    messages_in: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    produce_requests: int = 0
    failed_produce_requests: int = 0
    fetch_requests: int = 0


@dataclass(slots=True)
class RequestTimes:
    """One API's requests: how many, and the latest total times in a ring."""

    count: int = 0
    recent_ms: list[float] = field(default_factory=list)
    _next: int = 0

    def add(self, ms: float) -> None:
        self.count += 1
        if len(self.recent_ms) < REQUEST_TIMES_KEPT:
            self.recent_ms.append(ms)
        else:
            self.recent_ms[self._next] = ms
            self._next = (self._next + 1) % REQUEST_TIMES_KEPT

    def since(self, count: int) -> list[float]:
        """The times of the requests after the first `count`, oldest first (as many of
        them as the ring still holds)."""
        ordered = self.recent_ms[self._next :] + self.recent_ms[: self._next]
        new = min(self.count - count, len(ordered))
        return ordered[len(ordered) - new :] if new > 0 else []


class BrokerStats:
    def __init__(self) -> None:
        self.all_topics = TopicCounters()
        self.topics: dict[str, TopicCounters] = {}
        self.requests: dict[int, RequestTimes] = {}
        # (operation, resource type) -> authorizations refused: a few dozen keys at most.
        self.denials: dict[tuple[str, str], int] = {}
        # (topic, reason) -> records refused by schema validation (topics hosted here).
        self.schema_rejections: dict[tuple[str, str], int] = {}
        self.schema_dead_letters: dict[tuple[str, str], int] = {}  # (topic, outcome)
        # Share groups' undeliverable records, by outcome (share_dead_letters.py).
        self.share_dead_letters: dict[str, int] = {}
        # KIP-1191's per-group counts, (group, kind) -> count (share_group_metrics.py).
        self.share_dlq_groups: dict[tuple[str, str], int] = {}
        self.masked_records: dict[tuple[str, str], int] = {}  # (topic, action)

    def _topic(self, topic: str) -> TopicCounters:
        counters = self.topics.get(topic)
        if counters is None:
            counters = self.topics[topic] = TopicCounters()
        return counters

    def produced(self, topic: str, records: int, size: int) -> None:
        """A batch appended to a partition of `topic` (hosted here). Written out, not
        looped over both counters: this runs once per partition of every produce."""
        counters = self.topics.get(topic) or self._topic(topic)
        counters.messages_in += records
        counters.bytes_in += size
        counters.produce_requests += 1
        every = self.all_topics
        every.messages_in += records
        every.bytes_in += size
        every.produce_requests += 1

    def produce_failed(self, topic: str | None) -> None:
        """A partition's produce refused; `topic` None when it is not hosted here."""
        self.all_topics.produce_requests += 1
        self.all_topics.failed_produce_requests += 1
        if topic is not None:
            counters = self._topic(topic)
            counters.produce_requests += 1
            counters.failed_produce_requests += 1

    def fetched(self, topic: str, size: int) -> None:
        """A partition of `topic` (hosted here) fetched: `size` bytes of records sent."""
        counters = self.topics.get(topic) or self._topic(topic)
        counters.bytes_out += size
        counters.fetch_requests += 1
        every = self.all_topics
        every.bytes_out += size
        every.fetch_requests += 1

    def request_done(self, api_key: int, elapsed_ns: int) -> None:
        """A request answered (or dropped, for acks=0) `elapsed_ns` after it was read."""
        times = self.requests.get(api_key)
        if times is None:
            times = self.requests[api_key] = RequestTimes()
        times.add(elapsed_ns / 1e6)

    def denied(self, operation: str, resource_type: str) -> None:
        key = (operation, resource_type)
        self.denials[key] = self.denials.get(key, 0) + 1

    def schema_rejected(self, topic: str, reason: str, records: int) -> None:
        """`records` of a batch for `topic` refused by schema validation for `reason`."""
        key = (topic, reason)
        self.schema_rejections[key] = self.schema_rejections.get(key, 0) + records

    def schema_dead_lettered(self, topic: str, outcome: str) -> None:
        """A refused batch of `topic` sent to its dead-letter topic: `routed` (the producer
        answered success), `copied` (answered INVALID_RECORD all the same) or `failed`."""
        key = (topic, outcome)
        self.schema_dead_letters[key] = self.schema_dead_letters.get(key, 0) + 1

    def share_dead_lettered(self, outcome: str, records: int) -> None:
        """`records` a share group gave up on: copied to its dead-letter topic (`written`)
        or archived without a copy (`no_topic`, `refused`, `not_here`)."""
        self.share_dead_letters[outcome] = self.share_dead_letters.get(outcome, 0) + records

    def share_dlq_counted(self, group_id: str, kind: str, count: int = 1) -> None:
        """A group's dead-letter copies: `records` written, `produce` appends tried,
        `failed` ones that wrote nothing (Kafka's ShareGroupMetrics DLQ meters)."""
        key = (group_id, kind)
        self.share_dlq_groups[key] = self.share_dlq_groups.get(key, 0) + count

    def masked(self, topic: str, action: str, records: int) -> None:
        """`records` of `topic` masked for a consumer by `action` (or `fail_closed`)."""
        key = (topic, action)
        self.masked_records[key] = self.masked_records.get(key, 0) + records

    def forget_topics_except(self, hosted: set[str]) -> None:
        """Drop the counters of topics no longer hosted (deleted or moved away)."""
        for topic in [t for t in self.topics if t not in hosted]:
            del self.topics[topic]
        for key in [k for k in self.schema_rejections if k[0] not in hosted]:
            del self.schema_rejections[key]
        for key in [k for k in self.schema_dead_letters if k[0] not in hosted]:
            del self.schema_dead_letters[key]
        for key in [k for k in self.masked_records if k[0] not in hosted]:
            del self.masked_records[key]
